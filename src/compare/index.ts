/** `headswap/compare`: the transfer pipeline against a small CNN trained from scratch (TensorFlow.js) on the same photos. */
export { compare, compareRuns, type CompareOptions } from './compare.js';
export type { CompareResult, ApproachResult, ScratchResult } from './types.js';
