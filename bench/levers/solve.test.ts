import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Backbone } from '../../src/backbone/backbone.js';
import { HeadswapError } from '../../src/errors.js';
import { createRng, normal } from '../../src/util/random.js';
import { headObjective, predictSolved, solveHead } from './solve.js';
import { trainHead, type Dataset } from '../../src/head/train.js';
import { IDENTITY_TRANSFORM, transformFeatures } from './transform.js';
import { clothing7Features } from '../../test/helpers/features.js';

/** A few real clothing7 photos per class (first files of each of 4 classes): features extracted once. */
const CLASSES = ['dress', 'hat', 'shoes', 'skirt'];
let train: Dataset;
let test: Dataset;

before(async () => {
  const backbone = await Backbone.load('mobilenet_v2');
  train = await clothing7Features('train', CLASSES, 8, backbone);
  test = await clothing7Features('test', CLASSES, 6, backbone);
  await backbone.release();
});

function accuracy(probs: Float32Array, data: Dataset): number {
  let correct = 0;
  for (let i = 0; i < data.n; i++) {
    const row = probs.subarray(i * data.classes, (i + 1) * data.classes);
    if (row.indexOf(Math.max(...row)) === data.y[i]) correct++;
  }
  return correct / data.n;
}

describe('transformFeatures', () => {
  it('applies signed power then L2 normalization per row, leaving the input alone', () => {
    const x = Float32Array.of(4, 0, -9, 0, 0, 0);
    const copy = x.slice();
    const t = transformFeatures(x, 2, { power: 0.5, l2: true });
    assert.deepEqual(x, copy);
    const norm = Math.sqrt(4 + 9);
    assert.ok(Math.abs(t[0]! - 2 / norm) < 1e-6 && Math.abs(t[2]! + 3 / norm) < 1e-6 && t[1] === 0);
    assert.deepEqual([...t.subarray(3)], [0, 0, 0], 'a zero row stays zero (no NaN)');
    assert.deepEqual(transformFeatures(x, 2, IDENTITY_TRANSFORM), x);
    assert.throws(() => transformFeatures(x, 2, { power: 0, l2: false }), HeadswapError);
  });
});

describe('solveHead', () => {
  it('reaches the optimum of the objective trainHead descends (lower, and a minimum in every direction)', async () => {
    const l2 = 0.5;
    const solved = solveHead(train, { l2 });
    const adam = await trainHead(train, undefined, { l2, epochs: 200 });
    const fSolved = headObjective(train, solved, l2);
    const fAdam = headObjective(train, { weights: adam.weights, transform: IDENTITY_TRANSFORM }, l2);
    assert.ok(fSolved <= fAdam + 1e-6, `solver ${fSolved} vs Adam ${fAdam}`);
    assert.ok(fAdam - fSolved < 0.05, `Adam should be near the same optimum: ${fAdam} vs ${fSolved}`);
    const rng = createRng(1);
    const kernel = solved.weights.layers[0]!.kernel;
    for (let trial = 0; trial < 5; trial++) {
      const bumped = kernel.map((w) => w + 1e-3 * normal(rng));
      const weights = { ...solved.weights, layers: [{ ...solved.weights.layers[0]!, kernel: bumped }] };
      assert.ok(headObjective(train, { weights, transform: IDENTITY_TRANSFORM }, l2) > fSolved);
    }
  });

  it('is deterministic, warm-starts to the same solution, and classifies held-out photos', () => {
    const t = { power: 0.5, l2: true };
    const a = solveHead(train, { l2: 0.3, transform: t });
    const b = solveHead(train, { l2: 0.3, transform: t });
    assert.deepEqual(a.weights.layers[0]!.kernel, b.weights.layers[0]!.kernel);
    const near = solveHead(train, { l2: 0.35, transform: t });
    const warm = solveHead(train, { l2: 0.3, transform: t, init: near.raw });
    assert.ok(warm.iterations < a.iterations, `warm ${warm.iterations} vs cold ${a.iterations}`);
    assert.ok(Math.abs(warm.loss - a.loss) < 1e-6);
    const acc = accuracy(predictSolved(a, test.x, test.n), test);
    assert.ok(acc >= 0.75, `held-out accuracy ${acc}`);
  });

  it('refuses a zero penalty and malformed data with one-line errors', () => {
    assert.throws(() => solveHead(train, { l2: 0 }), /positive penalty/);
    assert.throws(() => solveHead({ ...train, y: train.y.map(() => 0) }), /class 1 has no training examples/);
    assert.throws(() => solveHead({ ...train, n: train.n + 1 }), HeadswapError);
  });
});
