/**
 * What the learning curves can honestly say. Validation accuracy on n photos is uncertain by a
 * binomial interval; on a few dozen photos that interval is wider than the epoch-to-epoch swings,
 * so naming one epoch "best" would read noise as a finding. And the best of many noisy epochs
 * against the worst of the later ones always looks like a difference, so a claim needs both a
 * validation set with a narrow interval and a sustained fall (the later epochs' mean) below it.
 */
import { wilson } from '../evaluate/metrics.js';
import type { EpochLog } from '../head/train.js';

/** Above this 95% half-width (in accuracy), the validation set is too small to pick an epoch (about 35-90 photos at 90-70%). */
export const TOO_SMALL_HALF_WIDTH = 0.1;

/** One epoch's validation accuracy with its 95% Wilson interval on the validation photos. */
export interface ValidationBand {
  readonly epoch: number;
  readonly accuracy: number;
  readonly lo: number;
  readonly hi: number;
}

export type EpochClaim =
  /** No validation photos or no validation accuracy recorded. */
  | { readonly kind: 'none' }
  /**
   * The best epoch stands out: the later epochs' mean validation accuracy is below the best
   * epoch's 95% interval, so stopping there measurably beat training on.
   */
  | { readonly kind: 'clear'; readonly best: ValidationBand; readonly later: { readonly epochs: number; readonly mean: number }; readonly photos: number }
  /**
   * No epoch stands out: every epoch from `from` on scores inside the best epoch's interval.
   * `tooSmall` when that interval is wider than ±TOO_SMALL_HALF_WIDTH.
   */
  | { readonly kind: 'unclear'; readonly best: ValidationBand; readonly from: number; readonly epochs: number; readonly photos: number; readonly halfWidth: number; readonly tooSmall: boolean };

/** Validation accuracy per epoch with its interval; successes are rounded to whole photos. */
export function validationBand(history: readonly EpochLog[], photos: number): ValidationBand[] {
  if (photos <= 0) return [];
  return history.flatMap((h) => {
    if (h.valAccuracy === undefined) return [];
    const hits = Math.min(photos, Math.max(0, Math.round(h.valAccuracy * photos)));
    const [lo, hi] = wilson(hits, photos);
    return [{ epoch: h.epoch, accuracy: h.valAccuracy, lo, hi }];
  });
}

/**
 * Whether the kept epoch (lowest validation loss) can be called the best one, judged on
 * validation accuracy and its interval over `photos` validation photos.
 */
export function epochClaim(history: readonly EpochLog[], bestEpoch: number, photos: number): EpochClaim {
  const band = validationBand(history, photos);
  const best = band.find((b) => b.epoch === bestEpoch);
  if (!best) return { kind: 'none' };
  const halfWidth = (best.hi - best.lo) / 2;
  const tooSmall = halfWidth > TOO_SMALL_HALF_WIDTH;
  const later = band.filter((b) => b.epoch > bestEpoch);
  const mean = later.reduce((a, b) => a + b.accuracy, 0) / later.length;
  if (!tooSmall && later.length > 0 && mean < best.lo) return { kind: 'clear', best, later: { epochs: later.length, mean }, photos };
  // The first epoch after which nothing falls outside the best epoch's interval.
  let from = band.at(-1)?.epoch ?? bestEpoch;
  for (let i = band.length - 1; i >= 0; i--) {
    const b = band[i]!;
    if (b.accuracy < best.lo || b.accuracy > best.hi) break;
    from = b.epoch;
  }
  return { kind: 'unclear', best, from, epochs: band.length, photos, halfWidth, tooSmall };
}
