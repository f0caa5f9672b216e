/**
 * The JSON the server sends, shared with the page (web/) as types only: nothing here runs.
 */
import type { Evaluation } from '../evaluate/metrics.js';
import type { Preprocessing } from '../image/types.js';
import type { QualityChoice } from '../pipeline/quality.js';

export interface ErrorBody {
  readonly error: string;
}

export interface ModelSummary {
  /** The URL id (a slug); `name` is what people read. */
  readonly id: string;
  /** The name given to the training job, or the model folder's name for a command-line model. */
  readonly name: string;
  /** Given on the command line (read-only), or trained by a job of this server. */
  readonly source: 'cli' | 'trained';
  readonly createdAt: string;
  readonly labels: readonly string[];
  readonly backbone: { readonly id: string; readonly featureDims: number };
  readonly metrics: { readonly top1: number; readonly top1Ci95: readonly number[]; readonly testPhotos: number; readonly macroF1: number };
  readonly links: { readonly self: string; readonly classify: string; readonly download: string; readonly model: string; readonly report: string | null };
}

export interface ModelDetail extends ModelSummary {
  /** The ONNX graph's input: uint8 NHWC `pixels` of `size`, resized outside the graph by `preprocessing`. */
  readonly input: { readonly name: string; readonly size: readonly [number, number] };
  readonly preprocessing: Preprocessing;
  readonly evaluation: Evaluation;
  readonly counts: Readonly<Record<string, { readonly train: number; readonly validation: number; readonly test: number }>>;
  /** An ensemble's backbones with each one's own held-out top-1 (`metrics` are the ensemble's). */
  readonly members?: readonly { readonly backbone: { readonly id: string; readonly featureDims: number }; readonly top1: number; readonly top1Ci95: readonly number[] }[];
}

/** One class of a prediction (the library's `Label`, repeated so the page needs no Node types). */
export interface LabelScore {
  readonly label: string;
  readonly index: number;
  readonly probability: number;
}

export interface Classified {
  readonly name: string;
  readonly top: readonly LabelScore[];
}

export interface ClassifyResponse extends Classified {
  readonly model: string;
}

export interface BatchClassifyResponse {
  readonly model: string;
  readonly results: readonly Classified[];
}

/** A training job as stored in `jobs/<id>/job.json`. */
export type JobStatus = 'queued' | 'running' | 'done' | 'failed';

export interface JobClass {
  readonly name: string;
  readonly photos: number;
}

export interface JobComparison {
  readonly transferTop1: number;
  readonly transferSeconds: number;
  readonly scratchTop1: number;
  readonly scratchSeconds: number;
  readonly scratchEpochs: number;
  /** Held-out photos both were scored on (absent in jobs of older servers: then the result's `testPhotos`). */
  readonly testPhotos?: number;
  readonly verdict: string;
}

/** One held-out photo for the confusion matrix: true and predicted class index, a small JPEG data: URI. */
export interface TestThumbnail {
  readonly actual: number;
  readonly predicted: number;
  readonly src: string;
}

export interface JobResult {
  readonly modelId: string;
  readonly classes: readonly string[];
  readonly top1: number;
  readonly top1Ci95: readonly [number, number];
  readonly testPhotos: number;
  /** [true][predicted] counts. */
  readonly confusion: readonly (readonly number[])[];
  readonly testThumbnails: readonly TestThumbnail[];
  readonly compare: JobComparison | null;
  readonly warnings: readonly string[];
  readonly seconds: number;
}

export interface JobRecord {
  readonly id: string;
  readonly name: string;
  readonly createdAt: string;
  readonly status: JobStatus;
  readonly classes: readonly JobClass[];
  /** Also train a small CNN from scratch on the same photos, for the comparison. */
  readonly compare: boolean;
  /** `--quality` of the training (absent: the default, 'auto'). */
  readonly quality?: QualityChoice;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly error?: string;
  readonly result?: JobResult;
}

export interface JobProgress {
  readonly step: string;
  /** Items done of `total`; total 0 when the step has no count. */
  readonly done: number;
  readonly total: number;
  /** What is counted ('images', 'folds', 'epochs'); absent when the step has no count. */
  readonly unit?: string;
  /** Seconds left at the step's current rate, when known. */
  readonly etaSeconds?: number;
}

/** A job as the API shows it. */
export interface JobView extends JobRecord {
  /** Jobs that run before this one (the running one included); 0 once it runs. */
  readonly position: number;
  readonly progress: JobProgress | null;
  readonly links: { readonly self: string; readonly events: string; readonly model: string | null };
}

/** What the queue tells its listeners: the whole job on every status change, progress in between. */
export type JobEvent = { readonly type: 'job'; readonly job: JobRecord } | { readonly type: 'progress'; readonly progress: JobProgress };
