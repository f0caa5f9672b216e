import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp, { type Sharp } from 'sharp';
import { groupPhotos, SIMILARITY_BLOCK } from '../../src/dataset/groups.js';
import { splitDataset } from '../../src/dataset/split.js';
import { assignFolds, type CvItem } from '../../src/evaluate/cv.js';
import { pickRecipe, type RecipeScore } from '../../src/pipeline/auto.js';
import { averageLinkage, cosineDistances } from '../../src/util/cluster.js';
import { DRESS_1, HAT_1, SHOE_1, SHOE_2 } from '../helpers/images.js';

/** A photo as a small vector of its pixels, after an optional edit (re-encoding, a crop). */
async function pixels(path: string, edit: (s: Sharp) => Sharp = (s) => s): Promise<Float32Array> {
  const bytes = await edit(sharp(path)).jpeg({ quality: 90 }).toBuffer();
  const raw = await sharp(bytes).resize(24, 24, { fit: 'fill' }).removeAlpha().raw().toBuffer();
  // Centred, so the cosine compares patterns rather than overall brightness.
  const mean = raw.reduce((a, b) => a + b, 0) / raw.length;
  return Float32Array.from(raw, (x) => x - mean);
}

describe('averageLinkage', () => {
  test('near-copies of real photos cluster; different photos stay apart', async () => {
    const vectors = [
      await pixels(SHOE_1),
      await pixels(SHOE_1, (s) => s.jpeg({ quality: 30 })),
      await pixels(HAT_1),
      await pixels(SHOE_1, (s) => s.modulate({ brightness: 1.05 })),
      await pixels(DRESS_1),
      await pixels(SHOE_2),
    ];
    const d = cosineDistances(vectors);
    assert.ok(d[0 * 6 + 1]! < 0.05, `re-encoded copy at ${d[1]}`);
    assert.ok(d[0 * 6 + 2]! > 0.3, `another photo at ${d[2]}`);
    assert.deepEqual([...averageLinkage(d, 6, 0.1)], [0, 0, 2, 0, 4, 5]);
    assert.deepEqual([...averageLinkage(cosineDistances(vectors), 6, 0)], [0, 1, 2, 3, 4, 5]);
  });

  test('does not chain: a slow drift is not one cluster, as single linkage would make it', () => {
    // Points 0, 1, 2, ... on a line, distance |i - j|: every neighbour is within 1.
    const n = 6;
    const d = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) d[i * n + j] = Math.abs(i - j);
    const clusters = averageLinkage(d, n, 1);
    assert.ok(new Set(clusters).size >= 3, `clusters ${[...clusters]}`);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(clusters[i]! - i) <= 1, 'each cluster holds neighbours only');
  });
});

describe('groupPhotos', () => {
  const files = ['a/1.jpg', 'a/2.jpg', 'a/3.jpg', 'a/4.jpg', 'b/1.jpg', 'b/2.jpg'].map((relPath) => ({ relPath, label: relPath.startsWith('a') ? 0 : 1 }));
  const one = (x: number): Float32Array[] => [Float32Array.from([1, x, 0])];
  // a/1 and a/2 near-identical; the rest far apart; b/1 equals a/1 but is another class.
  const vectors = [one(0), one(0.01), [Float32Array.from([0, 0, 1])], [Float32Array.from([0, 1, 0])], one(0), [Float32Array.from([0, 1, 1])]];
  const links = [
    { a: 'a/3.jpg', b: 'a/4.jpg', reason: 'name' as const },
    { a: 'b/1.jpg', b: 'b/2.jpg', reason: 'marker' as const },
  ];

  test("'auto' joins series links and near-copies, never across classes", () => {
    const g = groupPhotos(files, 'auto', links, vectors);
    assert.equal(g.of.get('a/2.jpg'), 'a/1.jpg');
    assert.equal(g.of.get('a/4.jpg'), 'a/3.jpg');
    assert.equal(g.of.get('b/1.jpg'), 'b/1.jpg');
    assert.equal(g.of.get('b/2.jpg'), 'b/1.jpg');
    assert.deepEqual({ count: g.count, largest: g.largest, grouped: g.grouped }, { count: 3, largest: 2, grouped: 6 });
    assert.deepEqual(g.reasons, { name: 2, marker: 2, similarity: 2 });
    assert.deepEqual(g.singleGroupClasses, [1]);
  });

  test('a large class is compared in blocks of name order, so the cost stays linear', () => {
    // Near-copy pairs (2k+1, 2k+2) among otherwise distinct photos; pair (499, 500) straddles
    // the first block's end and is not looked for.
    const n = SIMILARITY_BLOCK + 100;
    const big = Array.from({ length: n }, (_, i) => ({ relPath: `a/${String(i).padStart(4, '0')}.jpg`, label: 0 }));
    const vecs = big.map((_, i) => {
      const v = new Float32Array(n);
      v[i === 0 ? 0 : i - ((i + 1) % 2)] = 1;
      v[i] = (v[i] ?? 0) + 0.01;
      return [v];
    });
    const g = groupPhotos(big, 'similarity', [], vecs);
    assert.equal(g.of.get('a/0002.jpg'), 'a/0001.jpg');
    assert.equal(g.of.get('a/0502.jpg'), 'a/0501.jpg');
    assert.equal(g.of.get('a/0500.jpg'), 'a/0500.jpg');
    assert.equal(g.of.get('a/0499.jpg'), 'a/0499.jpg');
    assert.equal(g.largest, 2);
  });

  test("'series' ignores similarity, 'similarity' ignores name guesses but keeps markers, 'none' keeps nothing", () => {
    const series = groupPhotos(files, 'series', links, vectors);
    assert.equal(series.of.get('a/2.jpg'), 'a/2.jpg');
    assert.equal(series.of.get('a/4.jpg'), 'a/3.jpg');
    const similar = groupPhotos(files, 'similarity', links, vectors);
    assert.equal(similar.of.get('a/2.jpg'), 'a/1.jpg');
    assert.equal(similar.of.get('a/4.jpg'), 'a/4.jpg');
    assert.equal(similar.of.get('b/2.jpg'), 'b/1.jpg');
    const none = groupPhotos(files, 'none', links, vectors);
    assert.equal(none.count, files.length);
    assert.equal(none.grouped, 0);
  });
});

/** 3 classes x 12 photos; in class 0, photos 0-3 are one series and 4-5 another. */
function cvItems(): CvItem[] {
  return [0, 1, 2].flatMap((label) =>
    Array.from({ length: 12 }, (_, i) => {
      const relPath = `c${label}/p${String(i).padStart(2, '0')}.jpg`;
      const group = label === 0 && i < 4 ? 'c0/p00.jpg' : label === 0 && i < 6 ? 'c0/p04.jpg' : undefined;
      return { relPath, label, rows: [], group };
    }),
  );
}

describe('assignFolds', () => {
  const classes = ['a', 'b', 'c'];
  for (const kind of ['random', 'ordered'] as const) {
    test(`${kind}: a group never spans two folds; every class is in every fold`, () => {
      const items = cvItems();
      const { fold, groups, ungroupedClasses } = assignFolds(items, classes, 4, kind, 0);
      assert.equal(groups, 36 - 3 - 1);
      assert.deepEqual(ungroupedClasses, []);
      const byGroup = new Map<string, Set<number>>();
      for (const it of items) if (it.group) byGroup.set(it.group, (byGroup.get(it.group) ?? new Set()).add(fold.get(it)!));
      for (const [g, folds] of byGroup) assert.equal(folds.size, 1, `group ${g} in folds ${[...folds]}`);
      for (let c = 0; c < 3; c++) {
        for (let f = 0; f < 4; f++) assert.ok(items.some((it) => it.label === c && fold.get(it) === f), `class ${c} missing from fold ${f}`);
      }
    });
  }

  test('ordered: folds are consecutive runs of names within each class', () => {
    const items = cvItems();
    const { fold } = assignFolds(items, classes, 3, 'ordered', 0);
    for (let c = 1; c < 3; c++) {
      const seq = items.filter((it) => it.label === c).map((it) => fold.get(it)!);
      assert.deepEqual(seq, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    }
  });

  test('random without groups: stratified round-robin, folds of equal size; the seed changes them', () => {
    const items = cvItems().map((it) => ({ ...it, group: undefined }));
    const a = assignFolds(items, classes, 3, 'random', 0).fold;
    const b = assignFolds(items, classes, 3, 'random', 1).fold;
    for (let f = 0; f < 3; f++) assert.equal(items.filter((it) => it.label === 1 && a.get(it) === f).length, 4);
    assert.ok(items.some((it) => a.get(it) !== b.get(it)));
  });

  test('a class with fewer groups than folds is dealt photo by photo, and named', () => {
    const items = cvItems().map((it) => (it.label === 2 ? { ...it, group: 'c2/p00.jpg' } : it));
    const { fold, ungroupedClasses } = assignFolds(items, classes, 3, 'random', 0);
    assert.deepEqual(ungroupedClasses, ['c']);
    assert.equal(new Set(items.filter((it) => it.label === 2).map((it) => fold.get(it))).size, 3);
  });
});

describe('splitDataset with groups', () => {
  test('a group lands in one split as a whole, for every seed', () => {
    const files = Array.from({ length: 40 }, (_, i) => ({ relPath: `a/${String(i).padStart(2, '0')}.jpg`, label: 0 }));
    const groupOf = (relPath: string): string => `series-${Math.floor(Number(relPath.slice(2, 4)) / 5)}`;
    for (let seed = 0; seed < 10; seed++) {
      const split = splitDataset(files, ['a'], { valPct: 20, testPct: 20, seed, groupOf });
      for (const part of [split.train, split.validation, split.test]) assert.ok(part.length > 0);
      const where = new Map<string, Set<string>>();
      for (const [name, part] of Object.entries(split)) for (const f of part) where.set(groupOf(f.relPath), (where.get(groupOf(f.relPath)) ?? new Set()).add(name));
      for (const [g, names] of where) assert.equal(names.size, 1, `seed ${seed}: ${g} in ${[...names]}`);
    }
  });

  test('a class of fewer groups than splits is split photo by photo', () => {
    const files = Array.from({ length: 6 }, (_, i) => ({ relPath: `a/${i}.jpg`, label: 0 }));
    const split = splitDataset(files, ['a'], { valPct: 10, testPct: 10, seed: 0, groupOf: () => 'one' });
    assert.deepEqual([split.train.length > 0, split.validation.length, split.test.length], [true, 1, 1]);
  });
});

describe('pickRecipe', () => {
  const score = (name: string, perFold: number[]): RecipeScore => ({ name, members: [], cvTop1: perFold.reduce((a, b) => a + b, 0) / perFold.length, cvStd: 0, perFold });

  test('keeps the reference unless another recipe wins clearly over the same folds', () => {
    const noisy = [score('one', [0.9, 0.7, 0.9, 0.7, 0.8]), score('two', [0.7, 0.9, 0.7, 0.9, 0.8]), score('both', [0.8, 0.8, 0.8, 0.8, 0.78])];
    assert.equal(pickRecipe(noisy, 2).chosen.name, 'both');
    assert.match(pickRecipe(noisy, 2).reason, /no other recipe won/);
    const clear = [score('one', [0.9, 0.92, 0.88, 0.9, 0.91]), score('two', [0.7, 0.9, 0.7, 0.9, 0.8]), score('both', [0.8, 0.8, 0.8, 0.8, 0.8])];
    const picked = pickRecipe(clear, 2);
    assert.equal(picked.chosen.name, 'one');
    assert.match(picked.reason, /one beats both by 10\.2 points/);
  });
});
