import { HeadswapError } from '../../src/errors.js';

/**
 * A fixed, data-independent map applied to each backbone feature vector before the head's
 * standardization: x -> sign(x) |x|^power, then (if `l2`) divided by its L2 norm. Power < 1
 * damps the few channels that fire strongly on one photo (pooled ReLU features are bursty);
 * the L2 normalization removes the photo's overall "activation energy", which varies with
 * contrast and framing more than with the class. Both are the classic few-shot recipe for CNN
 * features. It has no learned parameters; the shipped exporter has no nodes for it since it was
 * not kept (git history has appendFeatureTransform, which wrote it as ONNX nodes).
 */
export interface FeatureTransform {
  readonly power: number;
  readonly l2: boolean;
}

export const IDENTITY_TRANSFORM: FeatureTransform = { power: 1, l2: false };

/** Added to the norm so an all-zero vector stays zero instead of NaN (same constant in the graph). */
export const NORM_EPSILON = 1e-12;

export function isIdentity(t: FeatureTransform): boolean {
  return t.power === 1 && !t.l2;
}

/** Applies `t` to n rows of d features; returns a new array (the input is left alone). */
export function transformFeatures(x: Float32Array, n: number, t: FeatureTransform): Float32Array {
  if (!(t.power > 0 && Number.isFinite(t.power))) throw new HeadswapError(`feature power ${t.power} must be a positive number`);
  if (n === 0) return new Float32Array(0);
  if (x.length % n !== 0) throw new HeadswapError(`${x.length} feature values do not split into ${n} rows`);
  const d = x.length / n;
  const out = new Float32Array(x.length);
  for (let i = 0; i < n; i++) {
    let sq = 0;
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j]!;
      // Math.fround at each step: the same float32 results as the graph's Abs/Pow/Sign/Mul.
      const p = t.power === 1 ? v : Math.fround(Math.sign(v) * Math.fround(Math.abs(v) ** t.power));
      out[i * d + j] = p;
      sq += p * p;
    }
    if (t.l2) {
      const norm = Math.fround(Math.fround(Math.sqrt(sq)) + NORM_EPSILON);
      for (let j = 0; j < d; j++) out[i * d + j] = out[i * d + j]! / norm;
    }
  }
  return out;
}
