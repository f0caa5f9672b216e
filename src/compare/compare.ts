/**
 * Transfer learning against training from scratch, on the same photos: why reusing a pretrained
 * network is the whole trick.
 */
import { findEntry } from '../backbone/zoo.js';
import { resolve } from 'node:path';
import { DEFAULT_SPLIT_OPTIONS } from '../dataset/split.js';
import { recordRun } from '../runs/store.js';
import { HeadswapError, type WarningCallback } from '../errors.js';
import type { QualityChoice } from '../pipeline/quality.js';
import type { TrainedHead } from '../head/train.js';
import { train, type TrainResult } from '../pipeline/train.js';
import type { ProgressCallback } from '../util/progress.js';
import type { ApproachResult, CompareResult, ScratchResult } from './types.js';

export interface CompareOptions {
  /** Folder with one sub-folder of images per class. */
  readonly data: string;
  /** A separate folder of the same classes to score both on; otherwise `train()`'s test split. */
  readonly testDir?: string;
  /** Cap on the from-scratch training budget in seconds (default 120). */
  readonly budgetSeconds?: number;
  /** Backbone(s) for the transfer run (train()'s `base`; default its default). */
  readonly base?: string | readonly string[];
  /** Seeds the split and both trainings. */
  readonly seed?: number;
  /** The transfer run's `quality` (train()'s option). */
  readonly quality?: QualityChoice;
  /** Where downloaded backbones live; default $HEADSWAP_CACHE or the user cache folder. */
  readonly cacheDir?: string;
  /** Record the run in the history (`headswap runs`); default true. */
  readonly record?: boolean;
  readonly onProgress?: ProgressCallback;
  readonly onWarning?: WarningCallback;
}

/** Keeps `headswap compare` interactive; pass a larger cap to let the scratch network converge further. */
export const DEFAULT_BUDGET_CAP_SECONDS = 120;
/** The scratch network gets this many times the transfer run's wall-clock time (within the cap). */
export const BUDGET_FACTOR = 10;

function headParams(head: TrainedHead): number {
  return head.weights.layers.reduce((n, l) => n + l.kernel.length + l.bias.length, 0);
}

/** What the transfer run reuses without training it, from the zoo entry; unknown for networks outside the zoo. */
function pretrainingOf(backboneId: string): string | undefined {
  const entry = findEntry(backboneId);
  if (!entry) return undefined;
  // The training-set size is a property of ImageNet-1k rather than of any zoo entry.
  const images = /ImageNet-1k/.test(entry.trainedOn) ? ', 1.28 M labeled photos' : '';
  return `${entry.trainedOn}${images}`;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** One sentence: the accuracy gap in points and the training-time ratio. */
export function verdict(transfer: ApproachResult, scratch: ApproachResult): string {
  const gap = (transfer.evaluation.top1 - scratch.evaluation.top1) * 100;
  const scores = `(${pct(transfer.evaluation.top1)} vs ${pct(scratch.evaluation.top1)} top-1 on the same ${transfer.evaluation.count} photos)`;
  const ratio = scratch.trainSeconds / transfer.trainSeconds;
  const times = `(${transfer.trainSeconds.toFixed(1)} s vs ${scratch.trainSeconds.toFixed(1)} s)`;
  const faster = ratio >= 1 ? `${ratio.toFixed(ratio < 10 ? 1 : 0)}x less training time` : `${(1 / ratio).toFixed(1)}x more training time`;
  if (Math.abs(gap) < 0.05) return `Both reach ${pct(transfer.evaluation.top1)} top-1 on the same ${transfer.evaluation.count} photos; transfer learning took ${faster} ${times}.`;
  if (gap > 0) return `Transfer learning is ${gap.toFixed(1)} points more accurate ${scores} and took ${faster} ${times}.`;
  return `Training from scratch is ${(-gap).toFixed(1)} points more accurate ${scores}, but transfer learning took ${faster} ${times}.`;
}

/** TensorFlow.js names: an optional dependency, needed only by the from-scratch side of a comparison. */
export const TENSORFLOW_PACKAGES = ['@tensorflow/tfjs-core', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-backend-wasm'] as const;

/** The error to show when loading the from-scratch trainer failed because TensorFlow.js is not installed, else undefined. */
export function missingTensorflow(err: unknown): HeadswapError | undefined {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || typeof e.message !== 'string' || !e.message.includes('@tensorflow/')) return undefined;
  return new HeadswapError(`the from-scratch comparison needs TensorFlow.js, an optional dependency that is not installed; install it with: npm install ${TENSORFLOW_PACKAGES.join(' ')}`);
}

async function loadScratch(): Promise<typeof import('./scratch.js')> {
  try {
    return await import('./scratch.js');
  } catch (err) {
    throw missingTensorflow(err) ?? err;
  }
}

/**
 * Runs `train()` (transfer learning, no export, features computed afresh so the time is the real
 * cost), then trains a small CNN from scratch on the same training photos (train + validation
 * split) for max(transfer time, min(10x transfer time, cap)) seconds, and scores both on the
 * same held-out photos.
 */
export async function compare(options: CompareOptions): Promise<CompareResult> {
  return (await compareRuns(options)).result;
}

/** `compare`, also returning the transfer run itself (for the report), and recording it in the history. */
export async function compareRuns(options: CompareOptions): Promise<{ result: CompareResult; transferRun: TrainResult; runId?: number }> {
  const seed = options.seed ?? DEFAULT_SPLIT_OPTIONS.seed;
  const cap = options.budgetSeconds ?? DEFAULT_BUDGET_CAP_SECONDS;
  if (!(cap > 0) || !Number.isFinite(cap)) throw new HeadswapError(`budget ${cap} s is invalid; give a positive number of seconds`);
  // Before the transfer run, so a missing TensorFlow.js costs no training time.
  const { trainFromScratch } = await loadScratch();
  const result = await train({
    data: options.data,
    testDir: options.testDir,
    base: options.base,
    seed,
    quality: options.quality,
    cacheDir: options.cacheDir,
    noCache: true,
    out: false,
    onProgress: options.onProgress,
    onWarning: options.onWarning,
  });
  const transferSeconds = result.timings.totalMs / 1000;
  const transfer: ApproachResult = {
    name: 'transfer',
    description: (result.members ?? [result]).map((m) => `new softmax head on frozen ${m.backbone.id} (${m.backbone.featureDims} features)`).join(' + ') + (result.members ? ', probabilities averaged' : ''),
    evaluation: result.evaluation,
    trainSeconds: transferSeconds,
    trainableParams: (result.members ?? [result]).reduce((n, m) => n + headParams(m.head), 0),
    imagesUsed: Object.values(result.counts).reduce((n, c) => n + c.train + c.validation, 0),
    pretraining: pretrainingOf(result.backbone.id),
  };

  // Exactly the photos train() used (its split, unreadable files already left out).
  const trainFiles = result.files.filter((f) => f.split !== 'test');
  const testFiles = result.files.filter((f) => f.split === 'test');
  const scratch: ScratchResult = await trainFromScratch({
    train: trainFiles,
    test: testFiles,
    classes: result.classes,
    budgetSeconds: Math.max(transferSeconds, Math.min(BUDGET_FACTOR * transferSeconds, cap)),
    seed,
    onProgress: options.onProgress,
  });
  const compared = { transfer, scratch, verdict: verdict(transfer, scratch) };
  const runId =
    options.record === false
      ? undefined
      : recordRun(
          {
            kind: 'compare',
            data: resolve(options.data),
            testDir: options.testDir ? resolve(options.testDir) : null,
            base: (result.members ?? [result]).map((m) => m.backbone.origin).join(','),
            options: { seed, quality: result.metadata.training.quality?.name ?? null, budgetCap: cap, budget: scratch.budgetSeconds, scratchSize: scratch.inputSize },
            fingerprint: result.metadata.dataset.fingerprint,
            metrics: { top1: transfer.evaluation.top1, scratchTop1: scratch.evaluation.top1, gap: transfer.evaluation.top1 - scratch.evaluation.top1 },
            timings: { total: transfer.trainSeconds + scratch.trainSeconds, transfer: transfer.trainSeconds, scratch: scratch.trainSeconds },
            out: null,
          },
          options.cacheDir,
        );
  return { result: compared, transferRun: result, ...(runId === undefined ? {} : { runId }) };
}
