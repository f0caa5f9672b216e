import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { HeadswapError } from '../errors.js';
import type { HeadWeights } from '../onnx/edit.js';
import { createRng, normal, shuffleInPlace } from './random.js';

export interface HeadOptions {
  /** Units of one hidden ReLU layer; 0 = plain softmax regression. */
  hidden?: number;
  /** Dropout rate on the (standardized) features while training. */
  dropout?: number;
  /** Adam step size. */
  learningRate?: number;
  /** Penalty `l2 * sum(w^2)` on kernels (not biases), added to the mean loss. */
  l2?: number;
  /** Mass spread evenly over all classes in the training targets. */
  labelSmoothing?: number;
  /** Maximum number of passes over the training set. */
  epochs?: number;
  /** Examples per gradient step; capped at the training-set size. */
  batchSize?: number;
  /** Epochs without a better validation loss before stopping (best weights are restored). */
  patience?: number;
  /** 'balanced': class c's examples weigh n / (classes * n_c), so every class counts equally. */
  classWeights?: 'balanced' | 'none';
  /** Seeds initialization, shuffling and dropout. */
  seed?: number;
}

/** Row-major examples: `x` holds n rows of d features, `y` their class indices. */
export interface Dataset {
  x: Float32Array;
  y: Int32Array;
  n: number;
  d: number;
  classes: number;
}

/**
 * One epoch. `loss`/`valLoss` are class-weighted cross-entropy without label smoothing or L2
 * (what a caller cares about, and the same measure on both sets); accuracies are plain.
 */
export interface EpochLog {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface TrainedHead {
  weights: HeadWeights;
  history: EpochLog[];
  /** 1-based epoch whose weights were kept: the lowest validation loss, or the last epoch without validation data. */
  bestEpoch: number;
  options: Required<HeadOptions>;
  millis: number;
}

/**
 * Defaults, chosen for the product's case: ~150-300 photos, 5-10 classes, ~1000-2000 features.
 * - hidden 0: with a few dozen examples per class a linear head on good features is as accurate
 *   as an MLP and has nothing to overfit beyond the linear map.
 * - l2 1e-3: standardized 1280-d features with 150 examples are linearly separable, so without
 *   a penalty the weights only grow; 1e-3 equals scikit-learn's LogisticRegression C ≈ 3 at
 *   n = 150 (C = 1 / (2 * l2 * n)) and still lets each class's decision use many feature dims.
 * - labelSmoothing 0.1: keeps the exported probabilities from saturating at 0/1 on such small sets.
 * - learningRate 1e-3 / epochs 200 / batch 32: on 1280 standardized inputs one Adam step already
 *   moves a logit by ~1, so this converges in well under 200 epochs; patience 20 stops long before
 *   when validation data is given.
 * - classWeights 'balanced': photo folders are often uneven (10 vs 33 per class); without it the
 *   head learns to favour the big classes.
 */
export const HEAD_DEFAULTS: Readonly<Required<HeadOptions>> = {
  hidden: 0,
  dropout: 0,
  learningRate: 1e-3,
  l2: 1e-3,
  labelSmoothing: 0.1,
  epochs: 200,
  batchSize: 32,
  patience: 20,
  classWeights: 'balanced',
  seed: 0,
};

/**
 * Floor for a feature's standard deviation, relative to the average one. Dims that barely vary in
 * the training set (dead ReLU channels) would otherwise turn tiny deviations at prediction time
 * into huge standardized values; a relative floor works for any backbone's feature scale.
 */
const STD_FLOOR_RELATIVE = 1e-2;
/** Absolute floor for the degenerate case where every feature is constant. */
const STD_FLOOR_ABSOLUTE = 1e-6;

function checkDataset(data: Dataset, what: string): void {
  const { x, y, n, d, classes } = data;
  if (!Number.isInteger(n) || n < 1) throw new HeadswapError(`${what} set is empty (n = ${n}); it needs at least one example`);
  if (!Number.isInteger(d) || d < 1) throw new HeadswapError(`${what} set has ${d} features per example; it needs at least one`);
  if (!Number.isInteger(classes) || classes < 2) throw new HeadswapError(`${what} set has ${classes} classes; a classifier needs at least 2`);
  if (x.length !== n * d) throw new HeadswapError(`${what} set has ${x.length} feature values; expected n * d = ${n} * ${d} = ${n * d}`);
  if (y.length !== n) throw new HeadswapError(`${what} set has ${y.length} labels for ${n} examples`);
  for (let i = 0; i < n; i++) {
    const c = y[i]!;
    if (c < 0 || c >= classes) throw new HeadswapError(`${what} example ${i} has label ${c}; labels must be 0..${classes - 1}`);
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) {
      throw new HeadswapError(`${what} example ${Math.floor(i / d)} has a non-finite feature (${x[i]}) at dim ${i % d}; re-extract its features`);
    }
  }
}

function resolveOptions(options: HeadOptions): Required<HeadOptions> {
  const o: Required<HeadOptions> = { ...HEAD_DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) Object.assign(o, { [key]: value });
  }
  const bad = (name: string, rule: string): never => {
    throw new HeadswapError(`head option ${name} = ${String(o[name as keyof HeadOptions])} is invalid; it must be ${rule}`);
  };
  if (!Number.isInteger(o.hidden) || o.hidden < 0) bad('hidden', 'an integer >= 0');
  if (!(o.dropout >= 0 && o.dropout < 1)) bad('dropout', 'in [0, 1)');
  if (!(o.learningRate > 0 && Number.isFinite(o.learningRate))) bad('learningRate', 'a positive number');
  if (!(o.l2 >= 0 && Number.isFinite(o.l2))) bad('l2', 'a number >= 0');
  if (!(o.labelSmoothing >= 0 && o.labelSmoothing < 1)) bad('labelSmoothing', 'in [0, 1)');
  if (!Number.isInteger(o.epochs) || o.epochs < 1) bad('epochs', 'an integer >= 1');
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) bad('batchSize', 'an integer >= 1');
  if (!Number.isInteger(o.patience) || o.patience < 1) bad('patience', 'an integer >= 1');
  if (o.classWeights !== 'balanced' && o.classWeights !== 'none') bad('classWeights', "'balanced' or 'none'");
  if (!Number.isFinite(o.seed)) bad('seed', 'a finite number');
  return o;
}

/** Per-dimension mean and floored standard deviation, accumulated in float64. */
function standardization(data: Dataset): { mean: Float32Array; std: Float32Array } {
  const { x, n, d } = data;
  const sum = new Float64Array(d);
  const sq = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) sum[j]! += x[i * d + j]!;
  const mean = new Float32Array(d);
  for (let j = 0; j < d; j++) mean[j] = sum[j]! / n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const diff = x[i * d + j]! - mean[j]!;
      sq[j]! += diff * diff;
    }
  }
  const raw = Array.from(sq, (s) => Math.sqrt(s / n));
  const floor = Math.max(STD_FLOOR_ABSOLUTE, (STD_FLOOR_RELATIVE * raw.reduce((a, b) => a + b, 0)) / d);
  if (process.env.HS_GLOBAL) { const g = Math.sqrt(raw.reduce((a, b) => a + b * b, 0) / d); return { mean, std: new Float32Array(d).fill(g) }; }
  return { mean, std: Float32Array.from(raw, (s) => Math.max(s, floor)) };
}

/** Standardizes rows with the same float32 operations (sub, then div) as the exported graph. */
function standardize(data: Dataset, mean: Float32Array, std: Float32Array): Float32Array {
  const { x, n, d } = data;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) out[i * d + j] = Math.fround(x[i * d + j]! - mean[j]!) / std[j]!;
  }
  return out;
}

/** weight_c = n / (classes * n_c) ('balanced'), or 1 for every class. */
function classWeightsOf(data: Dataset, mode: 'balanced' | 'none'): Float64Array {
  const counts = new Float64Array(data.classes);
  for (const c of data.y) counts[c]! += 1;
  const missing = counts.findIndex((k) => k === 0);
  if (missing >= 0) throw new HeadswapError(`class ${missing} has no training examples; every class needs at least one`);
  return counts.map((k) => (mode === 'balanced' ? data.n / (data.classes * k) : 1));
}

/** Training targets: label-smoothed one-hot rows, each pre-multiplied by its class weight. */
function weightedTargets(data: Dataset, weights: Float64Array, smoothing: number): Float32Array {
  const { n, classes } = data;
  const t = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    const c = data.y[i]!;
    const w = weights[c]!;
    for (let k = 0; k < classes; k++) t[i * classes + k] = w * ((k === c ? 1 - smoothing : 0) + smoothing / classes);
  }
  return t;
}

interface Layer {
  kernel: tf.Variable;
  bias: tf.Variable;
  inputs: number;
  units: number;
}

/**
 * Kernels: He-normal for the hidden layer (it feeds a ReLU); zeros for the output layer. A zero
 * output layer starts at uniform probabilities, and for softmax regression it keeps weight out of
 * the many feature directions the few training examples never span (random weights there would be
 * pure noise at prediction time).
 */
function createLayers(d: number, hidden: number, classes: number, rng: () => number): Layer[] {
  const sizes = hidden > 0 ? [d, hidden, classes] : [d, classes];
  const layers: Layer[] = [];
  for (let i = 0; i + 1 < sizes.length; i++) {
    const inputs = sizes[i]!;
    const units = sizes[i + 1]!;
    const last = i + 2 === sizes.length;
    const scale = Math.sqrt(2 / inputs);
    const init = last ? new Float32Array(inputs * units) : Float32Array.from({ length: inputs * units }, () => scale * normal(rng));
    layers.push({
      kernel: tf.variable(tf.tensor2d(init, [inputs, units])),
      bias: tf.variable(tf.zeros([units])),
      inputs,
      units,
    });
  }
  return layers;
}

/** Logits of `x`; collects each layer's input in `inputs` when given (for backpropagation). */
function forward(layers: Layer[], x: tf.Tensor2D, inputs?: tf.Tensor2D[]): tf.Tensor2D {
  let h = x;
  layers.forEach((layer, i) => {
    inputs?.push(h);
    h = tf.add(tf.matMul(h, layer.kernel as tf.Tensor2D), layer.bias);
    if (i < layers.length - 1) h = tf.relu(h);
  });
  return h;
}

/**
 * One Adam step on the batch objective  sum_i(-t_i . log softmax(z_i)) / B  +  l2 * sum(kernel^2),
 * where t_i is the weighted, smoothed target row (summing to the example's class weight w_i), so
 * dL/dz_i = (w_i * softmax(z_i) - t_i) / B. Gradients are written out because tfjs-core's Node
 * build registers no gradient functions, so tf.grad / optimizer.minimize cannot differentiate.
 * Returns the batch's logits before the step (for the epoch's running loss and accuracy).
 */
function step(layers: Layer[], optimizer: tf.Optimizer, x: Float32Array, t: Float32Array, rows: number, l2: number): Float32Array {
  const logits = tf.tidy(() => {
    const inputs: tf.Tensor2D[] = [];
    const z = forward(layers, tf.tensor2d(x, [rows, x.length / rows]), inputs);
    const targets = tf.tensor2d(t, [rows, t.length / rows]);
    let dz: tf.Tensor2D = tf.div(tf.sub(tf.mul(tf.softmax(z), tf.sum(targets, 1, true)), targets), rows);
    const grads: tf.NamedTensorMap = {};
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i]!;
      const input = inputs[i]!;
      const dKernel = tf.matMul(input, dz, true, false);
      grads[layer.kernel.name] = l2 > 0 ? tf.add(dKernel, tf.mul(layer.kernel, 2 * l2)) : dKernel;
      grads[layer.bias.name] = tf.sum(dz, 0);
      // Back through the ReLU that produced this layer's input (a > 0 exactly where it passed).
      if (i > 0) dz = tf.mul(tf.matMul(dz, layer.kernel as tf.Tensor2D, false, true), tf.step(input));
    }
    optimizer.applyGradients(grads);
    return z;
  });
  const values = logits.dataSync() as Float32Array;
  logits.dispose();
  return values;
}

/** Running class-weighted cross-entropy (no smoothing) and plain accuracy over batches of logits. */
class Metrics {
  private loss = 0;
  private weight = 0;
  private correct = 0;
  private count = 0;
  constructor(private readonly classWeights: Float64Array) {}

  add(logits: Float32Array, labels: ArrayLike<number>): void {
    const classes = this.classWeights.length;
    for (let i = 0; i < labels.length; i++) {
      const c = labels[i]!;
      const row = logits.subarray(i * classes, (i + 1) * classes);
      let best = 0;
      for (let k = 1; k < classes; k++) if (row[k]! > row[best]!) best = k;
      let sum = 0;
      for (const z of row) sum += Math.exp(z - row[best]!);
      const w = this.classWeights[c]!;
      this.loss += w * (Math.log(sum) + row[best]! - row[c]!);
      this.weight += w;
      if (best === c) this.correct++;
      this.count++;
    }
  }

  result(): { loss: number; accuracy: number } {
    return { loss: this.loss / this.weight, accuracy: this.correct / this.count };
  }
}

function snapshot(layers: Layer[]): HeadWeights['layers'] {
  return layers.map((l) => ({
    kernel: new Float32Array(l.kernel.dataSync()),
    bias: new Float32Array(l.bias.dataSync()),
    inputs: l.inputs,
    units: l.units,
  }));
}

/**
 * Trains a new softmax head (optionally with one hidden ReLU layer) on backbone features.
 * Mini-batch Adam on class-weighted, label-smoothed cross-entropy plus L2 on kernels. With
 * validation data it keeps the epoch with the lowest validation loss and stops after `patience`
 * epochs without improvement; without it, it trains exactly `epochs` epochs and keeps the last.
 * The same seed gives bit-identical weights and history.
 */
export async function trainHead(train: Dataset, validation: Dataset | undefined, options: HeadOptions = {}): Promise<TrainedHead> {
  const started = performance.now();
  checkDataset(train, 'training');
  if (validation) {
    checkDataset(validation, 'validation');
    if (validation.d !== train.d || validation.classes !== train.classes) {
      throw new HeadswapError(
        `validation set has ${validation.d} features and ${validation.classes} classes; the training set has ${train.d} and ${train.classes}`,
      );
    }
  }
  const opts = { ...resolveOptions(options), batchSize: Math.min(options.batchSize ?? HEAD_DEFAULTS.batchSize, train.n) };
  const { n, d, classes } = train;

  // Prod mode only silences tfjs warnings (e.g. the CPU backend's "install tfjs-node" banner).
  tf.enableProdMode();
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  await tf.ready();

  const { mean, std } = standardization(train);
  const classWeights = classWeightsOf(train, opts.classWeights);
  const xTrain = standardize(train, mean, std);
  const targets = weightedTargets(train, classWeights, opts.labelSmoothing);
  const rng = createRng(opts.seed);
  const layers = createLayers(d, opts.hidden, classes, rng);
  const optimizer = tf.train.adam(opts.learningRate);
  const xVal = validation ? tf.tensor2d(standardize(validation, mean, std), [validation.n, d]) : undefined;
  const keep = 1 - opts.dropout;

  const history: EpochLog[] = [];
  let best = { epoch: 0, valLoss: Infinity, layers: snapshot(layers) };
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const xBatch = new Float32Array(opts.batchSize * d);
  const tBatch = new Float32Array(opts.batchSize * classes);
  try {
    for (let epoch = 1; epoch <= opts.epochs; epoch++) {
      shuffleInPlace(order, rng);
      const fit = new Metrics(classWeights);
      for (let start = 0; start < n; start += opts.batchSize) {
        const idx = order.subarray(start, Math.min(start + opts.batchSize, n));
        // Batches are gathered in JS (cheaper than tf.gather on the CPU backend), with inverted
        // dropout applied here so its mask comes from our seeded PRNG.
        for (let r = 0; r < idx.length; r++) {
          const i = idx[r]!;
          const row = xBatch.subarray(r * d, (r + 1) * d);
          row.set(xTrain.subarray(i * d, (i + 1) * d));
          if (opts.dropout > 0) for (let j = 0; j < d; j++) row[j] = rng() < keep ? row[j]! / keep : 0;
          tBatch.set(targets.subarray(i * classes, (i + 1) * classes), r * classes);
        }
        const rows = idx.length;
        const logits = step(layers, optimizer, xBatch.subarray(0, rows * d), tBatch.subarray(0, rows * classes), rows, opts.l2);
        fit.add(logits, Array.from(idx, (i) => train.y[i]!));
      }
      const log: EpochLog = { epoch, ...fit.result() };
      history.push(log);
      if (!xVal || !validation) continue;
      const logits = tf.tidy(() => forward(layers, xVal));
      const val = new Metrics(classWeights);
      val.add(logits.dataSync() as Float32Array, validation.y);
      logits.dispose();
      const { loss: valLoss, accuracy: valAccuracy } = val.result();
      Object.assign(log, { valLoss, valAccuracy });
      if (valLoss < best.valLoss) best = { epoch, valLoss, layers: snapshot(layers) };
      else if (epoch - best.epoch >= opts.patience) break;
    }
    if (!xVal) best = { epoch: opts.epochs, valLoss: NaN, layers: snapshot(layers) };
  } finally {
    optimizer.dispose();
    tf.dispose([...layers.flatMap((l) => [l.kernel, l.bias]), ...(xVal ? [xVal] : [])]);
  }
  return { weights: { mean, std, layers: best.layers }, history, bestEpoch: best.epoch, options: opts, millis: performance.now() - started };
}

/**
 * Class probabilities (n * classes, row-major) in plain float32 JavaScript, with the exported
 * graph's operations in order: sub mean, div std, Gemm per layer with ReLU between, softmax.
 */
export function predictHead(weights: HeadWeights, x: Float32Array, n: number): Float32Array {
  const d = weights.mean.length;
  const last = weights.layers.at(-1);
  if (!last) throw new HeadswapError('head has no layers');
  if (x.length !== n * d) throw new HeadswapError(`got ${x.length} feature values for ${n} examples; the head expects ${d} per example`);
  const out = new Float32Array(n * last.units);
  for (let i = 0; i < n; i++) {
    let h: Float32Array = new Float32Array(d);
    for (let j = 0; j < d; j++) h[j] = Math.fround(x[i * d + j]! - weights.mean[j]!) / weights.std[j]!;
    weights.layers.forEach((layer, li) => {
      const next = new Float32Array(layer.units);
      for (let u = 0; u < layer.units; u++) {
        let s = 0;
        for (let k = 0; k < layer.inputs; k++) s += h[k]! * layer.kernel[k * layer.units + u]!;
        next[u] = s + layer.bias[u]!;
      }
      if (li < weights.layers.length - 1) for (let u = 0; u < next.length; u++) next[u] = Math.max(0, next[u]!);
      h = next;
    });
    let max = -Infinity;
    for (const v of h) max = Math.max(max, v);
    let sum = 0;
    for (let u = 0; u < h.length; u++) sum += Math.exp(h[u]! - max);
    for (let u = 0; u < h.length; u++) out[i * last.units + u] = Math.exp(h[u]! - max) / sum;
  }
  return out;
}
