import { HeadswapError } from '../errors.js';
import type { HeadWeights } from './weights.js';
import { HeadPasses, type Layer } from './passes.js';
import { createRng, normal, shuffleInPlace } from '../util/random.js';

export interface HeadOptions {
  /** Units of one hidden ReLU layer; 0 = plain softmax regression. */
  hidden?: number;
  /** Dropout rate on the standardized features while training. */
  dropout?: number;
  /** Adam's initial step size (decayed linearly to 0 over `epochs`). */
  learningRate?: number;
  /** Penalty `l2 * sum(w^2)` on kernels (not biases), added to the mean loss. Default 0.5, or 0.03 with a hidden layer. */
  l2?: number;
  /** Probability mass spread evenly over all classes in the training targets. */
  labelSmoothing?: number;
  /** Maximum number of passes over the training set. Default 30, more for tiny sets (at least 150 steps). */
  epochs?: number;
  /** Examples per gradient step; capped at the training-set size. */
  batchSize?: number;
  /** Epochs without a lower validation loss before stopping (the best epoch's weights are kept). */
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
 * One epoch. `loss` is the class-weighted cross-entropy (no label smoothing, no L2) averaged over
 * the epoch's batches as they were trained (with dropout); `valLoss` is the same measure on the
 * validation set after the epoch. Accuracies are plain fractions correct.
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
 * Defaults for the product's case: a few dozen photos per class, 5-10 classes, ~1000-2000
 * features, often no validation split. Why each value (strong L2, balanced class weights, no
 * smoothing, a low decayed learning rate), with the measurements: bench/README.md, "Head defaults".
 */
export const HEAD_DEFAULTS: Readonly<Required<HeadOptions>> = {
  hidden: 0,
  dropout: 0,
  learningRate: 0.001,
  l2: 0.5,
  labelSmoothing: 0,
  epochs: 30,
  batchSize: 32,
  patience: 10,
  classWeights: 'balanced',
  seed: 0,
};

/** Default L2 penalty when there is a hidden layer (see HEAD_DEFAULTS). */
export const HIDDEN_L2 = 0.03;
/** Fewest optimizer steps the default epoch count gives; tiny sets need more than 30 epochs' worth. */
export const MIN_DEFAULT_STEPS = 150;

/** Scale used when every training feature is constant (the scale is irrelevant then). */
const STD_FLOOR = 1e-6;

/** Adam moments' decay rates and epsilon, as tf.train.adam's defaults on the CPU backend. */
const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-7;

/** Refuses a data set the head cannot be fitted on, in one line naming the problem. */
export function checkDataset(data: Dataset, what: string): void {
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

function resolveOptions(options: HeadOptions, n: number): Required<HeadOptions> {
  const o: Required<HeadOptions> = { ...HEAD_DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) Object.assign(o, { [key]: value });
  }
  const bad = (name: keyof HeadOptions, rule: string): never => {
    throw new HeadswapError(`head option ${name} = ${String(o[name])} is invalid; it must be ${rule}`);
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
  const batchSize = Math.min(o.batchSize, n);
  const stepsPerEpoch = Math.ceil(n / batchSize);
  return {
    ...o,
    batchSize,
    l2: options.l2 ?? (o.hidden > 0 ? HIDDEN_L2 : HEAD_DEFAULTS.l2),
    epochs: options.epochs ?? Math.max(HEAD_DEFAULTS.epochs, Math.ceil(MIN_DEFAULT_STEPS / stepsPerEpoch)),
  };
}

/**
 * Per-dimension mean, and ONE scale for all dimensions: the root-mean-square of the per-dim
 * standard deviations (so the standardized features have unit variance on average). Dividing each
 * dim by its own std would blow dead or near-constant channels up to the size of informative ones;
 * on clothing7 that cost 1-5 points at every penalty strength (best 79.3% against 82.2%). A shared scale keeps
 * the backbone's own weighting of channels, needs no per-dim floor, and still makes `l2` and
 * `learningRate` mean the same for any backbone's feature magnitude. The scale is stored per dim
 * because that is what the exported graph divides by.
 */
export function standardization(data: Dataset): { mean: Float32Array; std: Float32Array } {
  const { x, n, d } = data;
  const sum = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) sum[j]! += x[i * d + j]!;
  const mean = Float32Array.from(sum, (s) => s / n);
  let squares = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const diff = x[i * d + j]! - mean[j]!;
      squares += diff * diff;
    }
  }
  const scale = Math.max(Math.sqrt(squares / (n * d)), STD_FLOOR);
  return { mean, std: new Float32Array(d).fill(scale) };
}

/** Standardizes `n` rows of `mean.length` values with the same float32 operations (sub, then div) as the exported graph. */
export function standardize(x: Float32Array, n: number, mean: Float32Array, std: Float32Array): Float32Array {
  const d = mean.length;
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) out[i * d + j] = Math.fround(x[i * d + j]! - mean[j]!) / std[j]!;
  }
  return out;
}

/** weight_c = n / (classes * n_c) ('balanced'), or 1 for every class. */
export function classWeights(data: Pick<Dataset, 'y' | 'n' | 'classes'>, mode: 'balanced' | 'none'): Float64Array {
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
    const scale = Math.sqrt(2 / inputs);
    const last = i + 2 === sizes.length;
    const kernel = last ? new Float32Array(inputs * units) : Float32Array.from({ length: inputs * units }, () => scale * normal(rng));
    layers.push({ kernel, bias: new Float32Array(units), inputs, units });
  }
  return layers;
}

/**
 * Adam over plain arrays, with the formulas and defaults of tf.train.adam. Its update runs in JS
 * because as ~15 tfjs ops per parameter tensor it cost 2-3x the whole rest of a training step on
 * the CPU backend; a fused loop is ~50x cheaper. L2 is added to the kernel gradients here.
 */
class Adam {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;

  /** `penalties[i]` is the L2 coefficient of `params[i]`. */
  constructor(
    private readonly params: Float32Array[],
    private readonly penalties: number[],
  ) {
    this.m = params.map((p) => new Float32Array(p.length));
    this.v = params.map((p) => new Float32Array(p.length));
  }

  step(grads: Float32Array[], learningRate: number): void {
    this.t++;
    const c1 = 1 - BETA1 ** this.t;
    const c2 = 1 - BETA2 ** this.t;
    this.params.forEach((p, index) => {
      const g = grads[index]!;
      const m = this.m[index]!;
      const v = this.v[index]!;
      const decay = 2 * this.penalties[index]!;
      for (let k = 0; k < p.length; k++) {
        const gk = g[k]! + decay * p[k]!;
        m[k] = BETA1 * m[k]! + (1 - BETA1) * gk;
        v[k] = BETA2 * v[k]! + (1 - BETA2) * gk * gk;
        p[k] = p[k]! - (learningRate * (m[k]! / c1)) / (Math.sqrt(v[k]! / c2) + EPSILON);
      }
    });
  }
}

/** Running class-weighted cross-entropy (no smoothing) and plain accuracy over rows of logits. */
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
  return layers.map((l) => ({ kernel: l.kernel.slice(), bias: l.bias.slice(), inputs: l.inputs, units: l.units }));
}

/**
 * Trains a new softmax head (optionally with one hidden ReLU layer) on backbone features:
 * mini-batch Adam on class-weighted, label-smoothed cross-entropy plus L2 on kernels, with the
 * learning rate decayed linearly to 0 over `epochs` so the last epochs settle on the optimum.
 * With validation data it keeps the epoch with the lowest validation loss and stops after
 * `patience` epochs without improvement; without it, it trains exactly `epochs` epochs and keeps
 * the last. The same seed gives bit-identical weights and history.
 */
export async function trainHead(train: Dataset, validation: Dataset | undefined, options: HeadOptions = {}, onEpoch?: EpochCallback): Promise<TrainedHead> {
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
  const opts = resolveOptions(options, train.n);
  const { n, d, classes } = train;

  const { mean, std } = standardization(train);
  const weights = classWeights(train, opts.classWeights);
  const xTrain = standardize(train.x, train.n, mean, std);
  const targets = weightedTargets(train, weights, opts.labelSmoothing);
  const rng = createRng(opts.seed);
  const layers = createLayers(d, opts.hidden, classes, rng);
  const passes = await HeadPasses.for([d, ...(opts.hidden > 0 ? [opts.hidden] : []), classes]);
  const adam = new Adam(
    layers.flatMap((l) => [l.kernel, l.bias]),
    layers.flatMap(() => [opts.l2, 0]),
  );
  const xVal = validation ? standardize(validation.x, validation.n, mean, std) : undefined;
  const keep = 1 - opts.dropout;
  const steps = Math.ceil(n / opts.batchSize);

  const history: EpochLog[] = [];
  let best = { epoch: 0, valLoss: Infinity, layers: snapshot(layers) };
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const xBatch = new Float32Array(opts.batchSize * d);
  const tBatch = new Float32Array(opts.batchSize * classes);
  for (let epoch = 1; epoch <= opts.epochs; epoch++) {
    shuffleInPlace(order, rng);
    const fit = new Metrics(weights);
    for (let s = 0; s < steps; s++) {
      const idx = order.subarray(s * opts.batchSize, Math.min((s + 1) * opts.batchSize, n));
      const rows = idx.length;
      // Batches are gathered in JS, with inverted dropout so its mask comes from our seeded PRNG.
      for (let r = 0; r < rows; r++) {
        const i = idx[r]!;
        const row = xBatch.subarray(r * d, (r + 1) * d);
        row.set(xTrain.subarray(i * d, (i + 1) * d));
        if (opts.dropout > 0) for (let j = 0; j < d; j++) row[j] = rng() < keep ? row[j]! / keep : 0;
        tBatch.set(targets.subarray(i * classes, (i + 1) * classes), r * classes);
      }
      const { logits, grads } = await passes.gradients(layers, xBatch.subarray(0, rows * d), tBatch.subarray(0, rows * classes), rows);
      const progress = ((epoch - 1) * steps + s) / (opts.epochs * steps);
      adam.step(grads, opts.learningRate * (1 - progress));
      fit.add(logits, Array.from(idx, (i) => train.y[i]!));
    }
    const log: EpochLog = { epoch, ...fit.result() };
    history.push(log);
    onEpoch?.(epoch, opts.epochs);
    if (!xVal || !validation) continue;
    const val = new Metrics(weights);
    val.add(await passes.logits(layers, xVal, validation.n), validation.y);
    const { loss: valLoss, accuracy: valAccuracy } = val.result();
    Object.assign(log, { valLoss, valAccuracy });
    if (valLoss < best.valLoss) best = { epoch, valLoss, layers: snapshot(layers) };
    else if (epoch - best.epoch >= opts.patience) break;
  }
  if (!xVal) best = { epoch: opts.epochs, valLoss: NaN, layers: snapshot(layers) };
  return { weights: { mean, std, layers: best.layers }, history, bestEpoch: best.epoch, options: opts, millis: performance.now() - started };
}

/**
 * Class probabilities (n * classes, row-major) in plain JavaScript, with the exported graph's
 * operations in order: sub mean, div std, Gemm per layer with ReLU between, softmax. Every op's
 * result is rounded to float32 as in the graph; dot products are summed in double, so results
 * agree with onnxruntime and tfjs to ~1e-7.
 */
export function predictHead(weights: HeadWeights, x: Float32Array, n: number): Float32Array {
  const d = weights.mean.length;
  const last = weights.layers.at(-1);
  if (!last) throw new HeadswapError('head has no layers');
  if (x.length !== n * d) throw new HeadswapError(`got ${x.length} feature values for ${n} examples; the head expects ${d} per example`);
  const out = new Float32Array(n * last.units);
  const standardized = standardize(x, n, weights.mean, weights.std);
  for (let i = 0; i < n; i++) {
    let h = standardized.subarray(i * d, (i + 1) * d);
    weights.layers.forEach((layer, li) => {
      if (layer.inputs !== h.length) throw new HeadswapError(`head layer ${li} expects ${layer.inputs} inputs but gets ${h.length}`);
      const next = new Float32Array(layer.units);
      for (let u = 0; u < layer.units; u++) {
        let s = 0;
        for (let k = 0; k < layer.inputs; k++) s += h[k]! * layer.kernel[k * layer.units + u]!;
        next[u] = s + layer.bias[u]!;
        if (li < weights.layers.length - 1) next[u] = Math.max(0, next[u]!);
      }
      h = next;
    });
    let max = -Infinity;
    for (const v of h) max = Math.max(max, v);
    let sum = 0;
    for (const v of h) sum += Math.exp(v - max);
    for (let u = 0; u < h.length; u++) out[i * last.units + u] = Math.exp(h[u]! - max) / sum;
  }
  return out;
}

/** A photo's feature vector and, for test-time flip, its mirror image's. */
export interface FeatureRow {
  readonly vector: Float32Array;
  readonly mirror?: Float32Array;
}

/** A labelled photo's vectors: its own, its augmented views (extra training rows), its mirror. */
export interface LabeledRow extends FeatureRow {
  readonly label: number;
  readonly views?: readonly Float32Array[];
}

/** Training rows: every item's vector, plus its augmented views unless `withViews` is false. */
export function rowsDataset(items: readonly LabeledRow[], classes: number, withViews = true): Dataset {
  const rows = items.flatMap((it) => [it.vector, ...(withViews ? (it.views ?? []) : [])].map((vector) => ({ vector, label: it.label })));
  const d = items[0]?.vector.length ?? 0;
  const x = new Float32Array(rows.length * d);
  rows.forEach((r, i) => x.set(r.vector, i * d));
  return { x, y: Int32Array.from(rows, (r) => r.label), n: rows.length, d, classes };
}

/**
 * Class probabilities of `rows`; with `flip`, averaged with those of their mirror images, as the
 * exported graph computes them (a row without a mirror counts its own vector twice).
 */
export function predictRows(weights: HeadWeights, rows: readonly FeatureRow[], flip: boolean): Float32Array {
  const d = rows[0]?.vector.length ?? 0;
  const matrix = (pick: (r: FeatureRow) => Float32Array): Float32Array => {
    const x = new Float32Array(rows.length * d);
    rows.forEach((r, i) => x.set(pick(r), i * d));
    return x;
  };
  const probs = predictHead(weights, matrix((r) => r.vector), rows.length);
  if (!flip) return probs;
  const other = predictHead(weights, matrix((r) => r.mirror ?? r.vector), rows.length);
  return probs.map((p, i) => (p + other[i]!) / 2);
}

/**
 * The mean of several heads' class probabilities (an ensemble), in float32 like the exported
 * graph's Mean; one head's are returned as they are.
 */
export function averageProbabilities(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts[0]?.length ?? 0);
  for (let i = 0; i < out.length; i++) {
    let sum = 0;
    for (const p of parts) sum += p[i]!;
    out[i] = sum / parts.length;
  }
  return out;
}

/** Called after each epoch with the epoch and the most epochs this run may take (early stopping can end it sooner). */
export type EpochCallback = (epoch: number, maxEpochs: number) => void;

export interface FitOptions extends HeadOptions {
  /**
   * After early stopping on the validation set, train again on training + validation photos for
   * the number of epochs that validation chose (default true): with a few dozen photos per class
   * the held-out ones are too valuable to leave out of the final head.
   */
  refit?: boolean;
}

function concatDatasets(a: Dataset, b: Dataset): Dataset {
  const x = new Float32Array(a.x.length + b.x.length);
  x.set(a.x);
  x.set(b.x, a.x.length);
  const y = new Int32Array(a.n + b.n);
  y.set(a.y);
  y.set(b.y, a.n);
  return { x, y, n: a.n + b.n, d: a.d, classes: a.classes };
}

/**
 * The head `train()` exports. A run with early stopping on `validation` gives the learning curves;
 * then (with `refit`) the head is trained afresh on both sets. A linear head is refit to
 * convergence: its L2-penalized loss is convex with one optimum, and stopping early on a dozen
 * validation photos only adds noise (5-fold CV on clothing7 train/: the same mean top-1, 73.6%,
 * but from 70.9-75.5% depending on the seed down to no spread at all). A head with a hidden layer
 * is refit for the epoch count validation chose. The returned history is the validated run's.
 * `refitOn` replaces train + validation for the refit (e.g. with the validation photos'
 * augmented views, which must not be in the validation set itself).
 */
export async function fitHead(train: Dataset, validation: Dataset | undefined, options: FitOptions = {}, refitOn?: Dataset, onEpoch?: (phase: 'validated' | 'refit', epoch: number, epochs: number) => void): Promise<TrainedHead> {
  const { refit = true, ...head } = options;
  const validated = await trainHead(train, validation, head, onEpoch && ((e, n) => onEpoch('validated', e, n)));
  if (!validation || !refit) return validated;
  const epochs = validated.options.hidden > 0 ? validated.bestEpoch : head.epochs;
  const final = await trainHead(refitOn ?? concatDatasets(train, validation), undefined, { ...head, epochs }, onEpoch && ((e, n) => onEpoch('refit', e, n)));
  return { ...final, history: validated.history, bestEpoch: validated.bestEpoch, millis: validated.millis + final.millis };
}
