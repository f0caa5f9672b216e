/**
 * Classification metrics for held-out images. Pure functions: predictions in, numbers out.
 *
 * One ranking rule is used everywhere: classes are ordered by probability, highest first,
 * and equal probabilities are broken by the lower class index. So the predicted class is the
 * argmax with ties to the lower index, and top-1 accuracy equals top-k accuracy at k = 1.
 */

export interface Prediction {
  file: string;
  /** Index of the true class in `labels`. */
  label: number;
  /** One probability per class, summing to 1. */
  probs: Float32Array;
}

/**
 * One class's scores. A class with no test images (support 0) has none: its precision, recall
 * and F1 are null, not 0, because nothing was measured (a 0 would read as "always wrong").
 */
export interface ClassMetrics {
  label: string;
  /** Number of test images whose true class is this one. */
  support: number;
  /** Fraction of images predicted as this class that are this class; 0 when never predicted; null when support is 0. */
  precision: number | null;
  /** Fraction of this class's images predicted correctly; null when support is 0. */
  recall: number | null;
  /** Harmonic mean of precision and recall; 0 when both are 0; null when support is 0. */
  f1: number | null;
}

export interface Misclassified {
  file: string;
  trueLabel: string;
  predicted: string;
  /** Probability of the predicted class. */
  confidence: number;
  /** Probability the model gave the true class. */
  trueProb: number;
}

export interface Evaluation {
  count: number;
  /** Fraction 0..1. */
  top1: number;
  /** Wilson score interval for top1. */
  top1Ci95: [number, number];
  /** k = 1..min(maxK, classes), ascending. */
  topK: { k: number; accuracy: number }[];
  /** In class-index order. */
  perClass: ClassMetrics[];
  /** Mean F1 over the classes present in the test set (support > 0); absent classes do not count. */
  macroF1: number;
  /** [true][predicted] counts. */
  confusion: number[][];
  /** Most confident mistakes first; equal confidences keep input order. */
  misclassified: Misclassified[];
  /** Mean cross-entropy of the true class, probabilities clamped at 1e-7. */
  logLoss: number;
}

const DEFAULT_Z = 1.959964;
const DEFAULT_MAX_K = 5;
// Clamp so one confident mistake gives a large but finite loss instead of Infinity.
const LOG_LOSS_EPS = 1e-7;

/**
 * Wilson score interval for a binomial proportion. Unlike p ± z·se it stays inside [0, 1] and
 * is still informative at 0/n and n/n, which small test sets hit often. n = 0 gives [0, 1].
 */
export function wilson(successes: number, n: number, z = DEFAULT_Z): [number, number] {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(successes) || successes < 0 || successes > n) {
    throw new Error(`wilson: need integers 0 <= successes <= n, got ${successes}/${n}`);
  }
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At 0/n and n/n the bound is exactly 0 or 1 in exact arithmetic; clamp away rounding drift.
  return [Math.max(0, center - half), Math.min(1, center + half)];
}

/**
 * How many classes rank ahead of the true class (0 = it is the top-1 prediction), ranking by
 * probability descending with ties broken by the lower class index.
 */
export function trueClassRank(p: Pick<Prediction, 'label' | 'probs'>): number {
  const own = probAt(p.probs, p.label);
  let rank = 0;
  for (const [j, q] of p.probs.entries()) {
    if (q > own || (q === own && j < p.label)) rank++;
  }
  return rank;
}

/** Fraction of predictions whose true class is among the k highest-ranked classes. */
export function topKAccuracy(predictions: readonly Pick<Prediction, 'label' | 'probs'>[], k: number): number {
  if (predictions.length === 0) throw new Error('topKAccuracy: no predictions');
  if (!Number.isInteger(k) || k < 1) throw new Error(`topKAccuracy: k must be a positive integer, got ${k}`);
  let hits = 0;
  for (const p of predictions) if (trueClassRank(p) < k) hits++;
  return hits / predictions.length;
}

export function evaluate(
  predictions: readonly Prediction[],
  labels: readonly string[],
  options: { maxK?: number } = {},
): Evaluation {
  if (predictions.length === 0) throw new Error('evaluate: no predictions');
  if (labels.length === 0) throw new Error('evaluate: no class labels');
  const maxK = options.maxK ?? DEFAULT_MAX_K;
  if (!Number.isInteger(maxK) || maxK < 1) throw new Error(`evaluate: maxK must be a positive integer, got ${maxK}`);

  const classes = labels.length;
  const confusion = labels.map(() => new Array<number>(classes).fill(0));
  const misclassified: Misclassified[] = [];
  let lossSum = 0;

  for (const [i, p] of predictions.entries()) {
    if (p.probs.length !== classes) {
      throw new Error(`evaluate: prediction ${i} (${p.file}) has ${p.probs.length} probabilities for ${classes} classes`);
    }
    // Non-finite values would make argmax and rank disagree, silently skewing every metric.
    if (!p.probs.every(Number.isFinite)) throw new Error(`evaluate: prediction ${i} (${p.file}) has a non-finite probability`);
    const trueLabel = labels[p.label];
    if (trueLabel === undefined) {
      throw new Error(`evaluate: prediction ${i} (${p.file}) has label ${p.label}, expected an index 0..${classes - 1}`);
    }
    const trueProb = probAt(p.probs, p.label);
    const predicted = argmax(p.probs);
    const row = at(confusion, p.label);
    row[predicted] = at(row, predicted) + 1;
    lossSum -= Math.log(Math.max(trueProb, LOG_LOSS_EPS));
    if (predicted !== p.label) {
      misclassified.push({
        file: p.file,
        trueLabel,
        predicted: at(labels, predicted),
        confidence: probAt(p.probs, predicted),
        trueProb,
      });
    }
  }
  // Array.prototype.sort is stable, so equal confidences keep input order.
  misclassified.sort((a, b) => b.confidence - a.confidence);

  const perClass = labels.map((label, c): ClassMetrics => {
    const row = at(confusion, c);
    const tp = at(row, c);
    const support = sum(row);
    if (support === 0) return { label, support, precision: null, recall: null, f1: null };
    const predictedAs = sum(confusion.map((r) => at(r, c)));
    const precision = predictedAs === 0 ? 0 : tp / predictedAs;
    const recall = tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { label, support, precision, recall, f1 };
  });
  // A class with no test images says nothing about the model; counting its F1 as 0 would
  // punish a dataset split, not the classifier. At least one class is present (count > 0).
  const presentF1 = perClass.flatMap((m) => (m.f1 === null ? [] : [m.f1]));
  const macroF1 = sum(presentF1) / presentF1.length;

  const correct = sum(confusion.map((row, c) => at(row, c)));
  const topK: Evaluation['topK'] = [];
  for (let k = 1; k <= Math.min(maxK, classes); k++) topK.push({ k, accuracy: topKAccuracy(predictions, k) });

  return {
    count: predictions.length,
    top1: correct / predictions.length,
    top1Ci95: wilson(correct, predictions.length),
    topK,
    perClass,
    macroF1,
    confusion,
    misclassified,
    logLoss: lossSum / predictions.length,
  };
}

/** Index of the highest probability; strict `>` keeps the lower index on ties. */
function argmax(probs: Float32Array): number {
  let best = 0;
  let bestProb = -Infinity;
  for (const [j, q] of probs.entries()) {
    if (q > bestProb) {
      best = j;
      bestProb = q;
    }
  }
  return best;
}

function probAt(probs: Float32Array, index: number): number {
  const q = probs[index];
  if (q === undefined) throw new Error(`class index ${index} outside 0..${probs.length - 1}`);
  return q;
}

function at<T>(xs: readonly T[], index: number): T {
  const x = xs[index];
  if (x === undefined) throw new Error(`index ${index} outside 0..${xs.length - 1}`);
  return x;
}

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
