/**
 * How `train` scales with the number of photos. Each training is a fresh child process (this
 * script with --child) calling train() at default settings (`{ data, testDir, out: false,
 * cacheDir, seed: 0, record: false }`) with an empty feature cache of its own, so time, memory
 * (maxRSS) and cache bytes are that run's alone. Sets:
 *   - fashion-mnist: the first N training images of Debian `dataset-fashion-mnist` (N/10 per
 *     class, in file order), scored on a fixed test folder of 100 t10k images per class; built
 *     once by bench/fashion-mnist.ts under ${HEADSWAP_BENCH_DATA:-~/.cache/headswap-bench}/fashion-mnist/.
 *   - clothing10-all: ../shared/datasets/clothing10-all/{train,test} as it is.
 * Per run: process wall seconds, the train() call's seconds, result.timings, features computed and
 * cached, images/s per phase, top-1, the recipe `--quality auto` chose, maxRSS (kB) and the bytes
 * of the SQLite files in the cache folder afterwards. Growth: a least-squares power law
 * cost = a * n^b on log-log over the Fashion-MNIST sizes (n = training photos; b = 1 is linear),
 * and featuresMs and cacheBytes also against the backbone passes made (the fixed 1000 test photos
 * included), since the constant test cost pulls their b against n below 1.
 *   node --import tsx bench/scale.ts [--sizes 1000,5000] [--sets fashion-mnist,clothing10-all] [--warm] > scale.json
 *   node --import tsx bench/scale.ts --prepare-only [--sizes ...]   (only convert the data)
 * --warm: a second run of each on the same (now full) cache. JSON on stdout, progress on stderr.
 * BENCH_CACHE=<folder>: where the per-run cache folders go (each emptied first; default a temp folder).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { cpus, totalmem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const SCRIPT = fileURLToPath(import.meta.url);
const REPO = resolve(dirname(SCRIPT), '..');
const CLOTHING10_ALL = resolve(REPO, '..', 'shared', 'datasets', 'clothing10-all');
const SET_NAMES = ['fashion-mnist', 'clothing10-all'] as const;
type SetName = (typeof SET_NAMES)[number];

/** What the parent asks a child to train. */
interface ChildSpec {
  readonly data: string;
  readonly testDir: string;
  readonly cacheDir: string;
}

/** The one JSON line a child prints. */
interface ChildResult {
  readonly importSeconds: number;
  readonly trainSeconds: number;
  readonly cpuSeconds: number;
  readonly maxRSSKB: number;
  readonly timings: { featuresMs: number; headMs: number; groupMs: number; autoMs?: number; exportMs: number; totalMs: number; imagesPerSecond: number };
  readonly features: { computed: number; cached: number };
  readonly counts: { train: number; validation: number; test: number };
  readonly top1: number;
  readonly recipe?: string;
  readonly recipeCandidates?: { name: string; cvTop1: number }[];
  readonly groups: { count: number; largest: number; grouped: number };
  /** Steady extraction: images/s of the plain features step over its first and its last fifth. */
  readonly featuresRate: { readonly firstFifth: number; readonly lastFifth: number };
  readonly warnings: readonly string[];
}

/** Images/s between the samples nearest to two fractions of a step's total. */
function rateBetween(samples: readonly { done: number; ms: number }[], total: number, from: number, to: number): number {
  const at = (f: number) => samples.reduce((best, s) => (Math.abs(s.done - f * total) < Math.abs(best.done - f * total) ? s : best), samples[0]!);
  const [a, b] = [at(from), at(to)];
  return b.ms > a.ms ? r2(((b.done - a.done) * 1000) / (b.ms - a.ms)) : 0;
}

const r2 = (x: number): number => +x.toFixed(2);
const r3 = (x: number): number => +x.toFixed(3);

// ---- child: one training --------------------------------------------------------------------------

async function child(spec: ChildSpec): Promise<void> {
  const t0 = performance.now();
  const { train } = await import('../src/pipeline/train.js');
  const importSeconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage();
  const shown = new Map<string, number>();
  const featureSamples: { done: number; ms: number }[] = [];
  let featureTotal = 0;
  const t1 = performance.now();
  const r = await train({
    data: spec.data,
    testDir: spec.testDir,
    out: false,
    cacheDir: spec.cacheDir,
    seed: 0,
    record: false,
    onWarning: (m) => process.stderr.write(`  warning: ${m}\n`),
    // A line per step start and about every 10% (or 30 s), so long runs show they are alive.
    onProgress: (p) => {
      const last = shown.get(p.step);
      const now = performance.now();
      if (p.step === 'features') {
        featureSamples.push({ done: p.done, ms: now });
        featureTotal = p.total;
      }
      const tenth = Math.max(1, Math.ceil(p.total / 10));
      if (last === undefined || p.done === p.total || (p.done % tenth === 0 && now - last > 1000) || now - last > 30_000) {
        shown.set(p.step, now);
        process.stderr.write(`  ${p.step}: ${p.done}/${p.total} ${p.unit ?? 'images'} (${p.rate.toFixed(1)}/s)\n`);
      }
    },
  });
  const trainSeconds = (performance.now() - t1) / 1000;
  const used = process.cpuUsage(cpu);
  const counts = Object.values(r.counts).reduce((a, c) => ({ train: a.train + c.train, validation: a.validation + c.validation, test: a.test + c.test }), { train: 0, validation: 0, test: 0 });
  const out: ChildResult = {
    importSeconds: r3(importSeconds),
    trainSeconds: r3(trainSeconds),
    cpuSeconds: r2((used.user + used.system) / 1e6),
    maxRSSKB: process.resourceUsage().maxRSS,
    timings: r.timings,
    features: r.features,
    counts,
    top1: r.evaluation.top1,
    ...(r.recipe ? { recipe: r.recipe.chosen.name, recipeCandidates: r.recipe.candidates.map((c) => ({ name: c.name, cvTop1: r3(c.cvTop1) })) } : {}),
    groups: { count: r.groups.count, largest: r.groups.largest, grouped: r.groups.grouped },
    featuresRate: featureSamples.length > 1 ? { firstFifth: rateBetween(featureSamples, featureTotal, 0, 0.2), lastFifth: rateBetween(featureSamples, featureTotal, 0.8, 1) } : { firstFifth: 0, lastFifth: 0 },
    warnings: r.warnings,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// ---- parent ---------------------------------------------------------------------------------------

/** Runs one child; its stderr goes to ours, its last stdout line is the result. */
function runChild(spec: ChildSpec): Promise<{ wallSeconds: number; result?: ChildResult; error?: string }> {
  return new Promise((done) => {
    const t0 = performance.now();
    const proc = spawn(process.execPath, ['--import', 'tsx', SCRIPT, '--child', JSON.stringify(spec)], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (d: string) => (stdout += d));
    proc.on('error', (err) => done({ wallSeconds: (performance.now() - t0) / 1000, error: String(err) }));
    proc.on('close', (code, signal) => {
      const wallSeconds = (performance.now() - t0) / 1000;
      const last = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
      if (code !== 0 || !last) return done({ wallSeconds, error: `child exited with ${signal ?? code}${last ? '' : ', no result line'}` });
      try {
        done({ wallSeconds, result: JSON.parse(last) as ChildResult });
      } catch (err) {
        done({ wallSeconds, error: `unreadable result line: ${String(err)}` });
      }
    });
  });
}

async function dirBytes(dir: string, match?: RegExp): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(p, match);
    else if (e.isFile() && (!match || match.test(e.name))) total += (await stat(p)).size;
  }
  return total;
}

/** The feature cache's SQLite file (src/runtime/download.ts databasePath: headswap.sqlite) and its -wal/-shm. */
const SQLITE = /\.(sqlite|db)(-\w+)?$/;

async function countImages(dir: string): Promise<number> {
  let n = 0;
  for (const cls of await readdir(dir, { withFileTypes: true })) {
    if (cls.isDirectory()) n += (await readdir(join(dir, cls.name))).filter((f) => /\.(jpe?g|png|webp)$/i.test(f)).length;
  }
  return n;
}

interface SetRun {
  readonly set: SetName;
  /** Training photos (files in the data folder). */
  readonly n: number;
  readonly data: string;
  readonly testDir: string;
}

type Run = Record<string, unknown> & { set: SetName; n: number; phase: 'cold' | 'warm' };

async function measure(s: SetRun, phase: 'cold' | 'warm', cacheDir: string): Promise<Run> {
  const { wallSeconds, result: r, error } = await runChild({ data: s.data, testDir: s.testDir, cacheDir });
  const base = { set: s.set, n: s.n, phase, wallSeconds: r2(wallSeconds) };
  if (!r) return { ...base, error };
  const t = r.timings;
  const perSecond = (count: number, ms: number | undefined): number | undefined => (ms && ms > 0 ? r2(count / (ms / 1000)) : undefined);
  const images = r.features.computed + r.features.cached;
  const trainPhotos = r.counts.train + r.counts.validation;
  return {
    ...base,
    trainSeconds: r.trainSeconds,
    importSeconds: r.importSeconds,
    cpuSeconds: r.cpuSeconds,
    photos: r.counts,
    timings: { featuresMs: Math.round(t.featuresMs), headMs: Math.round(t.headMs), groupMs: Math.round(t.groupMs), autoMs: t.autoMs === undefined ? undefined : Math.round(t.autoMs), exportMs: Math.round(t.exportMs), totalMs: Math.round(t.totalMs), imagesPerSecond: r2(t.imagesPerSecond) },
    features: r.features,
    // Features: backbone passes (every network, train and test photos) per second; the other
    // phases: training photos per second.
    imagesPerSecond: { features: perSecond(images, t.featuresMs), group: perSecond(trainPhotos, t.groupMs), auto: perSecond(trainPhotos, t.autoMs), head: perSecond(trainPhotos, t.headMs) },
    top1: +(r.top1 * 100).toFixed(1),
    recipe: r.recipe,
    recipeCandidates: r.recipeCandidates,
    groups: r.groups,
    featuresRate: r.featuresRate,
    maxRSSKB: r.maxRSSKB,
    cacheBytes: await dirBytes(cacheDir, SQLITE),
    cacheDirBytes: await dirBytes(cacheDir),
    warnings: r.warnings,
  };
}

/** Least squares of log(cost) on log(n): cost = a * n^b. */
function powerLaw(points: readonly { n: number; y: number }[]): { a: number; b: number; r2: number; points: number } | undefined {
  const ok = points.filter((p) => p.n > 0 && Number.isFinite(p.y) && p.y > 0);
  if (new Set(ok.map((p) => p.n)).size < 2) return undefined;
  const xs = ok.map((p) => Math.log(p.n));
  const ys = ok.map((p) => Math.log(p.y));
  const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
    syy += (ys[i]! - my) ** 2;
  }
  const b = sxy / sxx;
  const a = Math.exp(my - b * mx);
  return { a: +a.toPrecision(4), b: r3(b), r2: syy > 0 ? r3((sxy * sxy) / (sxx * syy)) : 1, points: ok.length };
}

const GROWTH_COSTS: Record<string, (r: Run) => number | undefined> = {
  wallSeconds: (r) => r.wallSeconds as number | undefined,
  trainSeconds: (r) => r.trainSeconds as number | undefined,
  featuresMs: (r) => (r.timings as { featuresMs?: number } | undefined)?.featuresMs,
  headMs: (r) => (r.timings as { headMs?: number } | undefined)?.headMs,
  groupMs: (r) => (r.timings as { groupMs?: number } | undefined)?.groupMs,
  autoMs: (r) => (r.timings as { autoMs?: number } | undefined)?.autoMs,
  maxRSSKB: (r) => r.maxRSSKB as number | undefined,
  cacheBytes: (r) => r.cacheBytes as number | undefined,
};

function growth(runs: readonly Run[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const phase of ['cold', 'warm'] as const) {
    const rows = runs.filter((r) => r.set === 'fashion-mnist' && r.phase === phase && !r.error);
    if (new Set(rows.map((r) => r.n)).size < 2) continue;
    const fits: Record<string, unknown> = Object.fromEntries(Object.entries(GROWTH_COSTS).map(([k, f]) => [k, powerLaw(rows.map((r) => ({ n: r.n, y: f(r) ?? NaN }))) ?? null]));
    // The fixed test photos pass through the backbones (and into the cache) too, a constant that
    // pulls b below 1 for featuresMs and cacheBytes against n (linear in n + 1000 fits b = 0.78 over
    // 1k-20k); against the backbone passes actually made, b is the per-image cost's growth.
    const passes = (r: Run): number => {
      const f = r.features as { computed: number; cached: number };
      return f.computed + f.cached;
    };
    for (const k of ['featuresMs', 'cacheBytes']) fits[`${k}VsPasses`] = powerLaw(rows.map((r) => ({ n: passes(r), y: GROWTH_COSTS[k]!(r) ?? NaN }))) ?? null;
    out[phase] = fits;
  }
  return { model: 'cost = a * n^b, least squares on log-log over the fashion-mnist sizes (n = training photos; *VsPasses: n = backbone passes, train and test photos); b = 1 is linear', sizes: [...new Set(runs.filter((r) => r.set === 'fashion-mnist').map((r) => r.n))], ...out };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sizes: { type: 'string' }, sets: { type: 'string' }, warm: { type: 'boolean', default: false }, 'prepare-only': { type: 'boolean', default: false }, child: { type: 'string' } } });
  if (values.child) return child(JSON.parse(values.child) as ChildSpec);

  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const sizes = (values.sizes ?? '1000,5000,10000,20000').split(',').map(Number);
  const sets = (values.sets?.split(',') ?? [...SET_NAMES]) as SetName[];
  for (const s of sets) if (!(SET_NAMES as readonly string[]).includes(s)) throw new Error(`unknown set ${s}; known: ${SET_NAMES.join(', ')}`);

  const { fashionMnist } = await import('./fashion-mnist.js');
  const fm = sets.includes('fashion-mnist') || values['prepare-only'] ? await fashionMnist({ sizes, log }) : undefined;
  const clothing = { train: join(CLOTHING10_ALL, 'train'), test: join(CLOTHING10_ALL, 'test') };
  const hasClothing = await stat(clothing.train).then(() => true, () => false);
  const data = {
    ...(fm
      ? {
          'fashion-mnist': {
            root: fm.root,
            package: `dataset-fashion-mnist ${fm.version}`,
            license: fm.license,
            test: fm.test.dir,
            train: Object.fromEntries([...fm.train].map(([n, f]) => [n, f.dir])),
            converted: [...fm.train.values(), fm.test].filter((f) => f.built).map((f) => ({ dir: f.dir, photos: f.photos, seconds: r2(f.seconds) })),
            seconds: r2(fm.seconds),
          },
        }
      : {}),
    'clothing10-all': hasClothing ? clothing : `missing: ${CLOTHING10_ALL}`,
  };
  if (values['prepare-only']) {
    process.stdout.write(`${JSON.stringify({ data }, null, 1)}\n`);
    return;
  }

  const plan: SetRun[] = [];
  for (const set of sets) {
    if (set === 'fashion-mnist') for (const n of [...fm!.train.keys()]) plan.push({ set, n, data: fm!.train.get(n)!.dir, testDir: fm!.test.dir });
    else {
      if (!hasClothing) throw new Error(`clothing10-all not found at ${CLOTHING10_ALL} (../shared/datasets/README.md)`);
      plan.push({ set, n: await countImages(clothing.train), data: clothing.train, testDir: clothing.test });
    }
  }

  const tmp = await mkdtemp(join(tmpdir(), 'headswap-scale-'));
  const cacheRoot = process.env.BENCH_CACHE ? resolve(process.env.BENCH_CACHE) : tmp;
  const runs: Run[] = [];
  try {
    for (const s of plan) {
      const cacheDir = join(cacheRoot, `scale-${s.set}-${s.n}`);
      await rm(cacheDir, { recursive: true, force: true });
      await mkdir(cacheDir, { recursive: true });
      for (const phase of values.warm ? (['cold', 'warm'] as const) : (['cold'] as const)) {
        log(`${s.set} n=${s.n} ${phase}: training in a child process`);
        const run = await measure(s, phase, cacheDir);
        runs.push(run);
        const { warnings: _w, recipeCandidates: _c, ...brief } = run;
        log(JSON.stringify(brief));
      }
      await rm(cacheDir, { recursive: true, force: true });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGB: r2(totalmem() / 2 ** 30), node: process.version, platform: `${process.platform}-${process.arch}` };
  process.stdout.write(`${JSON.stringify({ machine, data, runs, growth: growth(runs) }, null, 1)}\n`);
}

await main();
