/**
 * Chooses head settings without looking at any test photo: stratified 5-fold cross-validation
 * on clothing7's train/ only, running train()'s own protocol inside each fold (hash split of
 * the fold's training part into train/validation, early stopping on validation, optional refit
 * on train+validation). Prints mean top-1 over folds and seeds for each setting as JSON.
 *   node --import tsx bench/head-cv.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Backbone } from '../src/backbone/backbone.js';
import { scanDataset } from '../src/dataset/scan.js';
import { splitDataset, splitUnit } from '../src/dataset/split.js';
import { databasePath } from '../src/runtime/download.js';
import { FeatureCache } from '../src/features/cache.js';
import { extractFeatures } from '../src/features/extract.js';
import { fitHead, predictHead, type Dataset, type FitOptions } from '../src/head/train.js';
import { packagePath } from '../src/util/paths.js';

const FOLDS = 5;
const SEEDS = [0, 1, 2, 3, 4, 5];
const dir = await mkdtemp(join(tmpdir(), 'headswap-cv-'));
const scanned = await scanDataset(packagePath('data', 'clothing7', 'train'));
const backbone = await Backbone.load('mobilenet_v2');
const cache = FeatureCache.open(databasePath(dir));
const { features } = await extractFeatures(backbone, scanned.files.map((f) => f.path), { cache });
cache.close();
await backbone.release();
const d = features[0]!.vector.length;
const classes = scanned.classes.length;
const items = scanned.files.map((f, i) => ({ ...f, vector: features[i]!.vector }));

function dataset(rows: typeof items): Dataset {
  const x = new Float32Array(rows.length * d);
  rows.forEach((r, i) => x.set(r.vector, i * d));
  return { x, y: Int32Array.from(rows, (r) => r.label), n: rows.length, d, classes };
}

/** Top-1 and balanced accuracy (mean recall over classes: what a balanced test set measures). */
function accuracy(probs: Float32Array, data: Dataset): [number, number] {
  let correct = 0;
  const hits = new Float64Array(classes);
  const counts = new Float64Array(classes);
  for (let i = 0; i < data.n; i++) {
    const row = probs.subarray(i * classes, (i + 1) * classes);
    const c = data.y[i]!;
    counts[c]!++;
    if (row.indexOf(Math.max(...row)) === c) {
      correct++;
      hits[c]!++;
    }
  }
  const recalls = [...counts.keys()].filter((c) => counts[c]! > 0).map((c) => hits[c]! / counts[c]!);
  return [correct / data.n, recalls.reduce((a, b) => a + b, 0) / recalls.length];
}

// Folds by rank of each file's hash within its class: stratified and independent of the seed.
const fold = new Map<string, number>();
for (let c = 0; c < classes; c++) {
  const inClass = items.filter((r) => r.label === c).sort((a, b) => splitUnit(99, a.relPath) - splitUnit(99, b.relPath));
  inClass.forEach((r, i) => fold.set(r.relPath, i % FOLDS));
}

const settings: Record<string, FitOptions & { valPct?: number }> = JSON.parse(process.argv[2] ?? '{"default": {}}');
const results: Record<string, { top1: number; std: number; balanced: number; seedRange: number[]; ms: number }> = {};
for (const [name, options] of Object.entries(settings)) {
  const scores: number[] = [];
  const balanced: number[] = [];
  let ms = 0;
  for (const seed of SEEDS) {
    for (let k = 0; k < FOLDS; k++) {
      const trainPart = items.filter((r) => fold.get(r.relPath) !== k);
      const heldOut = dataset(items.filter((r) => fold.get(r.relPath) === k));
      const { valPct = 10, ...fit } = options;
      const split = splitDataset(trainPart, scanned.classes, { valPct, testPct: 0, seed, hasSeparateTest: true });
      const t = performance.now();
      const validation = split.validation.length > 0 ? dataset(split.validation) : undefined;
      const head = await fitHead(dataset(split.train), validation, { seed, ...fit });
      ms += performance.now() - t;
      const [top1, bal] = accuracy(predictHead(head.weights, heldOut.x, heldOut.n), heldOut);
      scores.push(top1);
      balanced.push(bal);
    }
  }
  const mean = scores.reduce((a, b) => a + b, 0) / scores.length;
  // Spread of the whole CV estimate from seed to seed: how much a user's result depends on luck.
  const perSeed = SEEDS.map((_, i) => scores.slice(i * FOLDS, (i + 1) * FOLDS).reduce((a, b) => a + b, 0) / FOLDS);
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / scores.length);
  results[name] = { top1: +(mean * 100).toFixed(1), std: +(std * 100).toFixed(1), balanced: +((balanced.reduce((a, b) => a + b, 0) / balanced.length) * 100).toFixed(1), seedRange: [Math.min(...perSeed), Math.max(...perSeed)].map((v) => +(v * 100).toFixed(1)), ms: +(ms / scores.length).toFixed(0) };
  console.error(name, results[name]);
}
console.log(JSON.stringify({ protocol: `${FOLDS}-fold CV on clothing7 train/ x seeds ${SEEDS.join(',')}`, results }, null, 2));
await rm(dir, { recursive: true, force: true });
