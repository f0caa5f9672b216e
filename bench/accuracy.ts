/**
 * Accuracy and time of each head/feature lever, on and off, printed as JSON:
 *   - clothing7: train/ -> test/ (the confirmation; settings were chosen by CV only);
 *   - clothing7: stratified 5-fold CV on train/ over several fold partitions (top-1 and
 *     balanced accuracy, and the paired difference to the baseline with its standard error);
 *   - the second set: clothing10-all's train/ subsampled to 10-33 photos per class (3 seeded
 *     draws, minus every photo that is also in clothing7), scored on its test/.
 * Time = cold feature extraction the lever needs (measured on clothing7 with an empty cache,
 * wall and CPU seconds) + the head's fit on all of clothing7 train/.
 *   node --import tsx bench/accuracy.ts [--levers a,b] [--parts 99,7,13,1,2] [--draws 0,1,2] > accuracy.json
 * BENCH_CACHE=<file> reuses a feature cache across runs (cold times are still measured apart).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/backbone/backbone.js';
import { splitUnit } from '../src/dataset/split.js';
import { augmentSpecs, type AugmentSpec, type CropOptions } from '../src/image/augment.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractAugmented, extractFeatures } from '../src/features/extract.js';
import { fitNcm } from './levers/ncm.js';
import { chooseL2 } from './levers/select.js';
import { predictSolved, solveHead } from './levers/solve.js';
import { fitHead, predictHead, type Dataset } from '../src/head/train.js';
import type { FeatureTransform } from './levers/transform.js';
import type { RegionGrid } from '../src/onnx/edit.js';
import { QUALITY, QUALITY_NAMES, type QualityName } from '../src/pipeline/quality.js';
import { clothing10Subset, clothing7, type BenchSet } from './accuracy-data.js';

/** One setting of every lever. */
export interface Lever {
  /** 'crop': the zoo's shorter side to 256, center 224 (cropRatio 0.875); 'full': cropRatio 1, the whole shorter side. */
  readonly resize: 'crop' | 'full';
  readonly head: 'adam' | 'solve' | 'ncm' | 'kernel';
  /** Kernel head: the ridge added to the RBF Gram matrix. */
  readonly ridge?: number;
  readonly l2?: number;
  /** Choose l2 by inner 5-fold CV on the plain training features. */
  readonly selectL2?: boolean;
  readonly transform?: FeatureTransform;
  /** Train on the mirror image too. */
  readonly flip?: boolean;
  /** Random resized crops per training photo. */
  readonly crops?: number;
  readonly cropOptions?: CropOptions;
  /** Average probabilities over the test photo and its mirror. */
  readonly tta?: boolean;
  readonly hidden?: number;
  readonly dropout?: number;
  /** Region averages besides the global one (the quality presets' `regions`). */
  readonly regions?: RegionGrid;
}

/** Levers with the same family share their backbone features. */
function family(lever: Lever): string {
  return lever.resize + (lever.regions ? `+${lever.regions.rows}x${lever.regions.cols}` : '');
}

const SQRT_L2: FeatureTransform = { power: 0.5, l2: true };

const GRID_3X3: RegionGrid = { rows: 3, cols: 3 };

/** A `--quality` preset as the bench runs it (crop options and head options other than L2 are train()'s defaults). */
function presetLever(name: QualityName): Lever {
  const q = QUALITY[name];
  return { resize: 'crop', head: 'adam', tta: q.tta, flip: q.augment?.flip, crops: q.augment?.crops, regions: q.regions, l2: q.head?.l2 };
}

export const LEVERS: Record<string, Lever> = {
  baseline: { resize: 'crop', head: 'adam' },
  solver: { resize: 'crop', head: 'solve', l2: 0.5 },
  'solver+sqrtL2': { resize: 'crop', head: 'solve', l2: 0.5, transform: SQRT_L2 },
  'solver+selectL2': { resize: 'crop', head: 'solve', selectL2: true },
  'ncm+sqrtL2': { resize: 'crop', head: 'ncm', transform: SQRT_L2 },
  'solver+tta': { resize: 'crop', head: 'solve', l2: 0.5, tta: true },
  'adam+flip+crops10': { resize: 'crop', head: 'adam', flip: true, crops: 10 },
  'solver+flip+crops10': { resize: 'crop', head: 'solve', l2: 0.5, flip: true, crops: 10 },
  'full-frame': { resize: 'full', head: 'adam' },
  'full-frame+solver+tta': { resize: 'full', head: 'solve', l2: 0.5, tta: true },
  'solver+sqrtL2+tta': { resize: 'crop', head: 'solve', l2: 0.5, transform: SQRT_L2, tta: true },
  'solver+sqrtL2+flip+crops10+tta': { resize: 'crop', head: 'solve', l2: 0.5, transform: SQRT_L2, flip: true, crops: 10, tta: true },
  // Mirror averaging and augmented views without region features (the presets of the previous release).
  mirror: { resize: 'crop', head: 'adam', tta: true },
  'mirror+crops3': { resize: 'crop', head: 'adam', flip: true, crops: 3, tta: true },
  'mirror+crops4': { resize: 'crop', head: 'adam', flip: true, crops: 4, tta: true },
  'mirror+crops5': { resize: 'crop', head: 'adam', flip: true, crops: 5, tta: true },
  'mirror+crops10': { resize: 'crop', head: 'adam', flip: true, crops: 10, tta: true },
  'adam+flip+tta': { resize: 'crop', head: 'adam', flip: true, tta: true },
  'solver+sqrtL2+flip+crops5+tta': { resize: 'crop', head: 'solve', l2: 0.5, transform: SQRT_L2, flip: true, crops: 5, tta: true },
  // Region averages beside the global one: 3 horizontal bands, a 2x2 and a 3x3 grid of the 7x7 map.
  'regions3x3': { resize: 'crop', head: 'adam', regions: GRID_3X3 },
  'mirror+crops3+bands3': { resize: 'crop', head: 'adam', flip: true, crops: 3, tta: true, regions: { rows: 3, cols: 1 } },
  'mirror+crops3+2x2': { resize: 'crop', head: 'adam', flip: true, crops: 3, tta: true, regions: { rows: 2, cols: 2 } },
  ...Object.fromEntries(
    [0.5, 1, 3].map((l2) => [`mirror+crops3+3x3+l2=${l2}`, { resize: 'crop', head: 'adam', flip: true, crops: 3, tta: true, regions: GRID_3X3, l2 } satisfies Lever]),
  ),
  'mirror+3x3+l2=0.5': { resize: 'crop', head: 'adam', tta: true, regions: GRID_3X3 },
  'mirror+crops10+3x3+l2=0.5': { resize: 'crop', head: 'adam', flip: true, crops: 10, tta: true, regions: GRID_3X3 },
  // Kernel ridge (RBF) heads: on the plain features, and on the default's features and views.
  ...Object.fromEntries([0.01, 0.1, 1].map((ridge) => [`kernel+ridge=${ridge}`, { resize: 'crop', head: 'kernel', ridge } satisfies Lever])),
  ...Object.fromEntries(
    [0.1, 1].map((ridge) => [`kernel+mirror+crops3+3x3+ridge=${ridge}`, { resize: 'crop', head: 'kernel', ridge, flip: true, crops: 3, tta: true, regions: GRID_3X3 } satisfies Lever]),
  ),
  // One hidden ReLU layer with dropout (its own L2 default), on the old balanced's features and views.
  'mlp512+mirror+crops3': { resize: 'crop', head: 'adam', hidden: 512, dropout: 0.5, flip: true, crops: 3, tta: true },
  'mlp128+mirror+crops3': { resize: 'crop', head: 'adam', hidden: 128, dropout: 0.5, flip: true, crops: 3, tta: true },
  'mlp128+mirror+crops3+3x3': { resize: 'crop', head: 'adam', hidden: 128, dropout: 0.5, flip: true, crops: 3, tta: true, regions: GRID_3X3 },
  // The presets as src/pipeline/quality.ts defines them.
  ...Object.fromEntries(QUALITY_NAMES.filter((q) => q !== 'plain').map((q) => [q, presetLever(q)])),
};

const { values: args } = parseArgs({
  options: {
    levers: { type: 'string' },
    parts: { type: 'string', default: '99,7,13,1,2' },
    draws: { type: 'string', default: '0,1,2' },
    folds: { type: 'string', default: '5' },
    'no-test': { type: 'boolean', default: false },
  },
});
const leverNames = args.levers ? args.levers.split(',') : Object.keys(LEVERS);
for (const n of leverNames) if (!LEVERS[n]) throw new Error(`unknown lever ${n}; known: ${Object.keys(LEVERS).join(', ')}`);
const PARTS = args.parts!.split(',').map(Number);
const DRAWS = args.draws!.split(',').map(Number);
const FOLDS = Number(args.folds);

const temp = await mkdtemp(join(tmpdir(), 'headswap-accuracy-'));
const cachePath = process.env.BENCH_CACHE ?? join(temp, 'cache.sqlite');

/** Every feature a photo can contribute: the plain view, the mirror, the random crops. */
interface PhotoFeatures {
  plain: Float32Array;
  flip?: Float32Array;
  crops: Float32Array[];
}

async function loadBackbone(lever: Lever): Promise<Backbone> {
  return Backbone.load('mobilenet_v2', { regions: lever.regions, ...(lever.resize === 'full' ? { preprocessing: { cropRatio: 1 } } : {}) });
}

function specsFor(crops: number, options?: CropOptions): AugmentSpec[] {
  return augmentSpecs(crops, 0, options ?? {});
}

async function featuresOf(set: BenchSet, lever: Lever, crops: number, cache: FeatureCache): Promise<{ train: PhotoFeatures[]; test: PhotoFeatures[] }> {
  const backbone = await loadBackbone(lever);
  try {
    const plain = await extractFeatures(backbone, [...set.train, ...set.test].map((f) => f.path), { cache });
    const specs = specsFor(crops);
    const views = await extractAugmented(backbone, set.train.map((f) => f.path), specs, { cache });
    const mirrors = await extractAugmented(backbone, set.test.map((f) => f.path), specs.slice(0, 1), { cache });
    const byPath = new Map<string, PhotoFeatures>(plain.features.map((f) => [f.path, { plain: f.vector, crops: [] }]));
    for (const v of [...views.features, ...mirrors.features]) {
      const p = byPath.get(v.path)!;
      if (v.variant === specs[0]!.id) p.flip = v.vector;
      else p.crops.push(v.vector);
    }
    if (plain.skipped.length + views.skipped.length + mirrors.skipped.length > 0) throw new Error(`${set.name}: unreadable photos`);
    return { train: set.train.map((f) => byPath.get(f.path)!), test: set.test.map((f) => byPath.get(f.path)!) };
  } finally {
    await backbone.release();
  }
}

function dataset(rows: Float32Array[], y: number[], classes: number): Dataset {
  const d = rows[0]!.length;
  const x = new Float32Array(rows.length * d);
  rows.forEach((r, i) => x.set(r, i * d));
  return { x, y: Int32Array.from(y), n: rows.length, d, classes };
}

/** Rows centered on the training mean and scaled to unit length. */
function normalizeRows(x: Float32Array, n: number, mean: Float64Array): Float64Array {
  const d = mean.length;
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j]! - mean[j]!;
      out[i * d + j] = v;
      norm += v * v;
    }
    const inv = 1 / Math.sqrt(norm || 1);
    for (let j = 0; j < d; j++) out[i * d + j]! *= inv;
  }
  return out;
}

/** a (na x d) . b (nb x d)^T */
function dots(a: Float64Array, na: number, b: Float64Array, nb: number, d: number): Float64Array {
  const out = new Float64Array(na * nb);
  for (let i = 0; i < na; i++) {
    for (let j = 0; j < nb; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a[i * d + k]! * b[j * d + k]!;
      out[i * nb + j] = s;
    }
  }
  return out;
}

/**
 * Kernel ridge classification (the "kernel/SVM-style head"): an RBF kernel on
 * centered, unit-length features (gamma = 1 / the median squared distance between training
 * rows), one-hot targets, dual weights from (K + ridge I) A = Y by Cholesky. Scores are turned
 * into probabilities by a softmax of 10x the scores: top-1/top-5 are exact, log-loss is not calibrated.
 */
function fitKernelRidge(data: Dataset, ridge: number): (x: Float32Array, n: number) => Float32Array {
  const { n, d, classes } = data;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j]! += data.x[i * d + j]! / n;
  const xs = normalizeRows(data.x, n, mean);
  const gram = dots(xs, n, xs, n, d);
  const dist: number[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) dist.push(2 - 2 * gram[i * n + j]!);
  dist.sort((a, b) => a - b);
  const gamma = 1 / Math.max(1e-12, dist[Math.floor(dist.length / 2)] ?? 1);
  const k = gram.map((g) => Math.exp(-gamma * (2 - 2 * g)));
  for (let i = 0; i < n; i++) k[i * n + i]! += ridge;
  // Cholesky: k = L L^T, in place in the lower triangle.
  for (let j = 0; j < n; j++) {
    let s = k[j * n + j]!;
    for (let p = 0; p < j; p++) s -= k[j * n + p]! ** 2;
    const l = Math.sqrt(s);
    k[j * n + j] = l;
    for (let i = j + 1; i < n; i++) {
      let t = k[i * n + j]!;
      for (let p = 0; p < j; p++) t -= k[i * n + p]! * k[j * n + p]!;
      k[i * n + j] = t / l;
    }
  }
  const alpha = new Float64Array(n * classes);
  for (let c = 0; c < classes; c++) {
    const z = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let t = data.y[i] === c ? 1 : 0;
      for (let p = 0; p < i; p++) t -= k[i * n + p]! * z[p]!;
      z[i] = t / k[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let t = z[i]!;
      for (let p = i + 1; p < n; p++) t -= k[p * n + i]! * alpha[p * classes + c]!;
      alpha[i * classes + c] = t / k[i * n + i]!;
    }
  }
  return (x, m) => {
    const kt = dots(normalizeRows(x, m, mean), m, xs, n, d);
    const probs = new Float32Array(m * classes);
    for (let i = 0; i < m; i++) {
      const scores = Array.from({ length: classes }, (_, c) => {
        let s = 0;
        for (let j = 0; j < n; j++) s += Math.exp(-gamma * (2 - 2 * kt[i * n + j]!)) * alpha[j * classes + c]!;
        return 10 * s;
      });
      const max = Math.max(...scores);
      const e = scores.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      e.forEach((v, c) => (probs[i * classes + c] = v / sum));
    }
    return probs;
  };
}

/** Fits the lever's head on the training photos (with their views) and returns test probabilities. */
async function fitPredict(lever: Lever, train: PhotoFeatures[], labels: number[], test: PhotoFeatures[], classes: number, seed: number): Promise<{ probs: Float32Array; ms: number }> {
  const rows: Float32Array[] = [];
  const y: number[] = [];
  train.forEach((f, i) => {
    const views = [f.plain, ...(lever.flip ? [f.flip!] : []), ...f.crops.slice(0, lever.crops ?? 0)];
    for (const v of views) {
      rows.push(v);
      y.push(labels[i]!);
    }
  });
  const data = dataset(rows, y, classes);
  const started = performance.now();
  let predict: (x: Float32Array, n: number) => Float32Array;
  if (lever.head === 'ncm') {
    const head = fitNcm(data, { transform: lever.transform });
    predict = (x, n) => predictSolved(head, x, n);
  } else if (lever.head === 'kernel') {
    predict = fitKernelRidge(data, lever.ridge ?? 0.1);
  } else if (lever.head === 'solve') {
    const l2 = lever.selectL2 ? chooseL2(dataset(train.map((f) => f.plain), labels, classes), { transform: lever.transform }).l2 : lever.l2;
    const head = solveHead(data, { l2, transform: lever.transform });
    predict = (x, n) => predictSolved(head, x, n);
  } else {
    const head = await fitHead(data, undefined, { seed, hidden: lever.hidden, dropout: lever.dropout, l2: lever.l2 });
    predict = (x, n) => predictHead(head.weights, x, n);
  }
  const ms = performance.now() - started;
  const testData = dataset(test.map((f) => f.plain), test.map(() => 0), classes);
  let probs = predict(testData.x, testData.n);
  if (lever.tta) {
    const mirrored = dataset(test.map((f) => f.flip!), test.map(() => 0), classes);
    const other = predict(mirrored.x, mirrored.n);
    probs = probs.map((p, i) => (p + other[i]!) / 2);
  }
  return { probs, ms };
}

interface Scores {
  top1: number;
  top5: number;
  balanced: number;
  logLoss: number;
}

function score(probs: Float32Array, labels: readonly number[], classes: number): Scores {
  let top1 = 0;
  let top5 = 0;
  let logLoss = 0;
  const hits = new Float64Array(classes);
  const counts = new Float64Array(classes);
  labels.forEach((c, i) => {
    const row = probs.subarray(i * classes, (i + 1) * classes);
    // Rank by strictly higher probabilities: ties count in the photo's favour, as in evaluate().
    const rank = row.filter((p) => p > row[c]!).length;
    counts[c]!++;
    if (rank === 0) {
      top1++;
      hits[c]!++;
    }
    if (rank < Math.min(5, classes)) top5++;
    logLoss -= Math.log(Math.max(row[c]!, 1e-12));
  });
  const recalls = [...counts.keys()].filter((c) => counts[c]! > 0).map((c) => hits[c]! / counts[c]!);
  return { top1: top1 / labels.length, top5: top5 / labels.length, balanced: recalls.reduce((a, b) => a + b, 0) / recalls.length, logLoss: logLoss / labels.length };
}

const pct = (v: number): number => +(100 * v).toFixed(1);
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const se = (xs: readonly number[]): number => {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1) / xs.length);
};

/** Per-fold scores of 5-fold CV on the training photos, for each fold partition seed. */
async function crossValidate(lever: Lever, set: BenchSet, feats: PhotoFeatures[]): Promise<Scores[]> {
  const C = set.classes.length;
  const out: Scores[] = [];
  for (const part of PARTS) {
    const fold = new Map<number, number>();
    for (let c = 0; c < C; c++) {
      set.train
        .map((f, i) => ({ f, i }))
        .filter((r) => r.f.label === c)
        .sort((a, b) => splitUnit(part, a.f.relPath) - splitUnit(part, b.f.relPath))
        .forEach((r, k) => fold.set(r.i, k % FOLDS));
    }
    for (let k = 0; k < FOLDS; k++) {
      const fit = set.train.map((_, i) => i).filter((i) => fold.get(i) !== k);
      const held = set.train.map((_, i) => i).filter((i) => fold.get(i) === k);
      const r = await fitPredict(lever, fit.map((i) => feats[i]!), fit.map((i) => set.train[i]!.label), held.map((i) => feats[i]!), C, part);
      out.push(score(r.probs, held.map((i) => set.train[i]!.label), C));
    }
  }
  return out;
}

/** Cold extraction on an empty cache: wall and CPU seconds for each kind of view clothing7 needs. */
async function coldTimes(set: BenchSet, lever: Lever, crops: number): Promise<{ plain: number[]; flipTrain: number[]; crops: number[]; flipTest: number[] }> {
  const cache = FeatureCache.open(join(temp, `cold-${family(lever)}-${Date.now()}.sqlite`));
  const backbone = await loadBackbone(lever);
  const timed = async (fn: () => Promise<unknown>): Promise<number[]> => {
    const cpu = process.cpuUsage();
    const t = performance.now();
    await fn();
    const used = process.cpuUsage(cpu);
    return [+((performance.now() - t) / 1000).toFixed(2), +((used.user + used.system) / 1e6).toFixed(2)];
  };
  try {
    const specs = specsFor(crops);
    // Session creation is part of a cold run: it is inside the first timing.
    const plain = await timed(() => extractFeatures(backbone, [...set.train, ...set.test].map((f) => f.path), { cache }));
    const flipTrain = await timed(() => extractAugmented(backbone, set.train.map((f) => f.path), specs.slice(0, 1), { cache }));
    const cropTimes = await timed(() => extractAugmented(backbone, set.train.map((f) => f.path), specs.slice(1), { cache }));
    const flipTest = await timed(() => extractAugmented(backbone, set.test.map((f) => f.path), specs.slice(0, 1), { cache }));
    return { plain, flipTrain, crops: cropTimes, flipTest };
  } finally {
    cache.close();
    await backbone.release();
  }
}

const cache = FeatureCache.open(cachePath);
try {
  const c7 = await clothing7();
  const draws = await Promise.all(DRAWS.map((d) => clothing10Subset(d, temp)));
  // One representative lever per feature family.
  const families = new Map(leverNames.map((n) => [family(LEVERS[n]!), LEVERS[n]!]));
  const cold: Record<string, Awaited<ReturnType<typeof coldTimes>>> = {};
  // Crops only for the families whose levers use them.
  const cropsFor = (f: string): number => Math.max(0, ...leverNames.filter((n) => family(LEVERS[n]!) === f).map((n) => LEVERS[n]!.crops ?? 0));
  for (const [f, lever] of families) cold[f] = await coldTimes(c7, lever, cropsFor(f));
  const feats = new Map<string, { train: PhotoFeatures[]; test: PhotoFeatures[] }>();
  for (const [f, lever] of families) {
    feats.set(`clothing7/${f}`, await featuresOf(c7, lever, cropsFor(f), cache));
    for (const s of draws) feats.set(`${s.name}/${f}`, await featuresOf(s, lever, cropsFor(f), cache));
  }
  const baselineCv = new Map<string, Scores[]>();
  const results: Record<string, unknown> = {};
  for (const name of leverNames) {
    const lever = LEVERS[name]!;
    const f7 = feats.get(`clothing7/${family(lever)}`)!;
    const C7 = c7.classes.length;
    const test = args['no-test'] ? undefined : await fitPredict(lever, f7.train, c7.train.map((f) => f.label), f7.test, C7, 0);
    const testScores = test && score(test.probs, c7.test.map((f) => f.label), C7);
    const cv = await crossValidate(lever, c7, f7.train);
    if (name === 'baseline' || !baselineCv.has('baseline')) baselineCv.set(name, cv);
    const base = baselineCv.get('baseline');
    const diff = base && name !== 'baseline' ? cv.map((s, i) => s.balanced - base[i]!.balanced) : undefined;
    const second: Scores[] = [];
    for (const s of draws) {
      const f = feats.get(`${s.name}/${family(lever)}`)!;
      const r = await fitPredict(lever, f.train, s.train.map((x) => x.label), f.test, s.classes.length, 0);
      second.push(score(r.probs, s.test.map((x) => x.label), s.classes.length));
    }
    const t = cold[family(lever)]!;
    const extraction = t.plain[0]! + (lever.flip ? t.flipTrain[0]! : 0) + ((lever.crops ?? 0) > 0 ? (t.crops[0]! * (lever.crops ?? 0)) / Math.max(1, cropsFor(family(lever))) : 0) + (lever.tta ? t.flipTest[0]! : 0);
    results[name] = {
      lever,
      clothing7Test: testScores && { top1: pct(testScores.top1), top5: pct(testScores.top5), balanced: pct(testScores.balanced), logLoss: +testScores.logLoss.toFixed(3) },
      clothing7Cv: {
        top1: pct(mean(cv.map((s) => s.top1))),
        top5: pct(mean(cv.map((s) => s.top5))),
        balanced: pct(mean(cv.map((s) => s.balanced))),
        logLoss: +mean(cv.map((s) => s.logLoss)).toFixed(3),
        ...(diff ? { balancedVsBaseline: pct(mean(diff)), balancedVsBaselineSe: pct(se(diff)) } : {}),
      },
      second: {
        top1: pct(mean(second.map((s) => s.top1))),
        top5: pct(mean(second.map((s) => s.top5))),
        balanced: pct(mean(second.map((s) => s.balanced))),
        logLoss: +mean(second.map((s) => s.logLoss)).toFixed(3),
        top1PerDraw: second.map((s) => pct(s.top1)),
      },
      time: { coldExtractionSeconds: +extraction.toFixed(2), headSeconds: test ? +(test.ms / 1000).toFixed(2) : null },
    };
    console.error(name, JSON.stringify(results[name]));
  }
  console.log(
    JSON.stringify(
      {
        protocol: {
          clothing7Test: 'train on clothing7/train (150), score clothing7/test (174, balanced)',
          clothing7Cv: `stratified ${FOLDS}-fold CV on clothing7/train, fold partitions ${PARTS.join(',')}; balancedVsBaseline = mean paired per-fold difference of balanced accuracy, with its standard error`,
          second: `clothing10-all train/ subsampled to 10-33 per class (draws ${DRAWS.join(',')}), scored on its test/; overlap with clothing7 removed (by file name ${draws[0]?.excluded.byName ?? 0}, by sha256 ${draws[0]?.excluded.bySha ?? 0} photos); ${draws[0]?.test.length ?? 0} test photos`,
          coldTimes: 'seconds [wall, cpu] on an empty cache for clothing7: plain train+test, mirror of train, crops of train, mirror of test',
        },
        coldTimes: cold,
        results,
      },
      null,
      2,
    ),
  );
} finally {
  cache.close();
  await rm(temp, { recursive: true, force: true });
}
