import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadswapError, describeError } from '../errors.js';
import type { FeatureCut } from '../onnx/cut.js';
import type { CrossValidation } from '../evaluate/cv.js';
import type { Evaluation } from '../evaluate/metrics.js';
import type { EpochLog, HeadOptions } from '../head/train.js';
import type { Preprocessing } from '../image/types.js';

export interface TrainingRecord {
  readonly head: Required<HeadOptions>;
  readonly bestEpoch: number;
  readonly epochs: number;
  readonly history: readonly EpochLog[];
  readonly seed: number;
  /** `--quality` (its name) and what it switched on: test-time flip, training views (cache variant ids). Absent in models made before it existed. */
  readonly quality?: { readonly name: string; readonly tta: boolean; readonly views: readonly string[]; readonly chosenBy?: 'auto' };
  /** `--quality auto`: the backbones chosen, why, and every candidate's grouped cross-validation top-1. */
  readonly recipe?: {
    readonly chosen: string;
    readonly reason: string;
    readonly folds: number;
    readonly millis: number;
    readonly candidates: readonly { readonly name: string; readonly cvTop1: number; readonly cvStd: number; readonly perFold: readonly number[] }[];
  };
  /** How photos were grouped for the split and the folds (`--group-by`). Absent in models made before it existed. */
  readonly groups?: { readonly by: string; readonly count: number; readonly largest: number; readonly grouped: number; readonly reasons: Readonly<Record<string, number>> };
  readonly valPct: number;
  readonly testPct: number;
  readonly counts: Readonly<Record<string, { readonly train: number; readonly validation: number; readonly test: number }>>;
  /** `--cv` with grouped folds dealt at random. */
  readonly crossValidation: CrossValidation | null;
  /** `--cv` with grouped folds in name order. */
  readonly crossValidationOrdered?: CrossValidation;
  readonly timings: Readonly<Record<string, number>>;
}

export interface DatasetRecord {
  readonly fingerprint: string;
  /** Absolute folders at training time; file paths below are relative to them. */
  readonly root: string;
  readonly testDir: string | null;
  readonly files: readonly { readonly file: string; readonly label: number; readonly split: 'train' | 'validation' | 'test' }[];
  readonly skipped: readonly { readonly path: string; readonly reason: string }[];
}

/** What headswap.json says of one backbone. */
export interface BackboneRecord {
  readonly id: string;
  readonly origin: string;
  readonly sha256: string;
  readonly feature: FeatureCut;
  readonly featureDims: number;
}

/** An ensemble member's own held-out score (the model's `metrics` are the ensemble's). */
export interface MemberRecord {
  readonly backbone: BackboneRecord;
  readonly head: Required<HeadOptions>;
  readonly metrics: Pick<Evaluation, 'top1' | 'top1Ci95' | 'topK' | 'macroF1' | 'logLoss'>;
}

/** Contents of `headswap.json` in an exported model folder. */
export interface ModelMetadata {
  readonly format: 'headswap-model';
  readonly formatVersion: 1;
  readonly createdAt: string;
  readonly classes: readonly string[];
  /** The backbone (an ensemble's first; all of them under `ensemble`). */
  readonly backbone: BackboneRecord;
  /** Several backbones, one head each, their class probabilities averaged inside model.onnx. */
  readonly ensemble?: { readonly combine: 'mean'; readonly members: readonly MemberRecord[] };
  /** The ONNX graph's input: 8-bit RGB pixels, already resized by `preprocessing.resize`. */
  readonly input: {
    readonly name: string;
    readonly dtype: 'uint8';
    readonly layout: 'NHWC';
    readonly size: readonly [number, number];
    /** `PIXELS_VERSION` of the bytes the model was trained on (docs/PREPROCESSING.md); absent before version 3. */
    readonly pixels?: number;
  };
  readonly output: { readonly name: string; readonly kind: 'probabilities' };
  /** Which graph was written: `portable` = standard ONNX operators only (`--portable`), else onnxruntime's int8 operators. Absent in models made before it existed. */
  readonly graph?: { readonly portable: boolean };
  /** Resize policy is applied outside the graph; scale/mean/std/layout are inside it (for the record). */
  readonly preprocessing: Preprocessing;
  /** Held-out evaluation; misclassified file paths are relative to the test folder. */
  readonly metrics: Evaluation;
  readonly training: TrainingRecord;
  readonly dataset: DatasetRecord;
  readonly versions: Readonly<Record<string, string>>;
}

export const MODEL_FILE = 'model.onnx';
export const LABELS_FILE = 'labels.json';
export const METADATA_FILE = 'headswap.json';

/**
 * Reads and checks `headswap.json` of a model folder: one clear line when the folder is not a
 * headswap model (missing, unreadable, not JSON, or another kind of file).
 */
export async function readModelMetadata(dir: string): Promise<ModelMetadata> {
  const path = join(dir, METADATA_FILE);
  let m: ModelMetadata;
  try {
    m = JSON.parse(await readFile(path, 'utf8')) as ModelMetadata;
  } catch (err) {
    throw new HeadswapError(`${dir}: not a headswap model folder (${describeError(err)}); give a folder written by 'headswap train'`);
  }
  if (m?.format !== 'headswap-model' || !Array.isArray(m.classes) || !m.input || !m.preprocessing) {
    throw new HeadswapError(`${path}: not a headswap model description; give a folder written by 'headswap train'`);
  }
  return m;
}
