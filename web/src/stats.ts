/**
 * How much a score on a few held-out photos can say. Pure functions (no DOM), so the wording is
 * tested without a browser.
 */

import { wilson } from '../../src/evaluate/metrics.js';

// The library's own Wilson interval (src/evaluate/metrics.ts, a pure module): the page's intervals are the report's.
export { wilson };

/** Correct answers behind an accuracy on n photos (accuracies are stored as fractions). */
export function correctOf(accuracy: number, n: number): number {
  return Math.round(accuracy * n);
}

/** An interval wider than this says little about a single accuracy. */
const TOO_WIDE = 0.2;

export function ciText([lo, hi]: readonly [number, number]): string {
  return `${Math.round(lo * 100)}–${Math.round(hi * 100)}%`;
}

function photos(n: number): string {
  return `${n} test photo${n === 1 ? '' : 's'}`;
}

const ADVICE = 'add photos or use cross-validation';

/**
 * A warning for an accuracy measured on too few photos to mean much, or undefined when the 95%
 * interval is narrow enough: e.g. "4 test photos: too few to tell (95% CI 51–100%); add photos or
 * use cross-validation".
 */
export function accuracyCaveat(correct: number, n: number): string | undefined {
  const ci = wilson(correct, n);
  if (n > 0 && ci[1] - ci[0] <= TOO_WIDE) return undefined;
  return n === 0 ? `no test photos: the accuracy is unknown; ${ADVICE}` : `${photos(n)}: too few to tell (95% CI ${ciText(ci)}); ${ADVICE}`;
}

/**
 * The comparison of two approaches scored on the same n photos, in words: a gap only when their
 * 95% intervals do not overlap (a conservative test, which is what a handful of photos deserves).
 */
export function comparisonVerdict(a: { name: string; correct: number }, b: { name: string; correct: number }, n: number): { decided: boolean; text: string } {
  const ca = wilson(a.correct, n);
  const cb = wilson(b.correct, n);
  const gap = n > 0 ? ((a.correct - b.correct) / n) * 100 : 0;
  if (n > 0 && (ca[0] > cb[1] || cb[0] > ca[1])) {
    const [better, worse, points] = gap > 0 ? [a, b, gap] : [b, a, -gap];
    return { decided: true, text: `${better.name} is ${points.toFixed(1)} points more accurate than ${worse.name} on ${photos(n)} (95% CI ${ciText(gap > 0 ? ca : cb)} vs ${ciText(gap > 0 ? cb : ca)}).` };
  }
  const measured = n > 0 ? `measured ${((a.correct / n) * 100).toFixed(1)}% vs ${((b.correct / n) * 100).toFixed(1)}%, ` : '';
  return { decided: false, text: `${photos(n)}: too few to tell which is more accurate (${measured}95% CI ${ciText(ca)} for ${a.name}, ${ciText(cb)} for ${b.name}); ${ADVICE}.` };
}
