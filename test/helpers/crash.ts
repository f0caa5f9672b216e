/**
 * kill -9 of `train` at chosen or random points, and the checks after it: shared by
 * test/crash.test.ts (a few kills) and bench/crash-loop.ts (a hundred).
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { sweepStaleModelTemps } from '../../src/export/write.js';
import { databasePath } from '../../src/runtime/download.js';
import { train } from '../../src/pipeline/train.js';
import {
  cacheProblems,
  digestOf,
  modelLeftovers,
  modelProblems,
  spawnTrain,
  trainOptions,
  type ChildConfig,
  type ChildEvent,
  type CrashPoint,
  type RunDigest,
} from './train-child.js';

/**
 * `extract`: SIGKILL from outside at a random progress report of the feature extraction;
 * `head`: at a random moment after the last extraction report (head training, then export);
 * `random`: at a random moment of the whole run; the CrashPoints kill from inside the export.
 */
export type KillMode = 'extract' | 'head' | 'random' | CrashPoint;
export const KILL_MODES: readonly KillMode[] = ['extract', 'head', 'random', 'export-model', 'export-metadata', 'export-swap'];

export interface Reference {
  readonly config: ChildConfig;
  readonly digest: RunDigest;
  readonly events: readonly ChildEvent[];
  /** ms from `ready` to `done`. */
  readonly duration: number;
  /** ms the head training took. */
  readonly headMs: number;
  readonly dims: number;
}

export interface IterationReport {
  readonly mode: KillMode;
  /** `killed` by SIGKILL, or `finished` when the run completed before the kill came. */
  readonly outcome: 'killed' | 'finished';
  /** Where the kill landed: the child's last event before it (e.g. `features 12/30`, `after extraction`, `export-model`). */
  readonly phase: string;
  /** Rows of the feature cache deleted before the run (to make the extraction do work). */
  readonly dropped: number;
  /** The rerun: vectors it computed (the rest came from what the killed run cached). */
  readonly rerunComputed: number;
  readonly leftoversAfterKill: number;
  /** Everything that was wrong; empty when the iteration passed. */
  readonly problems: readonly string[];
}

/** An uninterrupted run in a child process on a cold cache: what every rerun must reproduce. */
export async function makeReference(config: ChildConfig): Promise<Reference> {
  await rm(config.cacheDir, { recursive: true, force: true });
  const child = spawnTrain(config);
  const done = await child.waitFor((e) => e.event === 'done');
  const exit = await child.exited();
  if (exit.code !== 0 || done.event !== 'done') throw new Error(`reference run failed (${exit.code ?? exit.signal}): ${child.stderr}`);
  return { config, digest: done.digest, events: [...child.events], duration: done.t, headMs: done.timings.headMs, dims: dimsOf(config.cacheDir) };
}

function dimsOf(cacheDir: string): number {
  const db = new Database(databasePath(cacheDir), { readonly: true });
  try {
    return Number(db.prepare('SELECT dim FROM features LIMIT 1').pluck().get());
  } finally {
    db.close();
  }
}

/** Deletes a share of the cached vectors so the next run recomputes them. */
function dropRows(cacheDir: string, share: number): number {
  const path = databasePath(cacheDir);
  if (!existsSync(path) || share <= 0) return 0;
  const db = new Database(path);
  try {
    db.pragma('busy_timeout = 10000');
    const total = Number(db.prepare('SELECT count(*) FROM features').pluck().get());
    const n = Math.round(total * share);
    db.prepare('DELETE FROM features WHERE rowid IN (SELECT rowid FROM features ORDER BY random() LIMIT ?)').run(n);
    return n;
  } finally {
    db.close();
  }
}

function describe(e: ChildEvent | undefined, lastExtraction: ChildEvent | undefined): string {
  if (!e) return 'start-up';
  if (e.event === 'ready') return 'scan and backbone load';
  if (e.event === 'crash') return e.at;
  if (e.event === 'done') return 'after the end';
  if (lastExtraction?.event === 'progress' && e.step === lastExtraction.step && e.done === e.total) return 'after extraction (head training or export)';
  return `extraction ${e.step} ${e.done}/${e.total}`;
}

/**
 * One iteration: a run killed as `mode` says, then the checks: the cache opens and passes
 * integrity_check with every row the right length, the model folder is absent or whole, and an
 * uninterrupted rerun reproduces the reference exactly and leaves nothing beside the folder.
 */
export async function crashIteration(ref: Reference, mode: KillMode, random: () => number, options: { coldShare?: number } = {}): Promise<IterationReport> {
  const problems: string[] = [];
  const { config } = ref;
  const out = config.out;
  const lastExtraction = [...ref.events].reverse().find((e) => e.event === 'progress');
  // Extraction needs work to be killed in; the export points do not.
  const share = mode === 'extract' || mode === 'random' ? (options.coldShare ?? 0.3 + 0.7 * random()) : 0;
  const dropped = dropRows(config.cacheDir, share);
  const crashAt = mode.startsWith('export-') ? (mode as CrashPoint) : undefined;
  if (crashAt === 'export-swap' && !existsSync(out)) problems.push('export-swap needs an existing model folder');
  const child = spawnTrain({ ...config, crashAt });
  let killedAfter: ChildEvent | undefined;
  try {
    if (mode === 'extract') {
      const features = ref.events.filter((e): e is Extract<ChildEvent, { event: 'progress' }> => e.event === 'progress' && e.step === 'features' && e.done < e.total);
      const target = features[Math.floor(random() * features.length)];
      await child.waitFor((e) => e.event === 'progress' && e.step === 'features' && e.done >= (target?.done ?? 1));
    } else if (mode === 'head') {
      const last = lastExtraction?.event === 'progress' ? lastExtraction : undefined;
      await child.waitFor((e) => e.event === 'progress' && e.step === last?.step && e.done === e.total);
      // Within the head training's time in the reference (the export after it is short).
      await sleep(random() * ref.headMs * 0.8);
    } else if (mode === 'random') {
      await child.waitFor((e) => e.event === 'ready');
      await sleep(random() * ref.duration * 0.8);
    }
    if (!crashAt) {
      killedAfter = child.events.at(-1);
      child.proc.kill('SIGKILL');
    }
  } catch {
    // The child ended before the awaited event: judged by its exit below.
  }
  const exit = await child.exited();
  if (crashAt) killedAfter = child.events.at(-1);
  let outcome: IterationReport['outcome'] = 'killed';
  if (exit.signal !== 'SIGKILL') {
    if (exit.code === 0 && !crashAt) outcome = 'finished';
    else problems.push(`child ended with ${exit.code ?? exit.signal} instead of being killed: ${child.stderr.slice(-1500)}`);
  }
  if (crashAt && killedAfter?.event !== 'crash') problems.push(`crash point ${crashAt} was never reached (the export no longer writes the way the injection expects?)`);

  // Right after the kill: the cache is whole, the model folder is absent or whole.
  for (const p of cacheProblems(config.cacheDir, ref.dims)) problems.push(`cache after kill: ${p}`);
  for (const p of modelProblems(out, ref.digest.model, ref.digest.classes)) problems.push(`model folder after kill: ${p}`);
  const leftoversAfterKill = modelLeftovers(out).length;
  if (crashAt === 'export-swap' && outcome === 'killed') {
    // The old model was moved aside when the kill came: the next writer puts it back.
    if (existsSync(out)) problems.push('export-swap: the model folder should be moved aside at the kill');
    await sweepStaleModelTemps(out);
    if (!existsSync(out)) problems.push('export-swap: the previous model was not restored by the sweep');
    for (const p of modelProblems(out, ref.digest.model, ref.digest.classes)) problems.push(`restored model folder: ${p}`);
  }

  // The rerun: uninterrupted, it must give exactly the reference.
  const again = await train(trainOptions(config));
  const digest = digestOf(again, config.data);
  for (const key of Object.keys(digest) as (keyof RunDigest)[]) {
    if (JSON.stringify(digest[key]) !== JSON.stringify(ref.digest[key])) problems.push(`rerun: ${key} differs from the uninterrupted run`);
  }
  for (const p of modelProblems(out, ref.digest.model, ref.digest.classes)) problems.push(`model folder after rerun: ${p}`);
  if (!existsSync(out)) problems.push('model folder missing after the rerun');
  const left = modelLeftovers(out);
  if (left.length > 0) problems.push(`left beside the model folder after the rerun: ${left.join(', ')}`);
  for (const p of cacheProblems(config.cacheDir, ref.dims)) problems.push(`cache after rerun: ${p}`);
  return { mode, outcome, phase: describe(killedAfter, lastExtraction), dropped, rerunComputed: again.features.computed, leftoversAfterKill, problems };
}
