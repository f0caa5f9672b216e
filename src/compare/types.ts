import type { Evaluation } from '../evaluate/metrics.js';

/** One way of building the classifier, measured on the shared held-out photos. */
export interface ApproachResult {
  readonly name: 'transfer' | 'scratch';
  /** What was trained, e.g. "new softmax head on frozen mobilenet_v2" or "4-block CNN, 64 px". */
  readonly description: string;
  readonly evaluation: Evaluation;
  /** Wall-clock seconds of training, feature extraction included for transfer. */
  readonly trainSeconds: number;
  readonly trainableParams: number;
  /** Training images used (after skipping unreadable files). */
  readonly imagesUsed: number;
  /** Cost of the pretraining the approach reuses (transfer: from the zoo entry), if known. */
  readonly pretraining?: string;
}

export interface ScratchResult extends ApproachResult {
  readonly name: 'scratch';
  readonly epochs: number;
  readonly inputSize: number;
  readonly budgetSeconds: number;
  /** Library and backend that trained it, e.g. "TensorFlow.js 4.22 (wasm backend)". */
  readonly library: string;
}

export interface CompareResult {
  readonly transfer: ApproachResult;
  readonly scratch: ScratchResult;
  /** One sentence, e.g. "Transfer learning is 41 points more accurate and 12x faster to train." */
  readonly verdict: string;
}
