import { HeadswapError } from '../../src/errors.js';
import { predictSolved, solveHead, type SolveOptions } from './solve.js';
import type { Dataset } from '../../src/head/train.js';

/**
 * Chooses the L2 penalty by K-fold cross-validation inside the training set, with solveHead.
 * Rows of one photo (its augmented views) share a `group` and so always land in the same fold;
 * only rows flagged in `score` (the photos' plain views) are scored, so the criterion is
 * accuracy on real photos, not on crops. Criterion: class-balanced held-out log-loss (smooth, so
 * it separates penalties that tie on the accuracy of ~30 photos); ties go to the larger penalty.
 * The grid is solved from strong to weak penalty, each fold warm-started from the previous one.
 */
export interface SelectOptions extends Omit<SolveOptions, 'l2' | 'init'> {
  /** Penalties to try; default 0.1, 0.2, 0.5, 1, 2. */
  readonly grid?: readonly number[];
  /** Folds; default 5 (fewer if the smallest class has fewer photos). */
  readonly folds?: number;
  /** Photo index of each row (default: each row its own photo). */
  readonly groups?: Int32Array;
  /** 1 for rows to score (default: all). */
  readonly score?: Uint8Array;
}

export interface Selection {
  readonly l2: number;
  readonly table: readonly { readonly l2: number; readonly logLoss: number; readonly accuracy: number }[];
  readonly millis: number;
}

export const DEFAULT_L2_GRID: readonly number[] = [0.1, 0.2, 0.5, 1, 2];

function subset(data: Dataset, rows: number[]): Dataset {
  const { d } = data;
  const x = new Float32Array(rows.length * d);
  rows.forEach((r, i) => x.set(data.x.subarray(r * d, (r + 1) * d), i * d));
  return { x, y: Int32Array.from(rows, (r) => data.y[r]!), n: rows.length, d, classes: data.classes };
}

export function chooseL2(data: Dataset, options: SelectOptions = {}): Selection {
  const started = performance.now();
  const { grid = DEFAULT_L2_GRID, folds: wanted = 5, groups, score, ...solve } = options;
  if (grid.length === 0) throw new HeadswapError('chooseL2 needs at least one penalty to try');
  const group = groups ?? Int32Array.from({ length: data.n }, (_, i) => i);
  // Photos per class, each photo's label taken from its first row.
  const photoLabel = new Map<number, number>();
  for (let i = 0; i < data.n; i++) if (!photoLabel.has(group[i]!)) photoLabel.set(group[i]!, data.y[i]!);
  const perClass: number[][] = Array.from({ length: data.classes }, () => []);
  for (const [g, c] of photoLabel) perClass[c]!.push(g);
  const smallest = Math.min(...perClass.map((p) => p.length));
  const folds = Math.min(wanted, smallest);
  if (folds < 2) throw new HeadswapError(`choosing l2 by cross-validation needs at least 2 photos in every class (smallest has ${smallest})`);
  // Stratified: deal each class's photos round-robin in index order (callers order photos as they like).
  const foldOf = new Map<number, number>();
  for (const photos of perClass) photos.sort((a, b) => a - b).forEach((g, i) => foldOf.set(g, i % folds));
  const order = [...grid].sort((a, b) => b - a);
  const loss = new Float64Array(order.length);
  const correct = new Float64Array(order.length);
  let scored = 0;
  const counts = new Float64Array(data.classes);
  for (let i = 0; i < data.n; i++) if (!score || score[i]) counts[data.y[i]!]!++;
  for (let f = 0; f < folds; f++) {
    const fit: number[] = [];
    const held: number[] = [];
    for (let i = 0; i < data.n; i++) {
      if (foldOf.get(group[i]!) !== f) fit.push(i);
      else if (!score || score[i]) held.push(i);
    }
    const train = subset(data, fit);
    const test = subset(data, held);
    scored += held.length;
    let init: SolveOptions['init'];
    order.forEach((l2, gi) => {
      const head = solveHead(train, { ...solve, l2, init });
      init = head.raw;
      const probs = predictSolved(head, test.x, test.n);
      for (let i = 0; i < test.n; i++) {
        const c = test.y[i]!;
        const row = probs.subarray(i * data.classes, (i + 1) * data.classes);
        // Class-balanced: each class's examples weigh 1 / its count, as in a balanced test set.
        loss[gi]! -= Math.log(Math.max(row[c]!, 1e-12)) / counts[c]!;
        if (row.indexOf(Math.max(...row)) === c) correct[gi]!++;
      }
    });
  }
  const table = order.map((l2, gi) => ({ l2, logLoss: loss[gi]! / data.classes, accuracy: correct[gi]! / scored }));
  let best = table[0]!;
  for (const row of table) if (row.logLoss < best.logLoss - 1e-9) best = row;
  return { l2: best.l2, table, millis: performance.now() - started };
}
