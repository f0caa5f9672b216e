import { splitUnit } from '../dataset/split.js';
import { pushTo } from '../util/collections.js';
import { byCodePoint } from '../util/text.js';
import { HeadswapError, msg, option } from '../errors.js';
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
  /** Photos of one group (a series, near-duplicates) are held out together; default: alone. */
  readonly group?: string;
}

/**
 * How photos are dealt into folds, within each class. 'random': groups in seeded hash order,
 * each to the fold with the fewest photos so far (with no groups, plain stratified K-fold).
 * 'ordered': groups in name order, cut into K consecutive blocks, so each fold holds photos
 * that came before or after the ones it is trained on, as a user's new photos do.
 */
export type FoldKind = 'random' | 'ordered';
export const FOLD_KINDS: readonly FoldKind[] = ['random', 'ordered'];

export interface CrossValidation {
  readonly folds: number;
  readonly kind: FoldKind;
  /** Groups dealt into the folds; with no groups, one per photo. */
  readonly groups: number;
  /** Classes whose photos formed fewer groups than folds: their photos were dealt one by one. */
  readonly ungroupedClasses: readonly string[];
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
 * Each item's fold (a Map keyed by the item). Per class: its groups (an item without `group` is
 * its own) dealt as `kind` says. A class with fewer groups than folds is dealt photo by photo,
 * because a fold holding all of a class's photos would train a head that has never seen it.
 */
export function assignFolds(items: readonly CvItem[], classes: readonly string[], k: number, kind: FoldKind, seed: number): { fold: Map<CvItem, number>; groups: number; ungroupedClasses: string[] } {
  if (!Number.isInteger(k) || k < 2) throw new HeadswapError(msg`${option('cv', k)} is not a number of folds; give a whole number of at least 2`);
  const fold = new Map<CvItem, number>();
  let groups = 0;
  const ungroupedClasses: string[] = [];
  for (let c = 0; c < classes.length; c++) {
    const inClass = items.filter((it) => it.label === c).sort((a, b) => byCodePoint(a.relPath, b.relPath));
    if (inClass.length < k) {
      throw new HeadswapError(msg`${option('cv', k)} asks for ${k} folds, but class '${classes[c]}' has only ${inClass.length} photo(s); use at most ${option('cv', Math.max(2, inClass.length))} or add photos`);
    }
    const byGroup = new Map<string, CvItem[]>();
    for (const it of inClass) {
      pushTo(byGroup, it.group ?? it.relPath, it);
    }
    let blocks = [...byGroup.values()];
    if (blocks.length < k) {
      ungroupedClasses.push(classes[c]!);
      blocks = inClass.map((it) => [it]);
    }
    groups += blocks.length;
    if (kind === 'ordered') {
      // Consecutive blocks of groups in name order (a group sits where its first photo does),
      // each fold as near an even share of the photos as whole groups allow, none empty.
      let next = 0;
      let left = inClass.length;
      for (let f = 0; f < k; f++) {
        const target = left / (k - f);
        let taken = 0;
        do {
          for (const it of blocks[next]!) fold.set(it, f);
          taken += blocks[next]!.length;
          next++;
        } while (next < blocks.length - (k - f - 1) && taken + blocks[next]!.length / 2 <= target);
        left -= taken;
      }
    } else {
      const unit = (b: CvItem[]): number => splitUnit(seed, b[0]!.group ?? b[0]!.relPath);
      const sizes = new Array<number>(k).fill(0);
      // Largest groups first, so the small ones can even the folds out.
      for (const block of [...blocks].sort((a, b) => b.length - a.length || unit(a) - unit(b))) {
        const f = sizes.indexOf(Math.min(...sizes));
        for (const it of block) fold.set(it, f);
        sizes[f]! += block.length;
      }
    }
  }
  return { fold, groups, ungroupedClasses };
}

/** One fold's held-out photos and each network's class probabilities for them (row-major). */
export interface FoldPrediction {
  readonly heldOut: readonly CvItem[];
  readonly perMember: readonly Float32Array[];
}

export interface FoldPredictions {
  readonly folds: readonly FoldPrediction[];
  readonly kind: FoldKind;
  readonly groups: number;
  readonly ungroupedClasses: readonly string[];
}

export type CvOptions = FitOptions & { readonly maxK?: number; readonly tta?: boolean; readonly kind?: FoldKind; readonly onFold?: (done: number, total: number) => void };

/**
 * The folds' held-out predictions, one head per network and fold, each fitted on the other K-1
 * folds the way train() fits (the photos' augmented views; test-time flip if `tta`). Scoring a
 * subset of the networks (recipe choice) then costs no further fit.
 */
export async function foldPredictions(items: readonly CvItem[], classes: readonly string[], k: number, options: CvOptions = {}): Promise<FoldPredictions> {
  const { maxK: _maxK, tta = false, kind = 'random', onFold, ...head } = options;
  const { fold, groups, ungroupedClasses } = assignFolds(items, classes, k, kind, head.seed ?? 0);
  const folds: FoldPrediction[] = [];
  for (let f = 0; f < k; f++) {
    const fitOn = items.filter((it) => fold.get(it) !== f);
    const heldOut = items.filter((it) => fold.get(it) === f);
    const members = heldOut[0]?.rows.length ?? 0;
    const perMember: Float32Array[] = [];
    for (let m = 0; m < members; m++) {
      const model = await fitHead(rowsDataset(fitOn.map((it) => it.rows[m]!), classes.length), undefined, head);
      perMember.push(predictRows(model.weights, heldOut.map((it) => it.rows[m]!), tta));
    }
    folds.push({ heldOut, perMember });
    onFold?.(f + 1, k);
  }
  return { folds, kind, groups, ungroupedClasses };
}

/** Scores fold predictions, averaging the probabilities of the networks `members` names (default all). */
export function scoreFolds(p: FoldPredictions, classes: readonly string[], maxK = 5, members?: readonly number[]): CrossValidation {
  const top1: number[] = [];
  const topK = new Map<number, number[]>();
  const c = classes.length;
  for (const { heldOut, perMember } of p.folds) {
    const probs = averageProbabilities(members ? members.map((m) => perMember[m]!) : perMember);
    const ev = evaluate(
      heldOut.map((it, i) => ({ file: it.relPath, label: it.label, probs: probs.slice(i * c, (i + 1) * c) })),
      classes,
      { maxK },
    );
    top1.push(ev.top1);
    for (const t of ev.topK) topK.set(t.k, [...(topK.get(t.k) ?? []), t.accuracy]);
  }
  return {
    folds: p.folds.length,
    kind: p.kind,
    groups: p.groups,
    ungroupedClasses: p.ungroupedClasses,
    top1: meanStd(top1),
    topK: [...topK.entries()].map(([kk, accs]) => ({ k: kk, ...meanStd(accs) })),
    perFold: top1,
  };
}

/**
 * Stratified K-fold cross-validation of the head on cached features (folds: assignFolds). Each
 * fold is scored by a head fitted on the other K-1 folds. With a few photos per class this is a
 * far steadier estimate than one small test split, and cheap because the backbone never runs
 * again.
 */
export async function crossValidate(items: readonly CvItem[], classes: readonly string[], k: number, options: CvOptions = {}): Promise<CrossValidation> {
  return scoreFolds(await foldPredictions(items, classes, k, options), classes, options.maxK ?? 5);
}
