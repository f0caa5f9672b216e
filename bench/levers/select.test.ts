import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { HeadswapError } from '../../src/errors.js';
import { chooseL2 } from './select.js';
import type { Dataset } from '../../src/head/train.js';
import { clothing7Features } from '../../test/helpers/features.js';

let train: Dataset;
before(async () => {
  train = await clothing7Features('train', ['dress', 'hat', 'shoes', 'skirt'], 6);
});

describe('chooseL2', () => {
  it('scores every penalty of the grid and picks the lowest held-out log-loss', () => {
    const s = chooseL2(train, { grid: [0.01, 0.5, 1000], folds: 3 });
    assert.deepEqual(s.table.map((r) => r.l2), [1000, 0.5, 0.01]);
    const best = s.table.reduce((a, b) => (b.logLoss < a.logLoss ? b : a));
    assert.equal(s.l2, best.l2);
    for (const r of s.table) assert.ok(r.logLoss > 0 && r.accuracy >= 0 && r.accuracy <= 1);
    // A penalty of 1000 flattens the probabilities toward uniform: log-loss near ln(4).
    assert.ok(Math.abs(s.table[0]!.logLoss - Math.log(4)) < 0.1, `l2=1000 log-loss ${s.table[0]!.logLoss}`);
    assert.ok(s.l2 < 1000);
  });

  it('keeps the views of one photo in one fold and scores only the flagged rows', () => {
    // Each photo twice (identical rows): without grouping the copy in the training folds would
    // make held-out accuracy perfect; with grouping it must equal the ungrouped single-copy run.
    const d = train.d;
    const x = new Float32Array(train.n * 2 * d);
    for (let i = 0; i < train.n; i++) {
      x.set(train.x.subarray(i * d, (i + 1) * d), 2 * i * d);
      x.set(train.x.subarray(i * d, (i + 1) * d), (2 * i + 1) * d);
    }
    const doubled: Dataset = { x, y: Int32Array.from({ length: train.n * 2 }, (_, r) => train.y[r >> 1]!), n: train.n * 2, d, classes: train.classes };
    const groups = Int32Array.from({ length: doubled.n }, (_, r) => r >> 1);
    const score = Uint8Array.from({ length: doubled.n }, (_, r) => (r % 2 === 0 ? 1 : 0));
    const grouped = chooseL2(doubled, { grid: [0.5], folds: 3, groups, score });
    const single = chooseL2(train, { grid: [0.5], folds: 3 });
    assert.ok(Math.abs(grouped.table[0]!.logLoss - single.table[0]!.logLoss) < 1e-6, `${grouped.table[0]!.logLoss} vs ${single.table[0]!.logLoss}`);
  });

  it('needs two photos per class', () => {
    const tiny: Dataset = { ...train, n: 5, x: train.x.subarray(0, 5 * train.d), y: train.y.subarray(0, 5) };
    assert.throws(() => chooseL2({ ...tiny, y: Int32Array.of(0, 0, 1, 2, 3) }), HeadswapError);
  });
});
