import { splitUnit } from '../dataset/split.js';
import { HeadswapError } from '../errors.js';
import { averageProbabilities, fitHead, predictRows, rowsDataset, type FitOptions, type LabeledRow } from '../head/train.js';
import { evaluate } from './metrics.js';

/**
 * A photo: its views train the folds it is in; its mirror gives test-time flip when it is held
 * out. One row per backbone (several for an ensemble, whose members' probabilities are averaged).
 */
export interface CvItem {
  readonly relPath: string;
  readonly label: number;
  readonly rows: readonly LabeledRow[];
}

export interface CrossValidation {
  readonly folds: number;
  readonly top1: { readonly mean: number; readonly std: number };
  readonly topK: readonly { readonly k: number; readonly mean: number; readonly std: number }[];
  /** Top-1 of each fold, in fold order. */
  readonly perFold: readonly number[];
}

function meanStd(xs: readonly number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean, std: Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) };
}

/**
 * Stratified K-fold cross-validation of the head on cached features: within each class, files are
 * ordered by their seeded hash and dealt round-robin into folds, so every fold holds each class in
 * proportion and the folds depend only on (seed, file paths). Each fold is scored by a head fitted
 * on the other K-1 folds. With a few photos per class this is a far steadier estimate than one
 * small test split, and cheap because the backbone never runs again. Each fold is trained and
 * scored the way train() does it: with the photos' augmented views and test-time flip, if given.
 */
export async function crossValidate(
  items: readonly CvItem[],
  classes: readonly string[],
  k: number,
  options: FitOptions & { maxK?: number; tta?: boolean } = {},
): Promise<CrossValidation> {
  if (!Number.isInteger(k) || k < 2) throw new HeadswapError(`--cv ${k}: give a whole number of folds of at least 2`);
  const { maxK = 5, tta = false, ...head } = options;
  const seed = head.seed ?? 0;
  const fold = new Map<CvItem, number>();
  for (let c = 0; c < classes.length; c++) {
    const inClass = items.filter((it) => it.label === c).sort((a, b) => splitUnit(seed, a.relPath) - splitUnit(seed, b.relPath));
    if (inClass.length < k) {
      throw new HeadswapError(`--cv ${k}: class '${classes[c]}' has only ${inClass.length} photo(s); use at most --cv ${Math.max(2, inClass.length)} or add photos`);
    }
    inClass.forEach((it, i) => fold.set(it, i % k));
  }
  const top1: number[] = [];
  const topK = new Map<number, number[]>();
  for (let f = 0; f < k; f++) {
    const fitOn = items.filter((it) => fold.get(it) !== f);
    const heldOut = items.filter((it) => fold.get(it) === f);
    const members = heldOut[0]?.rows.length ?? 0;
    const perMember: Float32Array[] = [];
    for (let m = 0; m < members; m++) {
      const model = await fitHead(rowsDataset(fitOn.map((it) => it.rows[m]!), classes.length), undefined, head);
      perMember.push(predictRows(model.weights, heldOut.map((it) => it.rows[m]!), tta));
    }
    const probs = averageProbabilities(perMember);
    const c = classes.length;
    const ev = evaluate(
      heldOut.map((it, i) => ({ file: it.relPath, label: it.label, probs: probs.slice(i * c, (i + 1) * c) })),
      classes,
      { maxK },
    );
    top1.push(ev.top1);
    for (const t of ev.topK) topK.set(t.k, [...(topK.get(t.k) ?? []), t.accuracy]);
  }
  return {
    folds: k,
    top1: meanStd(top1),
    topK: [...topK.entries()].map(([kk, accs]) => ({ k: kk, ...meanStd(accs) })),
    perFold: top1,
  };
}
