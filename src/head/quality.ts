import type { CropOptions } from '../features/augment.js';
import type { HeadOptions } from './train.js';

/** `--quality`: how much backbone time `train` spends for accuracy. */
export type QualityName = 'plain' | 'fast' | 'balanced' | 'best';

/**
 * What each `--quality` switches on. Settings were chosen by 5-fold CV on clothing7 train/ (five
 * fold partitions, paired against `plain`) and confirmed on clothing7 test/ and a second set
 * (clothing10 subsampled to 10-33 photos per class); `npm run bench:accuracy` prints the table
 * and `npm run bench:train` the times. Measured (CV top-1, clothing7 test top-1, second set):
 * - plain: one backbone pass per photo, a linear softmax head. 73.2 / 78.2-78.7 / 71.2%.
 * - fast: + the mirror image's probabilities averaged in, at evaluation and inside the exported
 *   graph (one extra backbone pass per test photo and per prediction). 73.9 / 81.0 / 71.6%.
 * - balanced: fast + training on the mirror and 4 random resized crops (colour-jittered) of every
 *   training photo, each through the backbone once and cached under its own variant.
 *   74.8 / 82.2-82.8 / 73.0%; cold 2.9x fast's time (10.2 s vs 3.5 s on clothing7, 2 cores).
 *   The default: the most accurate level within 3x fast's time (3 crops: 74.4% CV, 5: 75.0% but
 *   3.2x).
 * - best: fast + the mirror and 10 crops. 76.0 / 81.6 / 72.7%; cold 6x fast's time.
 */
export interface QualityPreset {
  /** Training views per photo besides the plain one; undefined = none. */
  readonly augment?: { readonly flip: boolean; readonly crops: number; readonly crop?: CropOptions };
  /** Average the photo's and its mirror's class probabilities (test-time augmentation). */
  readonly tta: boolean;
  /** Head options the preset changes; the caller's own head options win. */
  readonly head?: HeadOptions;
}

export const QUALITY: Readonly<Record<QualityName, QualityPreset>> = {
  plain: { tta: false },
  fast: { tta: true },
  balanced: { augment: { flip: true, crops: 4 }, tta: true },
  best: { augment: { flip: true, crops: 10 }, tta: true },
};

/** The most accurate level within 3x `fast`'s time, see QUALITY. */
export const DEFAULT_QUALITY: QualityName = 'balanced';

export const QUALITY_NAMES = Object.keys(QUALITY) as QualityName[];
