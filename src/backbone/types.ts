import type { Preprocessing } from '../image/types.js';
import type { FeatureCut } from '../onnx/cut.js';

/** One network in the model zoo. */
export interface ZooEntry {
  readonly id: string;
  readonly title: string;
  readonly architecture: string;
  /** What it was trained on and for. */
  readonly trainedOn: string;
  /**
   * 'onnx': one ONNX file. 'tfjs': a TensorFlow.js model (model.json + weight shards), 'tflite':
   * a TensorFlow Lite file; both converted to ONNX once, on first use, and cached by content.
   */
  readonly format: 'onnx' | 'tfjs' | 'tflite';
  /** Public download URL of the ONNX or .tflite file, or of the TF.js model.json (with any query its host needs). */
  readonly url: string;
  /**
   * sha256 of the file at `url`; a download that does not match is refused. null where the
   * publisher gives none (TF Hub): the converted model is then keyed by the content downloaded,
   * and that hash is what headswap.json records.
   */
  readonly sha256: string | null;
  /** Download size as published; null when the publisher does not say. */
  readonly bytes: number | null;
  /** Path of the file inside this package when it ships with headswap (works offline). */
  readonly bundled?: string;
  readonly preprocessing: Preprocessing;
  /** Where features are cut (for a converted model, a tensor of the converted graph); 'output': the network's own (first) output, a feature-vector model. */
  readonly feature: FeatureCut | 'output';
  /** Width of the feature vector. */
  readonly featureDims: number;
  /** The network's own classifier output and its labels file, when it has one (`headswap classify`). */
  readonly classifier?: { readonly tensor: string; readonly labels: string; readonly activation: 'softmax' | 'none' };
  readonly license: string;
  /** Human page describing the model. */
  readonly homepage: string;
  /** Published ImageNet-1k accuracy of the network's own classifier, or k-NN/linear-probe figure. */
  readonly imagenet?: { readonly top1: number; readonly top5?: number; readonly note?: string };
  readonly params: number;
}
