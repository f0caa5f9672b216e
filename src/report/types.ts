import type { CompareResult } from '../compare/types.js';
import type { Evaluation } from '../evaluate/metrics.js';
import type { EpochLog } from '../head/train.js';

export type SplitName = 'train' | 'validation' | 'test';

export interface ReportCv {
  readonly folds: number;
  /** Groups dealt into the folds (absent for models made before groups existed). */
  readonly groups?: number;
  readonly top1: { readonly mean: number; readonly std: number };
  readonly topK: readonly { readonly k: number; readonly mean: number; readonly std: number }[];
}

/** Everything the HTML report shows; built from a train result or an exported model folder. */
export interface ReportInput {
  readonly title: string;
  readonly createdAt: string;
  readonly classes: readonly string[];
  readonly backbone: { readonly id: string; readonly origin: string; readonly sha256: string; readonly featureDims: number };
  /** For an ensemble: each backbone's own held-out score beside the ensemble's (`evaluation`). */
  readonly members?: readonly { readonly id: string; readonly origin: string; readonly featureDims: number; readonly top1: number; readonly top1Ci95: readonly [number, number]; readonly topK: readonly { readonly k: number; readonly accuracy: number }[] }[];
  readonly dataset: {
    /** Absolute paths; a file that no longer exists is shown without a thumbnail. */
    readonly files: readonly { readonly path: string; readonly label: number; readonly split: SplitName }[];
    readonly skipped: readonly { readonly path: string; readonly reason: string }[];
  };
  /** Learning curves of the head (train vs validation loss and accuracy per epoch). */
  readonly history: readonly EpochLog[];
  readonly bestEpoch: number;
  /** Held-out evaluation; misclassified files are absolute paths. */
  readonly evaluation: Evaluation;
  /** Mean and std over folds when --cv was used. */
  readonly crossValidation?: ReportCv;
  /** The same folds' count, dealt in name order (absent for models made before it existed). */
  readonly crossValidationOrdered?: ReportCv;
  /** How photos were grouped for the split and the folds. */
  readonly groups?: { readonly by: string; readonly count: number; readonly largest: number; readonly grouped: number };
  /** `--quality auto`: every candidate's grouped CV top-1 and the choice. */
  readonly recipe?: { readonly chosen: string; readonly reason: string; readonly folds: number; readonly candidates: readonly { readonly name: string; readonly cvTop1: number; readonly cvStd: number }[] };
  readonly compare?: CompareResult;
  readonly options: Readonly<Record<string, unknown>>;
  readonly timings: Readonly<Record<string, number>>;
  readonly versions: Readonly<Record<string, string>>;
}
