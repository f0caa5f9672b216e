import type { CropOptions } from '../image/augment.js';
import type { RegionGrid } from '../onnx/edit.js';
import type { HeadOptions } from '../head/train.js';

/** `--quality`: how much backbone time `train` spends for accuracy. */
export type QualityName = 'plain' | 'fast' | 'balanced' | 'best';

/**
 * What each `--quality` switches on. Settings were chosen by 5-fold CV on clothing7 train/ (five
 * fold partitions, paired against `plain`) and the time rule below, then confirmed on clothing7
 * test/ and a second set (clothing10 subsampled to 10-33 photos per class); `npm run
 * bench:accuracy` prints the table and `npm run bench:train` the times. Measured (CV top-1,
 * clothing7 test top-1 at seed 0 / mean of seeds 0-4, second set top-1; cold time on clothing7):
 * - plain: one backbone pass per photo, a linear softmax head on the 1280 pooled features.
 *   73.2 / 78.7 / 78.7 / 71.2%; 2.5 s.
 * - fast: + the mirror image's probabilities averaged in, at evaluation and inside the exported
 *   graph (one extra backbone pass per test photo and per prediction), and region features: the
 *   averages of a 3x3 grid over the last 7x7 map beside the global one (12,800 numbers), so the
 *   head can tell where on the photo a pattern is, with L2 1.5. 76.7 / 81.6 / 82.2 / 73.1%; 3.9 s.
 * - balanced (default): fast + training on the mirror and 3 random resized crops (colour-jittered)
 *   of every training photo, each through the backbone once and cached under its own variant.
 *   76.8 / 85.6 / 82.9 / 74.7%; 2.6x fast's time. CV top-1 ties with fast, its CV log-loss is
 *   lower (0.696 vs 0.747), and it is the most accurate level within 3x fast's time.
 * - best: balanced with 10 crops. 77.5 / 83.9 / 82.7 / 74.5%; 5.3x fast's time.
 * The clothing7 test score moves by ±2 points with the seed (which draws the crops and the split).
 */
export interface QualityPreset {
  /** Training views per photo besides the plain one; undefined = none. */
  readonly augment?: { readonly flip: boolean; readonly crops: number; readonly crop?: CropOptions };
  /** Average the photo's and its mirror's class probabilities (test-time augmentation). */
  readonly tta: boolean;
  /** Region averages of the backbone's last map besides its global average (BackboneOptions.regions). */
  readonly regions?: RegionGrid;
  /** Options of the linear head the preset changes; the caller's own head options win, and a hidden layer keeps its own defaults. */
  readonly head?: HeadOptions;
}

/**
 * Region features' grid (of 3 bands, 2x2 and 3x3, 3x3 had the best CV top-1), and the L2 that
 * CV chose for a linear head on them (of 0.5, 1, 1.5 and 3).
 */
const REGIONS: RegionGrid = { rows: 3, cols: 3 };
const REGION_HEAD: HeadOptions = { l2: 1.5 };

export const QUALITY: Readonly<Record<QualityName, QualityPreset>> = {
  plain: { tta: false },
  fast: { tta: true, regions: REGIONS, head: REGION_HEAD },
  balanced: { augment: { flip: true, crops: 3 }, tta: true, regions: REGIONS, head: REGION_HEAD },
  best: { augment: { flip: true, crops: 10 }, tta: true, regions: REGIONS, head: REGION_HEAD },
};

/** The most accurate level within 3x `fast`'s time, see QUALITY. */
export const DEFAULT_QUALITY: QualityName = 'balanced';

export const QUALITY_NAMES = Object.keys(QUALITY) as QualityName[];
