import type { CropOptions } from '../image/augment.js';
import type { RegionGrid } from '../onnx/edit.js';
import type { HeadOptions } from '../head/train.js';

/** A named `--quality` level: how much backbone time `train` spends for accuracy. */
export type QualityName = 'plain' | 'fast' | 'balanced' | 'best';
/** `--quality`: a named level, or 'auto' (pipeline/auto.ts): the recipe chosen by cross-validation on the user's photos. */
export type QualityChoice = QualityName | 'auto';

/**
 * What each `--quality` switches on (plain: one pass, the original demo's linear probe; fast: +
 * mirror averaging and region features; balanced: + training on the mirror and 3 crops; best: +
 * 10 crops). How they were chosen and what each measured: bench/README.md, "Quality levels".
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

/**
 * One plain pass per photo and backbone, and the networks (each alone, or all as an ensemble)
 * chosen by grouped cross-validation on the user's own photos: on photos of other kinds than
 * clothing the extra views and region features lost points against the plain probe as often as
 * they gained (bench/README.md, "Choosing the default").
 */
export const DEFAULT_QUALITY: QualityChoice = 'auto';

export const QUALITY_NAMES = Object.keys(QUALITY) as QualityName[];
export const QUALITY_CHOICES: readonly QualityChoice[] = ['auto', ...QUALITY_NAMES];
