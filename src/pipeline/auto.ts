import { foldPredictions, scoreFolds, type CvItem } from '../evaluate/cv.js';
import type { FitOptions } from '../head/train.js';
import { progressTracker, type ProgressCallback } from '../util/progress.js';

/** A recipe `--quality auto` weighs: which of the loaded networks, each on its plain pass. */
export interface RecipeScore {
  /** Backbone ids joined with '+'. */
  readonly name: string;
  /** Indices into the run's backbones. */
  readonly members: readonly number[];
  /** Grouped cross-validation top-1 of this recipe: mean, spread and each fold. */
  readonly cvTop1: number;
  readonly cvStd: number;
  readonly perFold: readonly number[];
}

export interface RecipeChoice {
  readonly chosen: RecipeScore;
  /** Every candidate, cheapest first. */
  readonly candidates: readonly RecipeScore[];
  readonly folds: number;
  /** One line: why this one. */
  readonly reason: string;
  readonly millis: number;
}

/** The most folds auto uses; fewer when a class has fewer groups or photos. */
export const AUTO_FOLDS = 5;

/** How far `a` beats `b` over the same folds: the mean paired difference and its standard error. */
export function pairedGain(a: RecipeScore, b: RecipeScore): { mean: number; se: number } {
  const diffs = a.perFold.map((x, f) => x - b.perFold[f]!);
  const mean = diffs.reduce((s, d) => s + d, 0) / diffs.length;
  const sd = Math.sqrt(diffs.reduce((s, d) => s + (d - mean) ** 2, 0) / Math.max(1, diffs.length - 1));
  return { mean, se: sd / Math.sqrt(diffs.length) };
}

/**
 * Keeps `reference` (the recipe chosen across evaluation sets of many kinds) unless another
 * candidate wins clearly on these photos: its mean paired fold gain exceeds one standard error.
 * Of several that do, the one with the highest mean; a tie goes to the cheaper (earlier).
 */
export function pickRecipe(candidates: readonly RecipeScore[], reference: number): { chosen: RecipeScore; reason: string } {
  const ref = candidates[reference]!;
  let chosen = ref;
  let reason = candidates.length > 1 ? `${ref.name}: no other recipe won by more than one standard error` : `${ref.name}: the only candidate`;
  for (const c of candidates) {
    if (c === ref) continue;
    const g = pairedGain(c, ref);
    if (g.mean > 0 && g.mean > g.se && c.cvTop1 > chosen.cvTop1) {
      chosen = c;
      reason = `${c.name} beats ${ref.name} by ${(g.mean * 100).toFixed(1)} points (one standard error ${(g.se * 100).toFixed(1)})`;
    }
  }
  return { chosen, reason };
}

/**
 * Chooses the recipe from the user's own photos: every single backbone and the ensemble of all,
 * each scored by grouped cross-validation on the plain features already extracted (one head per
 * network and fold, so an ensemble's score costs no further fit). The ensemble, the most accurate
 * recipe across evaluation sets of several kinds, stays unless a single network wins clearly on
 * these photos (pickRecipe); keeping the cheapest unless a dearer one won clearly lost 1.1-2.1
 * points of held-out top-1 on five evaluation sets of seven (bench/README.md, "Series and honest
 * estimates"). Dearer
 * quality levels are not candidates: their extra backbone passes would multiply a run's time,
 * and across evaluation sets they won as often as they lost ("Choosing the default").
 */
export async function chooseRecipe(items: readonly CvItem[], classes: readonly string[], ids: readonly string[], head: FitOptions, folds: number, onProgress?: ProgressCallback): Promise<RecipeChoice> {
  const t0 = performance.now();
  const report = progressTracker('choosing the recipe', folds, onProgress, 'folds');
  report(0);
  const predictions = await foldPredictions(items, classes, folds, { ...head, kind: 'random', onFold: report });
  const subsets = ids.length > 1 ? [...ids.map((_, i) => [i]), ids.map((_, i) => i)] : [[0]];
  const candidates = subsets.map((members): RecipeScore => {
    const cv = scoreFolds(predictions, classes, 1, members);
    return { name: members.map((m) => ids[m]).join('+'), members, cvTop1: cv.top1.mean, cvStd: cv.top1.std, perFold: cv.perFold };
  });
  const { chosen, reason } = pickRecipe(candidates, candidates.length - 1);
  return { chosen, candidates, folds, reason, millis: performance.now() - t0 };
}
