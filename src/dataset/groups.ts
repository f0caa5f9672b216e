import { averageLinkage, cosineDistances } from '../util/cluster.js';
import { pushTo, unionFind } from '../util/collections.js';
import { byCodePoint } from '../util/text.js';
import type { LinkReason, SeriesLink } from './series.js';

/** `--group-by`: what keeps photos together in every split and fold. */
export type GroupBy = 'auto' | 'similarity' | 'series' | 'none';
export const GROUP_BY: readonly GroupBy[] = ['auto', 'similarity', 'series', 'none'];
export const DEFAULT_GROUP_BY: GroupBy = 'auto';

/**
 * Near-duplicate threshold: two sets of photos of one class join while their mean cosine distance
 * on the pooled backbone features (averaged over an ensemble's networks) is at most this (and
 * SIMILARITY_MEDIAN_FRACTION of the class's median pair). Chosen
 * by measurement on evaluation sets of several kinds (bench/README.md, "Series and honest
 * estimates"): larger values merge different objects of a class until folds lose whole classes.
 */
export const SIMILARITY_THRESHOLD = 0.15;

/**
 * Within a class whose photos all look alike (28-pixel product shots, star clusters), a fixed
 * threshold joins photos of different objects (groups of 54 of 100 Fashion-MNIST boots): a
 * near-copy must also be within this fraction of the class's median pair distance. 1/3 split
 * stellarium's sky photos too finely (its CV gap then exceeded random folds'); 1/2 kept every
 * set's gap at or below random folds' and Fashion-MNIST's largest group at 12.
 */
export const SIMILARITY_MEDIAN_FRACTION = 0.5;

/** Photos of a class compared with each other for near-copies at a time (name order). */
export const SIMILARITY_BLOCK = 500;

export type GroupReason = LinkReason | 'similarity';

export interface PhotoGroups {
  readonly by: GroupBy;
  /** Each photo's group: the code-point-first relPath among its members. */
  readonly of: ReadonlyMap<string, string>;
  readonly count: number;
  /** Photos in the largest group. */
  readonly largest: number;
  /** Photos that share a group with another photo. */
  readonly grouped: number;
  /** How many photos each rule tied to another (a photo can count under several). */
  readonly reasons: Readonly<Partial<Record<GroupReason, number>>>;
  /** Classes whose photos all fell into one group. */
  readonly singleGroupClasses: readonly number[];
}

export interface GroupInput {
  readonly relPath: string;
  readonly label: number;
}

/**
 * Puts photos of one class that belong together into one group: the series links (names,
 * markers, a groups file, capture times) and, unless `by` is 'series', near-duplicate clusters
 * of `vectors` (each photo's pooled feature vector per network, aligned with `files`).
 * 'none' gives every photo its own group.
 */
export function groupPhotos(
  files: readonly GroupInput[],
  by: GroupBy,
  links: readonly SeriesLink[],
  vectors?: readonly (readonly Float32Array[])[],
  threshold = SIMILARITY_THRESHOLD,
): PhotoGroups {
  const index = new Map(files.map((f, i) => [f.relPath, i]));
  const sets = unionFind(files.length);
  const tied = new Map<GroupReason, Set<number>>();
  const join = (a: number, b: number, reason: GroupReason): void => {
    if (files[a]!.label !== files[b]!.label || a === b) return;
    const set = tied.get(reason) ?? new Set<number>();
    set.add(a).add(b);
    tied.set(reason, set);
    sets.union(a, b);
  };
  // 'similarity' keeps only what the user said (marker, groups file), not what names suggest.
  const said = new Set<LinkReason>(by === 'similarity' ? ['marker', 'groups-file'] : ['marker', 'groups-file', 'name', 'time']);
  if (by !== 'none') {
    for (const link of links) {
      if (!said.has(link.reason)) continue;
      const [a, b] = [index.get(link.a), index.get(link.b)];
      if (a !== undefined && b !== undefined) join(a, b, link.reason);
    }
  }
  if ((by === 'auto' || by === 'similarity') && vectors) {
    const byClass = new Map<number, number[]>();
    files.forEach((f, i) => pushTo(byClass, f.label, i));
    for (const inClass of byClass.values()) {
      inClass.sort((a, b) => byCodePoint(files[a]!.relPath, files[b]!.relPath));
      // Consecutive blocks in name order keep the cost linear in a large class (series are
      // neighbours in name order; near-copies further apart than a block are not looked for).
      for (let start = 0; start < inClass.length; start += SIMILARITY_BLOCK) {
        const members = inClass.slice(start, start + SIMILARITY_BLOCK);
        if (members.length < 2) continue;
        const n = members.length;
        const nets = vectors[members[0]!]!.length;
        const d = new Float64Array(n * n);
        for (let m = 0; m < nets; m++) {
          const dm = cosineDistances(members.map((i) => vectors[i]![m]!));
          for (let t = 0; t < d.length; t++) d[t]! += dm[t]! / nets;
        }
        const cluster = averageLinkage(d, n, Math.min(threshold, SIMILARITY_MEDIAN_FRACTION * medianPair(d, n)));
        cluster.forEach((c, i) => {
          if (c !== i) join(members[i]!, members[c]!, 'similarity');
        });
      }
    }
  }
  const members = new Map<number, number[]>();
  files.forEach((_, i) => pushTo(members, sets.find(i), i));
  const of = new Map<string, string>();
  let largest = 0;
  let grouped = 0;
  const groupsOfClass = new Map<number, number>();
  for (const list of members.values()) {
    const key = list.map((i) => files[i]!.relPath).sort(byCodePoint)[0]!;
    for (const i of list) of.set(files[i]!.relPath, key);
    largest = Math.max(largest, list.length);
    if (list.length > 1) grouped += list.length;
    const label = files[list[0]!]!.label;
    groupsOfClass.set(label, (groupsOfClass.get(label) ?? 0) + 1);
  }
  const classSizes = new Map<number, number>();
  for (const f of files) classSizes.set(f.label, (classSizes.get(f.label) ?? 0) + 1);
  const singleGroupClasses = [...groupsOfClass.entries()].filter(([label, g]) => g === 1 && (classSizes.get(label) ?? 0) > 1).map(([label]) => label).sort((a, b) => a - b);
  return {
    by,
    of,
    count: members.size,
    largest,
    grouped,
    reasons: Object.fromEntries([...tied.entries()].map(([r, s]) => [r, s.size])),
    singleGroupClasses,
  };
}

/** The median of the distinct pairs' distances of an n x n matrix. */
function medianPair(d: Float64Array, n: number): number {
  const pairs = new Float64Array((n * (n - 1)) / 2);
  let t = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs[t++] = d[i * n + j]!;
  pairs.sort();
  return pairs[Math.floor(pairs.length / 2)] ?? 0;
}
