import type { CropOptions } from '../features/augment.js';
import type { HeadOptions } from './train.js';

/** `--quality`: how much backbone time `train` spends for accuracy. */
export type QualityName = 'plain' | 'fast' | 'balanced' | 'best';

/**
 * What each `--quality` switches on. Settings were chosen by 5-fold CV on clothing7 train/
 * (balanced accuracy, paired against `plain`) and confirmed on clothing7 test/ and a second set;
 * bench/accuracy.ts prints the table, the README quotes it.
 * - plain: one backbone pass per photo, a linear softmax head. The classic recipe.
 * - fast: + the mirror image averaged in at prediction time, inside the exported graph. One extra
 *   backbone pass per test photo and per prediction.
 * - best: fast + training augmentation: the mirror and 10 random resized crops of every training
 *   photo, each through the backbone once and cached under its own variant (~11x the training
 *   photos' backbone time, once).
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

/** The best top-1 within 3x `fast`'s time (the accuracy issue's rule), see QUALITY. */
export const DEFAULT_QUALITY: QualityName = 'balanced';

export const QUALITY_NAMES = Object.keys(QUALITY) as QualityName[];
