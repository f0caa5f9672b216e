import type { CropOptions } from '../features/augment.js';
import type { HeadOptions } from './train.js';

/** `--quality`: how much backbone time `train` spends for accuracy. */
export type QualityName = 'plain' | 'fast' | 'balanced' | 'best';

/**
 * What each `--quality` switches on. Settings were chosen by 5-fold CV on clothing7 train/ (five
 * fold partitions, paired against `plain`) and the time rule below, then confirmed on clothing7
 * test/ and a second set (clothing10 subsampled to 10-33 photos per class); `npm run
 * bench:accuracy` prints the table and `npm run bench:train` the times. Measured (CV top-1,
 * clothing7 test top-1 at seed 0 / mean of seeds 0-4, second set top-1; cold time on clothing7):
 * - plain: one backbone pass per photo, a linear softmax head. 73.2 / 78.7 / 71.2%; 2.6 s.
 * - fast: + the mirror image's probabilities averaged in, at evaluation and inside the exported
 *   graph (one extra backbone pass per test photo and per prediction). 73.9 / 81.0 / 81.5 / 71.6%; 3.1 s.
 * - balanced (default): fast + training on the mirror and 3 random resized crops (colour-jittered)
 *   of every training photo, each through the backbone once and cached under its own variant.
 *   75.1 / 85.6 / 82.1 / 72.1%; 2.3x fast's time. The most accurate level within 3x fast's time:
 *   4 crops scored the same in CV (75.2%) but measured 2.9-3.1x.
 * - best: fast + the mirror and 10 crops. 75.4 / 83.3 / 81.7 / 73.0%; 5.5-6x fast's time.
 * The clothing7 test score moves by ±3 points with the seed (which draws the crops): 174 photos.
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
  balanced: { augment: { flip: true, crops: 3 }, tta: true },
  best: { augment: { flip: true, crops: 10 }, tta: true },
};

/** The most accurate level within 3x `fast`'s time, see QUALITY. */
export const DEFAULT_QUALITY: QualityName = 'balanced';

export const QUALITY_NAMES = Object.keys(QUALITY) as QualityName[];
