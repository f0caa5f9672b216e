import type { CropOptions } from '../features/augment.js';
import type { SolveOptions } from './solve.js';

/**
 * What `--quality fast|best` switches on, chosen by 5-fold CV on clothing7 train/ (balanced
 * accuracy, paired with the current default) and confirmed on clothing7 test/ and a second set
 * (bench/accuracy.ts):
 * - fast: the current head (fitHead's Adam defaults) + the mirror image averaged in at prediction
 *   time, inside the exported graph (exportHeadModel's tta). CV +1.1 ± 0.6 points balanced,
 *   clothing7 test 78.2 -> 81.0%, second set 71.2 -> 71.6%; costs one extra backbone pass per
 *   test photo.
 * - best: fast + training augmentation: the mirror and 10 random resized crops of every training
 *   photo, each through the backbone once and cached under its own variant. CV +2.3 ± 0.7,
 *   clothing7 test 81.6%, second set 72.7%; ~11x the training photos' backbone time, once.
 * The L-BFGS head (solveHead) and the sqrt/L2 transform were not better than the Adam head in CV
 * balanced accuracy, so neither preset uses them; `solve` is here for callers that want a
 * deterministic, converged head.
 */
export interface QualityPreset {
  /** 'adam': fitHead with its defaults; 'solve': solveHead with `solve`. */
  readonly head: 'adam' | 'solve';
  readonly solve?: SolveOptions;
  /** Training views per photo besides the plain one; undefined = none. */
  readonly augment?: { readonly flip: boolean; readonly crops: number; readonly crop?: CropOptions };
  /** Test-time augmentation, as exportHeadModel's `tta`. */
  readonly tta: false | 'probabilities';
}

export const QUALITY: Readonly<Record<'fast' | 'best', QualityPreset>> = {
  fast: { head: 'adam', tta: 'probabilities' },
  best: { head: 'adam', augment: { flip: true, crops: 10 }, tta: 'probabilities' },
};
