import { HeadswapError, msg, option } from '../errors.js';
import { sha256 } from '../util/fs.js';
import { pushTo } from '../util/collections.js';
import { byCodePoint } from '../util/text.js';
import { quoteName } from './scan.js';

export type SplitName = 'train' | 'validation' | 'test';

export interface SplitOptions {
  /** Percent of each class for validation (default 10); 0 turns the validation split off. */
  valPct: number;
  /** Percent of each class for test (default 10); 0 turns the test split off. */
  testPct: number;
  /** Changes which files land where (default 0). */
  seed: number;
  /** A `--test-dir` was given: no test split is taken from this folder. */
  hasSeparateTest?: boolean;
  /**
   * Each photo's group (dataset/groups.ts): a group goes to one split as a whole, placed by its
   * key's unit, so a series never has photos on both sides. Default: every photo alone.
   */
  groupOf?: (relPath: string) => string;
}

/** The CLI's defaults for `--val-pct`, `--test-pct` and `--seed`. */
export const DEFAULT_SPLIT_OPTIONS: Readonly<SplitOptions> = { valPct: 10, testPct: 10, seed: 0 };

/**
 * A file's position in [0, 1), from (seed, relPath) alone: the split of a file never depends on
 * which other files exist, so adding photos leaves old ones where they were.
 */
export function splitUnit(seed: number, relPath: string): number {
  return Number.parseInt(sha256(`${seed}\0${relPath}`).slice(0, 8), 16) / 2 ** 32;
}

interface Unit<T> {
  readonly key: string;
  readonly u: number;
  readonly files: readonly T[];
}

/** A class's groups as split units; photo by photo when there are fewer groups than splits. */
function unitsOf<T extends { relPath: string }>(files: readonly T[], seed: number, needed: number, groupOf: ((relPath: string) => string) | undefined): Unit<T>[] {
  const byKey = new Map<string, T[]>();
  for (const f of files) {
    const key = groupOf?.(f.relPath) ?? f.relPath;
    pushTo(byKey, key, f);
  }
  const units = byKey.size >= needed ? [...byKey.entries()] : files.map((f) => [f.relPath, [f]] as const);
  return units.map(([key, members]) => ({ key, u: splitUnit(seed, key), files: members }));
}

/** Ordered by unit range: test takes [0, t), validation [t, t + v), train the rest. */
const ORDER: readonly SplitName[] = ['test', 'validation', 'train'];

/**
 * Splits files into train/validation/test, stratified per class and deterministic.
 * Each group (with no `groupOf`, each file) goes by its key's `splitUnit`; then, per class, every
 * enabled split that came out empty takes one group from the fullest other split (the one nearest
 * its unit range), so each class has at least one train, one validation and one test photo. Only
 * such small classes, and groups that gain an earlier-named photo, can see a file move when
 * photos are added. A class with fewer groups than splits is split photo by photo (the caller
 * warns: its estimate then counts near-copies).
 *
 * Minimum class size: one file per enabled split — 3 by default; 2 with `hasSeparateTest` (train +
 * validation, so every class is still seen by validation, which model selection relies on).
 * Output arrays are sorted by (label, relPath).
 */
export function splitDataset<T extends { relPath: string; label: number }>(
  files: readonly T[],
  classes: readonly string[],
  options: SplitOptions,
): { train: T[]; validation: T[]; test: T[] } {
  const { valPct, seed } = options;
  const testPct = options.hasSeparateTest ? 0 : options.testPct;
  for (const [name, pct] of [['valPct', valPct], ['testPct', options.testPct]] as const) {
    if (!Number.isFinite(pct) || pct < 0 || pct >= 100) {
      throw new HeadswapError(msg`${option(name, pct)} is out of range; use a percentage from 0 to 99`);
    }
  }
  if (testPct + valPct >= 100) {
    throw new HeadswapError(msg`${option('valPct', valPct)} and ${option('testPct', testPct)} leave nothing to train on; make their sum less than 100`);
  }
  const enabled = new Set<SplitName>(['train']);
  if (valPct > 0) enabled.add('validation');
  if (testPct > 0) enabled.add('test');
  const required = ORDER.filter((name) => enabled.has(name));

  const byClass = classes.map(() => [] as T[]);
  for (const file of files) {
    const bucket = byClass[file.label];
    if (!bucket) throw new RangeError(`label ${file.label} of ${file.relPath} is not an index into ${classes.length} classes`);
    bucket.push(file);
  }

  const out: Record<SplitName, T[]> = { train: [], validation: [], test: [] };
  byClass.forEach((inClass, label) => {
    if (inClass.length < required.length) {
      const fix = options.hasSeparateTest ? 'add photos' : msg`add photos or give a separate ${option('testDir')}`;
      throw new HeadswapError(
        msg`class ${quoteName(classes[label] ?? String(label))} has ${inClass.length} image(s); it needs at least ${required.length} (${required.join(' + ')}) — ${fix}`,
      );
    }
    const members = unitsOf(inClass, seed, required.length, options.groupOf);
    const parts: Record<SplitName, Unit<T>[]> = { train: [], validation: [], test: [] };
    for (const m of members) {
      const name = m.u < testPct / 100 ? 'test' : m.u < (testPct + valPct) / 100 ? 'validation' : 'train';
      parts[name].push(m);
    }
    for (const target of required) {
      if (parts[target].length > 0) continue;
      // Fullest donor keeps the hashed shares as intact as possible; ties prefer train.
      const donor = [...required]
        .reverse()
        .filter((name) => name !== target && parts[name].length > 1)
        .reduce<SplitName | undefined>((best, name) => (best && parts[best].length >= parts[name].length ? best : name), undefined);
      // Cannot happen: members >= required splits, so an empty split means another has two.
      if (!donor) throw new Error('split repair found no donor');
      // Move the donor's file nearest the target's unit range (lowest u if the target lies below).
      const below = ORDER.indexOf(target) < ORDER.indexOf(donor);
      const pool = parts[donor].sort((a, b) => a.u - b.u || byCodePoint(a.key, b.key));
      const moved = below ? pool.shift() : pool.pop();
      if (moved) parts[target].push(moved);
    }
    for (const name of ORDER) out[name].push(...parts[name].flatMap((m) => m.files));
  });

  for (const name of ORDER) out[name].sort((a, b) => a.label - b.label || byCodePoint(a.relPath, b.relPath));
  return out;
}
