import type { FeatureCut } from '../backbone/types.js';
import type { Preprocessing } from '../image/types.js';

/** Contents of `headswap.json` in an exported model folder. */
export interface ModelMetadata {
  readonly format: 'headswap-model';
  readonly formatVersion: 1;
  readonly createdAt: string;
  readonly classes: readonly string[];
  readonly backbone: {
    readonly id: string;
    readonly origin: string;
    readonly sha256: string;
    readonly feature: FeatureCut;
    readonly featureDims: number;
  };
  /** The ONNX graph's input: 8-bit RGB pixels, already resized by `preprocessing.resize`. */
  readonly input: { readonly name: string; readonly dtype: 'uint8'; readonly layout: 'NHWC'; readonly size: readonly [number, number] };
  readonly output: { readonly name: string; readonly kind: 'probabilities' };
  /** Resize policy is applied outside the graph; scale/mean/std/layout are inside it (for the record). */
  readonly preprocessing: Preprocessing;
  readonly metrics?: unknown;
  readonly training?: unknown;
  readonly dataset?: unknown;
  readonly versions: Readonly<Record<string, string>>;
}

export const MODEL_FILE = 'model.onnx';
export const LABELS_FILE = 'labels.json';
export const METADATA_FILE = 'headswap.json';
