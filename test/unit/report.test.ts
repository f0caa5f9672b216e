import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluate, wilson, type Prediction } from '../../src/evaluate/metrics.js';
import type { EpochLog } from '../../src/head/train.js';
import { nextSteps, photosFor, spearman } from '../../src/report/advice.js';
import { EMPTY_CELL, confusionSpec, learningCurvesSpec } from '../../src/report/charts.js';
import { epochClaim, validationBand } from '../../src/report/curves.js';
import { modelName } from '../../src/report/input.js';
import type { ReportInput, SplitName } from '../../src/report/types.js';

/** A seeded jitter, so the "noisy" history is the same every run. */
function jitter(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
}

/** Validation accuracy `acc(epoch)` measured on `photos` photos: whole photos right, as a real run records it. */
function history(epochs: number, photos: number, acc: (epoch: number) => number): EpochLog[] {
  return Array.from({ length: epochs }, (_, i) => {
    const epoch = i + 1;
    const valAccuracy = Math.round(Math.min(1, Math.max(0, acc(epoch))) * photos) / photos;
    return { epoch, loss: 1 / epoch, accuracy: Math.min(1, 0.5 + epoch / 20), valLoss: 1 - valAccuracy + epoch / 1000, valAccuracy };
  });
}

/** The epoch a run would keep: lowest validation loss. */
function lowestLoss(h: readonly EpochLog[]): number {
  return h.reduce((best, x) => ((x.valLoss ?? Infinity) < (best.valLoss ?? Infinity) ? x : best)).epoch;
}

// Rises to 0.9 at epoch 10, then overfits down to 0.72 at epoch 20.
const peaked = (epoch: number): number => (epoch <= 10 ? 0.5 + 0.04 * epoch : 0.9 - 0.018 * (epoch - 10));

describe('learning curves: when may a best epoch be named', () => {
  it('names none on 15 validation photos whose accuracy swings between about 55% and 93%', () => {
    const noise = jitter(7);
    const h = history(18, 15, (e) => 0.74 + 0.38 * noise() * Math.min(1, e / 3));
    const accs = h.map((x) => x.valAccuracy!);
    assert.ok(Math.max(...accs) - Math.min(...accs) >= 0.3, `the history is noisy: ${accs.join(' ')}`);
    const claim = epochClaim(h, lowestLoss(h), 15);
    assert.equal(claim.kind, 'unclear');
    assert.ok(claim.kind === 'unclear' && claim.tooSmall, 'called too small to pick an epoch');
    const spec = JSON.stringify(learningCurvesSpec(h, undefined, validationBand(h, 15)));
    assert.ok(!spec.includes('best epoch'), 'the chart names no best epoch');
  });

  it('names the peak of a clearly overfitting curve on 400 photos, and not the same curve on 15', () => {
    const big = history(20, 400, peaked);
    const best = lowestLoss(big);
    const claim = epochClaim(big, best, 400);
    assert.equal(claim.kind, 'clear');
    assert.ok(claim.kind === 'clear');
    assert.equal(claim.best.epoch, best);
    assert.ok(claim.later.mean < claim.best.lo && claim.later.epochs === 20 - best, JSON.stringify(claim));
    assert.ok(JSON.stringify(learningCurvesSpec(big, claim.best.epoch, validationBand(big, 400))).includes(`best epoch ${best}`));

    const small = history(20, 15, peaked);
    assert.notEqual(epochClaim(small, lowestLoss(small), 15).kind, 'clear', 'the same shape on 15 photos is within noise');
  });

  it('calls a flat curve on many photos a plateau, not a too-small set', () => {
    const h = history(20, 1000, (e) => (e < 5 ? 0.5 + 0.08 * e : 0.88));
    const claim = epochClaim(h, lowestLoss(h), 1000);
    assert.equal(claim.kind, 'unclear');
    assert.ok(claim.kind === 'unclear' && !claim.tooSmall && claim.from === 5, JSON.stringify(claim));
  });

  it('bands each validation accuracy with its Wilson interval, and has nothing to say without validation', () => {
    const h = history(5, 20, (e) => 0.5 + e / 10);
    for (const [i, b] of validationBand(h, 20).entries()) {
      assert.deepEqual([b.lo, b.hi], wilson(Math.round(h[i]!.valAccuracy! * 20), 20));
      assert.ok(b.lo <= b.accuracy && b.accuracy <= b.hi);
    }
    const trainOnly = h.map(({ epoch, loss, accuracy }) => ({ epoch, loss, accuracy }));
    assert.deepEqual(epochClaim(trainOnly, 5, 0), { kind: 'none' });
  });
});

const CLASSES = ['anorak', 'beret', 'culottes', 'dungarees'];

function pred(file: string, label: number, predicted: number): Prediction {
  const probs = new Float32Array(CLASSES.length).fill(0.1);
  probs[predicted] = 0.7;
  return { file, label, probs };
}

/**
 * Ten test photos per class. culottes: `right` correct, the rest taken for dungarees; dungarees:
 * one taken for culottes. Training photos per class as given.
 */
function reportInput(training: readonly number[], right: number, extra: Partial<ReportInput> = {}): ReportInput {
  const predictions: Prediction[] = [];
  for (const [c] of CLASSES.entries()) {
    for (let i = 0; i < 10; i++) {
      const predicted = c === 2 && i >= right ? 3 : c === 3 && i === 0 ? 2 : c;
      predictions.push(pred(`/photos/test/${CLASSES[c]}/${i}.jpg`, c, predicted));
    }
  }
  const files: { path: string; label: number; split: SplitName }[] = [
    ...training.flatMap((n, c) => Array.from({ length: n }, (_, i) => ({ path: `/photos/train/${c}/${i}.jpg`, label: c, split: (i % 10 === 0 ? 'validation' : 'train') as SplitName }))),
    ...predictions.map((p) => ({ path: p.file, label: p.label, split: 'test' as const })),
  ];
  return {
    title: 'shop',
    createdAt: '2026-01-01T00:00:00.000Z',
    classes: CLASSES,
    backbone: { id: 'mobilenet_v2', origin: 'mobilenet_v2', sha256: '0'.repeat(64), featureDims: 1280 },
    dataset: { files, skipped: [] },
    history: history(10, 12, () => 0.8),
    bestEpoch: 5,
    evaluation: evaluate(predictions, CLASSES),
    options: { quality: 'plain' },
    timings: {},
    versions: {},
    ...extra,
  };
}

describe('what to do next', () => {
  it('names the weakest class with its training photos and recall, computed from the result', () => {
    const input = reportInput([30, 28, 8, 31], 4);
    const ev = input.evaluation;
    const weak = ev.perClass[2]!;
    const [lo, hi] = wilson(4, 10);
    const step = nextSteps(input).find((s) => s.kind === 'weak-class');
    assert.ok(step, 'a weak-class step');
    const pct = (x: number): string => `${Math.round(x * 100)}%`;
    assert.ok(step.text.startsWith(`culottes: 8 training photos, ${pct(weak.recall!)} recall (4 of 10 test photos, 95% CI ${pct(lo)}–${pct(hi)})`), step.text);
    assert.match(step.text, /fewer training photos than most classes \(median 29\): add photos of culottes/);
    // dungarees (90%) is above the overall top-1 (82.5%): not weak.
    assert.equal(nextSteps(input).filter((s) => s.kind === 'weak-class').length, 1);
  });

  it('points a weak class with plenty of photos at the class it is taken for', () => {
    const step = nextSteps(reportInput([30, 28, 40, 31], 4)).find((s) => s.kind === 'weak-class');
    assert.match(step?.text ?? '', /^culottes: 40 training photos, .* as many training photos as most classes .* all 6 of its misses went to dungarees/);
  });

  it('shows the most confused pair with exactly its photos', () => {
    const input = reportInput([30, 28, 8, 31], 4);
    const step = nextSteps(input).find((s) => s.kind === 'confused-pair');
    assert.match(step?.text ?? '', /^Most confused: culottes and dungarees, 7 of the 40 test photos \(6 culottes taken for dungarees, 1 dungarees taken for culottes\)/);
    const expected = input.evaluation.misclassified.filter((m) => [m.trueLabel, m.predicted].sort().join() === 'culottes,dungarees');
    assert.deepEqual(step?.photos, expected);
    assert.equal(expected.length, 7);
  });

  it('says when a class has no test photos, and neither calls it weak nor scores it', () => {
    const input = reportInput([30, 28, 8, 31], 4);
    const keep = input.evaluation.misclassified.map((m) => m.file);
    // Drop beret's test photos: the test folder holds three of the four classes.
    const predictions = input.dataset.files
      .filter((f) => f.split === 'test' && f.label !== 1)
      .map((f) => pred(f.path, f.label, keep.includes(f.path) ? (f.label === 2 ? 3 : 2) : f.label));
    const ev = evaluate(predictions, CLASSES);
    assert.deepEqual([ev.perClass[1]!.precision, ev.perClass[1]!.recall, ev.perClass[1]!.f1], [null, null, null]);
    const steps = nextSteps({ ...input, evaluation: ev });
    assert.match(steps[0]?.text ?? '', /^1 of 4 classes have no test photos \(beret\)/);
    assert.ok(!steps.some((s) => s.kind === 'weak-class' && s.text.startsWith('beret')));
  });

  it('reasons from the recipe, cross-validation and the size of the test set', () => {
    const recipe = {
      chosen: 'a+b',
      reason: 'no other recipe won by more than one standard error',
      folds: 5,
      candidates: [
        { name: 'a', cvTop1: 0.8, cvStd: 0.04 },
        { name: 'b', cvTop1: 0.83, cvStd: 0.05 },
        { name: 'a+b', cvTop1: 0.82, cvStd: 0.03 },
      ],
    };
    const input = reportInput([30, 28, 8, 31], 4, { recipe });
    const steps = nextSteps(input);
    const text = (kind: string): string => steps.find((s) => s.kind === kind)?.text ?? '';
    assert.match(text('recipe'), /the chosen a\+b 82\.0% and b 83\.0%, 1 points apart, within the folds' spread \(std up to 5 points\)/);
    // 82% ± 3 is within the noise of 82.5% on 40 photos, whose ±11-point interval cannot confirm more.
    assert.match(text('cv-vs-test'), /is within the noise of the test score \(82\.5%, .*too wide to tell/);
    const [lo, hi] = input.evaluation.top1Ci95;
    assert.ok(text('test-size').includes(`spans ${((hi - lo) * 100).toFixed(1)} points`), text('test-size'));
    assert.ok(text('test-size').includes(`about ${photosFor(0.825, 0.05)} test photos`), text('test-size'));
    // Cross-validation far above the test interval: the test photos differ.
    const far = nextSteps({ ...input, crossValidation: { folds: 5, top1: { mean: 0.99, std: 0.01 }, topK: [] } });
    assert.match(far.find((s) => s.kind === 'cv-vs-test')?.text ?? '', /is above the test score .* the test photos differ/);
    // Without a recipe or --cv, neither step is made up.
    assert.ok(!nextSteps(reportInput([30, 28, 8, 31], 4)).some((s) => s.kind === 'recipe' || s.kind === 'cv-vs-test'));
  });

  it('relates recall to the training photo counts by rank correlation', () => {
    const step = nextSteps(reportInput([30, 28, 8, 31], 4)).find((s) => s.kind === 'photos-vs-recall');
    const rho = spearman([30, 28, 8, 31], [1, 1, 0.4, 0.9])!;
    assert.ok(step?.text.includes(`rank correlation ${rho.toFixed(2)} over 4 classes`), step?.text);
    assert.equal(spearman([1, 2, 3], [10, 20, 30]), 1);
    assert.equal(spearman([1, 2, 3], [3, 2, 1]), -1);
    assert.equal(spearman([1, 2, 3], [5, 5, 5]), undefined);
  });

  it('finds the fewest test photos for a ±5-point interval', () => {
    for (const p of [0.5, 0.85, 0.97]) {
      const n = photosFor(p, 0.05)!;
      const half = (k: number): number => {
        const [lo, hi] = wilson(Math.round(p * k), k);
        return (hi - lo) / 2;
      };
      assert.ok(half(n) <= 0.05 && half(n - 1) > 0.05, `p ${p}: n ${n}`);
    }
  });
});

describe('confusion heat map', () => {
  it('leaves zero cells empty and labels only non-zero counts', () => {
    const confusion = [
      [5, 0, 1],
      [0, 3, 0],
      [2, 0, 4],
    ];
    const spec = confusionSpec(['a', 'b', 'c'], confusion) as unknown as {
      data: { values: { count: number }[] };
      layer: { mark: { type: string }; transform?: { filter: string }[]; encoding: { color?: { condition?: { test: string; value: string } } } }[];
    };
    assert.equal(spec.data.values.filter((v) => v.count === 0).length, 4);
    const [cells, labels] = spec.layer;
    assert.deepEqual(cells?.encoding.color?.condition, { test: 'datum.count === 0', value: EMPTY_CELL });
    assert.deepEqual(labels?.transform, [{ filter: 'datum.count > 0' }]);
  });
});

describe('the report heading', () => {
  it("is the model's name, or the data set's when the folder only names a split", () => {
    assert.equal(modelName('/models/shop.model', '/photos/clothing7/train'), 'shop');
    assert.equal(modelName('/models/flowers', '/photos/x'), 'flowers');
    assert.equal(modelName('/photos/clothing7/train.model', '/photos/clothing7/train'), 'clothing7');
    assert.equal(modelName(undefined, '/photos/clothing7/train'), 'clothing7');
    assert.equal(modelName(undefined, '/photos/pets'), 'pets');
  });
});
