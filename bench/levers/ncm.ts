import { HeadswapError } from '../../src/errors.js';
import type { HeadWeights } from '../../src/head/weights.js';
import type { Dataset } from '../../src/head/train.js';
import { transformFeatures, type FeatureTransform } from './transform.js';

/**
 * Nearest class mean with cosine similarity: the head for 1-5 photos per class, where a
 * regression has almost nothing to fit. Features go through the transform (which must
 * L2-normalize), each class's mean is L2-normalized, and the logit of class c is
 * `scale * cos(x, mean_c)`. That is a single dense layer (kernel = scale * normalized means,
 * bias 0) after an identity standardization, so it would export like any head, after the
 * transform. `scale` only sets how peaked the probabilities are.
 */
export interface NcmOptions {
  readonly transform?: FeatureTransform;
  /** Softmax temperature inverse; default 16 (cosines differ by ~0.1-0.3 between classes). */
  readonly scale?: number;
}

export function fitNcm(data: Dataset, options: NcmOptions = {}): { weights: HeadWeights; transform: FeatureTransform } {
  const transform = options.transform ?? { power: 0.5, l2: true };
  if (!transform.l2) throw new HeadswapError('nearest class mean needs an L2-normalizing transform (cosine similarity)');
  const scale = options.scale ?? 16;
  const { n, d, classes: C } = data;
  if (data.x.length !== n * d) throw new HeadswapError(`dataset arrays do not match n = ${n}, d = ${d}`);
  const x = transformFeatures(data.x, n, transform);
  const sums = new Float64Array(C * d);
  const counts = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    const c = data.y[i]!;
    if (c < 0 || c >= C) throw new HeadswapError(`example ${i} has label ${c}; labels must be 0..${C - 1}`);
    counts[c]!++;
    for (let j = 0; j < d; j++) sums[c * d + j]! += x[i * d + j]!;
  }
  const missing = counts.findIndex((k) => k === 0);
  if (missing >= 0) throw new HeadswapError(`class ${missing} has no training examples; every class needs at least one`);
  const kernel = new Float32Array(d * C);
  for (let c = 0; c < C; c++) {
    let norm = 0;
    for (let j = 0; j < d; j++) norm += sums[c * d + j]! ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < d; j++) kernel[j * C + c] = (scale * sums[c * d + j]!) / norm;
  }
  return {
    weights: { mean: new Float32Array(d), std: new Float32Array(d).fill(1), layers: [{ kernel, bias: new Float32Array(C), inputs: d, units: C }] },
    transform,
  };
}
