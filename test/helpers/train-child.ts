/**
 * `train()` in a child process, for tests that need real separate processes: kill -9 at chosen
 * points (test/crash.test.ts, bench/crash-loop.ts), two trainings on one cache at once, and
 * determinism across processes.
 *
 * As a script: node --import tsx test/helpers/train-child.ts '<ChildConfig as JSON>'
 * prints one JSON event per line on stdout: `ready` just before train() starts, `progress` for
 * each progress report, `crash` just before it kills itself (crashAt), `done` with the run's
 * digest. Times are ms since `ready`.
 *
 * The parent side (spawnTrain, checks of the cache and the model folder) is exported too.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { databasePath } from '../../src/runtime/download.js';
import { FeatureCache } from '../../src/features/cache.js';
import type { TrainOptions, TrainResult } from '../../src/pipeline/train.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

/**
 * Where the child kills itself with SIGKILL, from inside the file-system calls of the export:
 * `export-model` half-way through writing model.onnx in the temp folder; `export-metadata` when
 * headswap.json is about to be written (model.onnx complete); `export-swap` right after an
 * existing model folder was moved aside, before the new one is moved in.
 */
export type CrashPoint = 'export-model' | 'export-metadata' | 'export-swap';

export interface ChildConfig {
  readonly data: string;
  readonly testDir?: string;
  readonly cacheDir: string;
  readonly out: string;
  readonly seed: number;
  readonly force?: boolean;
  readonly noCache?: boolean;
  /** Images per backbone batch: small batches give more progress events to kill at. */
  readonly batchSize?: number;
  readonly crashAt?: CrashPoint;
}

/** What must be identical between runs on the same data with the same seed. */
export interface RunDigest {
  readonly classes: readonly string[];
  /** Every photo with its split, by path relative to the data set. */
  readonly split: readonly string[];
  /** The evaluation as JSON (metrics, confusion, most confident mistakes). */
  readonly evaluation: string;
  /** sha256 of the exported model.onnx. */
  readonly model: string;
  /** The head's weights, hashed: identical weights, bit for bit. */
  readonly weights: string;
}

export type ChildEvent =
  | { readonly event: 'ready'; readonly t: 0 }
  | { readonly event: 'progress'; readonly t: number; readonly step: string; readonly done: number; readonly total: number }
  | { readonly event: 'crash'; readonly t: number; readonly at: CrashPoint }
  | { readonly event: 'done'; readonly t: number; readonly digest: RunDigest; readonly timings: TrainResult['timings']; readonly features: TrainResult['features'] };

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function digestOf(result: TrainResult, data: string): RunDigest {
  const w = result.head.weights;
  const weights = createHash('sha256');
  for (const part of [w.mean, w.std, ...w.layers.flatMap((l) => [l.kernel, l.bias])]) weights.update(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
  return {
    classes: result.classes,
    split: result.files.map((f) => `${f.split}\t${relative(data, f.path)}\t${f.label}`),
    evaluation: JSON.stringify(result.evaluation),
    model: result.out ? sha256(readFileSync(join(result.out, 'model.onnx'))) : '',
    weights: weights.digest('hex'),
  };
}

export function trainOptions(config: ChildConfig): TrainOptions {
  return {
    data: config.data,
    testDir: config.testDir,
    cacheDir: config.cacheDir,
    out: config.out,
    seed: config.seed,
    force: config.force ?? true,
    noCache: config.noCache,
    batchSize: config.batchSize,
    // Runs of a crash loop should not pile up in the history table; the test checks features.
    record: false,
  };
}

// ---------------------------------------------------------------------------------------------
// Parent side.

export interface TrainChild {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly events: ChildEvent[];
  stderr: string;
  /** Resolves with the first event that satisfies `test`; rejects if the child exits first. */
  waitFor(test: (e: ChildEvent) => boolean): Promise<ChildEvent>;
  /** Resolves when the child has exited: its exit code, or the signal that ended it. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnTrain(config: ChildConfig): TrainChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', SELF, JSON.stringify(config)], { cwd: ROOT });
  const events: ChildEvent[] = [];
  const waiters: { test: (e: ChildEvent) => boolean; resolve: (e: ChildEvent) => void; reject: (err: Error) => void }[] = [];
  let buffer = '';
  const child: TrainChild = {
    proc,
    events,
    stderr: '',
    waitFor(test) {
      const seen = events.find(test);
      if (seen) return Promise.resolve(seen);
      if (proc.exitCode !== null || proc.signalCode !== null) return Promise.reject(new Error(`train child already exited: ${child.stderr}`));
      return new Promise((resolve, reject) => waiters.push({ test, resolve, reject }));
    },
    async exited() {
      if (proc.exitCode === null && proc.signalCode === null) await once(proc, 'exit');
      return { code: proc.exitCode, signal: proc.signalCode };
    },
  };
  proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      const e = JSON.parse(line) as ChildEvent;
      events.push(e);
      for (const w of [...waiters]) {
        if (!w.test(e)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (child.stderr += s));
  proc.on('exit', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`train child exited (${code ?? signal}) before the awaited event: ${child.stderr.slice(-2000)}`));
  });
  return child;
}

/** Problems with the feature cache after a crash; empty when it is whole. */
export function cacheProblems(cacheDir: string, dims: number): string[] {
  const path = databasePath(cacheDir);
  if (!existsSync(path)) return [];
  const problems: string[] = [];
  try {
    FeatureCache.open(path).close();
  } catch (err) {
    problems.push(`does not open: ${String(err)}`);
    return problems;
  }
  const db = new Database(path, { readonly: true });
  try {
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') problems.push(`integrity_check: ${String(check)}`);
    const bad = db.prepare("SELECT count(*) FROM features WHERE dim != ? OR length(vector) != dim * CASE encoding WHEN 'f16' THEN 2 ELSE 4 END OR typeof(vector) != ?").pluck().get(dims, 'blob');
    if (bad !== 0) problems.push(`${String(bad)} row(s) that do not decode to ${dims} floats`);
  } finally {
    db.close();
  }
  return problems;
}

/** Leftovers of a model folder's writers beside it (temp folders, moved-aside old models). */
export function modelLeftovers(out: string): string[] {
  const prefix = `.${basename(out)}.`;
  return existsSync(dirname(out)) ? readdirSync(dirname(out)).filter((n) => n.startsWith(prefix)) : [];
}

/** Problems with the model folder: it must be absent or whole (and then hold `expectedModel`). */
export function modelProblems(out: string, expectedModel: string, classes: readonly string[]): string[] {
  if (!existsSync(out)) return [];
  const problems: string[] = [];
  const files = readdirSync(out).sort();
  if (files.join(',') !== 'headswap.json,labels.json,model.onnx') problems.push(`holds ${files.join(', ')}`);
  try {
    if (sha256(readFileSync(join(out, 'model.onnx'))) !== expectedModel) problems.push('model.onnx differs from the uninterrupted run');
    const meta = JSON.parse(readFileSync(join(out, 'headswap.json'), 'utf8')) as { classes: string[] };
    if (JSON.stringify(meta.classes) !== JSON.stringify(classes)) problems.push('headswap.json has other classes');
    if (JSON.stringify(JSON.parse(readFileSync(join(out, 'labels.json'), 'utf8'))) !== JSON.stringify(classes)) problems.push('labels.json has other classes');
  } catch (err) {
    problems.push(`unreadable: ${String(err)}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Child side.

/**
 * Makes the export kill this process at `at`, by wrapping node:fs/promises. The wrappers reach
 * the already-imported ESM bindings through syncBuiltinESMExports, so headswap's code is unchanged.
 */
function installCrash(at: CrashPoint, given: string, emit: (e: ChildEvent) => void, t: () => number): void {
  const out = resolve(given);
  const require = createRequire(import.meta.url);
  const fsp = require('node:fs/promises') as typeof import('node:fs/promises');
  const die = (): never => {
    emit({ event: 'crash', t: t(), at });
    process.kill(process.pid, 'SIGKILL');
    throw new Error('unreachable');
  };
  const inTemp = (path: unknown): boolean => String(path).startsWith(join(dirname(out), `.${basename(out)}.tmp-`));
  const realOpen = fsp.open;
  fsp.open = async (...args: Parameters<typeof fsp.open>): Promise<FileHandle> => {
    const handle = await realOpen(...args);
    const path = String(args[0]);
    if (!inTemp(path)) return handle;
    if (at === 'export-model' && path.endsWith('/model.onnx')) {
      const own = handle as { writeFile: FileHandle['writeFile'] };
      own.writeFile = async (data) => {
        const bytes = typeof data === 'string' ? Buffer.from(data) : (data as Uint8Array);
        await handle.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
        return die();
      };
    }
    if (at === 'export-metadata' && path.endsWith('/headswap.json')) die();
    return handle;
  };
  const realWriteFile = fsp.writeFile;
  fsp.writeFile = async (...args: Parameters<typeof fsp.writeFile>): Promise<void> => {
    const path = String(args[0]);
    if (inTemp(path) && ((at === 'export-model' && path.endsWith('/model.onnx')) || (at === 'export-metadata' && path.endsWith('/headswap.json')))) {
      const data = args[1];
      if (at === 'export-model' && data instanceof Uint8Array) await realWriteFile(path, data.subarray(0, Math.floor(data.length / 2)));
      die();
    }
    return realWriteFile(...args);
  };
  const realRename = fsp.rename;
  fsp.rename = async (from, to): Promise<void> => {
    await realRename(from, to);
    if (at === 'export-swap' && String(from) === out) die();
  };
  syncBuiltinESMExports();
}

async function childMain(config: ChildConfig): Promise<void> {
  const emit = (e: ChildEvent): void => void process.stdout.write(`${JSON.stringify(e)}\n`);
  const { train } = await import('../../src/pipeline/train.js');
  let start = 0;
  const t = (): number => Math.round(performance.now() - start);
  if (config.crashAt) installCrash(config.crashAt, config.out, emit, t);
  start = performance.now();
  emit({ event: 'ready', t: 0 });
  const result = await train({
    ...trainOptions(config),
    onProgress: (p) => emit({ event: 'progress', t: t(), step: p.step, done: p.done, total: p.total }),
  });
  emit({ event: 'done', t: t(), digest: digestOf(result, config.data), timings: result.timings, features: result.features });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await childMain(JSON.parse(process.argv[2] ?? '{}') as ChildConfig);
}
