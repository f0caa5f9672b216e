import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Backbone } from '../../src/backbone/backbone.js';
import { HeadswapError } from '../../src/errors.js';
import { fitNcm } from './ncm.js';
import { predictSolved } from './solve.js';
import type { Dataset } from '../../src/head/train.js';
import { transformFeatures } from './transform.js';
import { clothing7Features } from '../../test/helpers/features.js';

const CLASSES = ['dress', 'hat', 'pants', 'shoes'];
let train: Dataset;
let test: Dataset;
before(async () => {
  const backbone = await Backbone.load('mobilenet_v2');
  train = await clothing7Features('train', CLASSES, 3, backbone);
  test = await clothing7Features('test', CLASSES, 6, backbone);
  await backbone.release();
});

function argmax(row: Float32Array): number {
  return row.indexOf(Math.max(...row));
}

describe('fitNcm', () => {
  it('classifies by the nearest normalized class mean (cosine), from 3 photos per class', () => {
    const head = fitNcm(train);
    const probs = predictSolved(head, test.x, test.n);
    const t = { power: 0.5, l2: true };
    const xt = transformFeatures(test.x, test.n, t);
    const xs = transformFeatures(train.x, train.n, t);
    const d = train.d;
    let correct = 0;
    for (let i = 0; i < test.n; i++) {
      // Reference: cosine to each class's mean, computed directly.
      const cos = CLASSES.map((_, c) => {
        const m = new Float64Array(d);
        for (let r = 0; r < train.n; r++) if (train.y[r] === c) for (let j = 0; j < d; j++) m[j]! += xs[r * d + j]!;
        let dot = 0;
        let norm = 0;
        for (let j = 0; j < d; j++) {
          dot += m[j]! * xt[i * d + j]!;
          norm += m[j]! ** 2;
        }
        return dot / Math.sqrt(norm);
      });
      const predicted = argmax(probs.subarray(i * 4, (i + 1) * 4));
      assert.equal(predicted, cos.indexOf(Math.max(...cos)));
      if (predicted === test.y[i]) correct++;
    }
    assert.ok(correct / test.n >= 0.75, `accuracy ${correct / test.n}`);
  });

  it('needs a normalizing transform and every class', () => {
    assert.throws(() => fitNcm(train, { transform: { power: 1, l2: false } }), HeadswapError);
    assert.throws(() => fitNcm({ ...train, y: train.y.map((c) => (c === 3 ? 0 : c)) }), /class 3 has no training examples/);
  });
});
