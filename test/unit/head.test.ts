import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
// TensorFlow.js is only the independent reference here; the head runs on onnxruntime.
import '@tensorflow/tfjs-backend-cpu';
import { HeadswapError } from '../../src/errors.js';
import { HeadPasses, type Layer } from '../../src/head/passes.js';
import { createRng, normal, shuffleInPlace } from '../../src/util/random.js';
import { predictHead, trainHead, type Dataset, type HeadOptions } from '../../src/head/train.js';
import type { HeadWeights } from '../../src/head/weights.js';

/**
 * Seeded gaussian clusters: class c is centered on a random point of norm ~`separation`, with
 * unit noise per dim; `perClass[c]` examples of class c, interleaved.
 */
function clusters(perClass: number[], d: number, separation: number, seed: number, centersSeed = seed): Dataset {
  const centersRng = createRng(centersSeed);
  const centers = perClass.map(() => Array.from({ length: d }, () => (normal(centersRng) * separation) / Math.sqrt(d)));
  const rng = createRng(seed + 1000);
  const labels = perClass.flatMap((count, c) => Array.from({ length: count }, () => c));
  shuffleInPlace(labels, rng);
  const n = labels.length;
  const x = new Float32Array(n * d);
  labels.forEach((c, i) => {
    for (let j = 0; j < d; j++) x[i * d + j] = centers[c]![j]! + normal(rng);
  });
  return { x, y: Int32Array.from(labels), n, d, classes: perClass.length };
}

function argmaxRows(probs: Float32Array, classes: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < probs.length / classes; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (probs[i * classes + k]! > probs[i * classes + best]!) best = k;
    out.push(best);
  }
  return out;
}

function accuracy(weights: HeadWeights, data: Dataset): number {
  const predicted = argmaxRows(predictHead(weights, data.x, data.n), data.classes);
  return predicted.filter((p, i) => p === data.y[i]).length / data.n;
}

function recall(weights: HeadWeights, data: Dataset, c: number): number {
  const predicted = argmaxRows(predictHead(weights, data.x, data.n), data.classes);
  const ofClass = predicted.filter((_, i) => data.y[i] === c);
  return ofClass.filter((p) => p === c).length / ofClass.length;
}

/** The exported graph's ops (sub, div, Gemm, Relu, Softmax) run by tfjs. */
function tfForward(weights: HeadWeights, x: Float32Array, n: number): Float32Array {
  const d = weights.mean.length;
  const out = tf.tidy(() => {
    let h: tf.Tensor2D = tf.div(tf.sub(tf.tensor2d(x, [n, d]), tf.tensor2d(weights.mean, [1, d])), tf.tensor2d(weights.std, [1, d]));
    weights.layers.forEach((l, i) => {
      h = tf.add(tf.matMul(h, tf.tensor2d(l.kernel, [l.inputs, l.units])), tf.tensor1d(l.bias));
      if (i < weights.layers.length - 1) h = tf.relu(h);
    });
    return tf.softmax(h);
  });
  const values = out.dataSync() as Float32Array;
  out.dispose();
  return values;
}

/** 2-D XOR: four blobs, opposite corners share a class; no linear head can fit it. */
function xor(n: number, seed: number): Dataset {
  const rng = createRng(seed);
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng() < 0.5 ? -1 : 1;
    const b = rng() < 0.5 ? -1 : 1;
    x[i * 2] = a * 2 + 0.3 * normal(rng);
    x[i * 2 + 1] = b * 2 + 0.3 * normal(rng);
    y[i] = a === b ? 0 : 1;
  }
  return { x, y, n, d: 2, classes: 2 };
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HeadswapError, `expected HeadswapError, got ${String(err)}`);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'error message is one line');
    return true;
  });
}

describe('random', () => {
  it('is deterministic per seed, in [0, 1), and differs across seeds', () => {
    const a = createRng(7);
    const b = createRng(7);
    const c = createRng(8);
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b()));
    assert.notDeepEqual(xs.slice(0, 10), Array.from({ length: 10 }, () => c()));
    assert.ok(xs.every((v) => v >= 0 && v < 1));
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  });

  it('shuffles into a permutation, reproducibly', () => {
    const once = shuffleInPlace(Int32Array.from({ length: 50 }, (_, i) => i), createRng(3));
    const again = shuffleInPlace(Int32Array.from({ length: 50 }, (_, i) => i), createRng(3));
    assert.deepEqual(once, again);
    assert.deepEqual([...once].sort((p, q) => p - q), Array.from({ length: 50 }, (_, i) => i));
    assert.notDeepEqual([...once], Array.from({ length: 50 }, (_, i) => i));
  });

  it('draws standard normals', () => {
    const rng = createRng(11);
    const xs = Array.from({ length: 20000 }, () => normal(rng));
    const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
    const variance = xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length;
    assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.05, `mean ${mean}, variance ${variance}`);
  });
});

describe('trainHead', () => {
  it('learns separable clusters to ~100% and generalizes', async () => {
    const train = clusters([30, 30, 30, 30], 64, 6, 1);
    const test = clusters([50, 50, 50, 50], 64, 6, 2, 1);
    const head = await trainHead(train, undefined);
    assert.ok(accuracy(head.weights, train) >= 0.99, `train accuracy ${accuracy(head.weights, train)}`);
    assert.ok(accuracy(head.weights, test) >= 0.97, `test accuracy ${accuracy(head.weights, test)}`);
    assert.equal(head.weights.layers.length, 1);
    assert.equal(head.weights.layers[0]!.kernel.length, 64 * 4);
    assert.ok(head.history.at(-1)!.loss < head.history[0]!.loss);
  });

  it('without validation data trains the fixed number of epochs and keeps the last', async () => {
    const head = await trainHead(clusters([20, 20], 8, 4, 3), undefined, { epochs: 12 });
    assert.equal(head.history.length, 12);
    assert.equal(head.bestEpoch, 12);
    assert.ok(head.history.every((h) => h.valLoss === undefined));
  });

  it('gives tiny sets at least 150 steps by default', async () => {
    const head = await trainHead(clusters([5, 5], 8, 4, 3), undefined);
    assert.equal(head.options.batchSize, 10);
    assert.equal(head.options.epochs, 150);
  });

  it('trains a hidden layer that fits what a linear head cannot', async () => {
    const train = xor(200, 4);
    const test = xor(200, 5);
    const linear = await trainHead(train, undefined, { epochs: 60 });
    const mlp = await trainHead(train, undefined, { hidden: 16, epochs: 60 });
    assert.ok(accuracy(linear.weights, test) < 0.75, `linear accuracy ${accuracy(linear.weights, test)}`);
    assert.ok(accuracy(mlp.weights, test) >= 0.97, `hidden-layer accuracy ${accuracy(mlp.weights, test)}`);
    assert.deepEqual(
      mlp.weights.layers.map((l) => [l.inputs, l.units]),
      [
        [2, 16],
        [16, 2],
      ],
    );
    assert.equal(mlp.options.l2, 0.03);
  });

  it('is bit-identical for the same seed and differs across seeds', async () => {
    const train = clusters([25, 25, 25], 32, 3, 6);
    const val = clusters([10, 10, 10], 32, 3, 7, 6);
    const options: HeadOptions = { hidden: 8, dropout: 0.2, epochs: 15, seed: 42 };
    const a = await trainHead(train, val, options);
    const b = await trainHead(train, val, options);
    assert.deepEqual(a.weights, b.weights);
    assert.deepEqual(a.history, b.history);
    assert.equal(a.bestEpoch, b.bestEpoch);
    const c = await trainHead(train, val, { ...options, seed: 43 });
    assert.notDeepEqual(a.weights.layers[0]!.kernel, c.weights.layers[0]!.kernel);
    // Without a hidden layer or dropout the seed still changes the batch order.
    const d = await trainHead(train, undefined, { epochs: 5, seed: 1 });
    const e = await trainHead(train, undefined, { epochs: 5, seed: 2 });
    assert.notDeepEqual(d.weights.layers[0]!.kernel, e.weights.layers[0]!.kernel);
  });

  it('caps the batch size at the training-set size', async () => {
    const head = await trainHead(clusters([6, 6], 4, 4, 8), undefined, { batchSize: 1000, epochs: 3 });
    assert.equal(head.options.batchSize, 12);
  });

  it('stops early on validation loss and restores the best epoch', async () => {
    // Few noisy examples in many dims and no penalty: validation loss falls, then rises (overfit).
    const train = clusters([15, 15, 15], 200, 2, 9);
    const val = clusters([40, 40, 40], 200, 2, 10, 9);
    const head = await trainHead(train, val, { l2: 0, learningRate: 0.01, epochs: 200, patience: 5, batchSize: 8 });
    const losses = head.history.map((h) => h.valLoss!);
    const bestLoss = Math.min(...losses);
    assert.ok(head.history.length < 200, 'stopped before the maximum');
    assert.ok(head.bestEpoch > 1, 'validation loss improved first');
    assert.equal(head.history.length, head.bestEpoch + 5);
    assert.equal(losses[head.bestEpoch - 1], bestLoss);
    assert.ok(losses.at(-1)! > bestLoss);
    // The returned weights are the best epoch's: they reproduce its validation loss and accuracy.
    const probs = predictHead(head.weights, val.x, val.n);
    let loss = 0;
    for (let i = 0; i < val.n; i++) loss -= Math.log(probs[i * 3 + val.y[i]!]!);
    assert.ok(Math.abs(loss / val.n - bestLoss) < 1e-4, `restored loss ${loss / val.n} vs best ${bestLoss}`);
    assert.equal(accuracy(head.weights, val), head.history[head.bestEpoch - 1]!.valAccuracy);
  });

  it("class-balanced weighting raises minority-class recall over 'none'", async () => {
    const train = clusters([120, 120, 8], 16, 2.5, 11);
    const test = clusters([200, 200, 200], 16, 2.5, 12, 11);
    const balanced = await trainHead(train, undefined, { classWeights: 'balanced' });
    const plain = await trainHead(train, undefined, { classWeights: 'none' });
    const rb = recall(balanced.weights, test, 2);
    const rp = recall(plain.weights, test, 2);
    assert.ok(rb > rp + 0.1, `minority recall balanced ${rb} vs none ${rp}`);
  });

  it('converges to the minimum of the documented objective', async () => {
    // mean_i(w_i * CE(smoothed target_i, p_i)) + l2 * |W|^2 should be flat at the result.
    const data = clusters([20, 30, 10], 5, 2, 13);
    const options = { l2: 0.05, labelSmoothing: 0.1, epochs: 1000, batchSize: 60, learningRate: 0.01 };
    const head = await trainHead(data, undefined, options);
    const { mean, std, layers } = head.weights;
    const { kernel, bias } = layers[0]!;
    const counts = [20, 30, 10];
    const objective = (k: Float64Array, b: Float64Array): number => {
      let total = 0;
      for (let i = 0; i < data.n; i++) {
        const z = [0, 1, 2].map((u) => {
          let s = b[u]!;
          for (let j = 0; j < 5; j++) s += ((data.x[i * 5 + j]! - mean[j]!) / std[j]!) * k[j * 3 + u]!;
          return s;
        });
        const m = Math.max(...z);
        const logSum = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0));
        const c = data.y[i]!;
        const w = data.n / (3 * counts[c]!);
        for (let u = 0; u < 3; u++) total -= w * ((u === c ? 0.9 : 0) + 0.1 / 3) * (z[u]! - logSum);
      }
      return total / data.n + options.l2 * k.reduce((s, v) => s + v * v, 0);
    };
    const k0 = Float64Array.from(kernel);
    const b0 = Float64Array.from(bias);
    const eps = 1e-4;
    const rng = createRng(5);
    // Directional derivatives along random directions, along the weights themselves (catches a
    // wrong penalty factor) and, for scale, at the zero start.
    const slope = (k: Float64Array, b: Float64Array, dk: Float64Array, db: Float64Array): number => {
      const plus = objective(k.map((v, i) => v + eps * dk[i]!), b.map((v, i) => v + eps * db[i]!));
      const minus = objective(k.map((v, i) => v - eps * dk[i]!), b.map((v, i) => v - eps * db[i]!));
      return (plus - minus) / (2 * eps);
    };
    const directions = [
      ...Array.from({ length: 4 }, () => [k0.map(() => normal(rng)), b0.map(() => normal(rng))] as const),
      [k0, new Float64Array(3)] as const,
    ];
    const startSlope = Math.abs(slope(new Float64Array(15), new Float64Array(3), k0, new Float64Array(3)));
    for (const [dk, db] of directions) {
      const s = Math.abs(slope(k0, b0, dk, db));
      assert.ok(s < 1e-3 * Math.max(1, startSlope), `slope ${s} at the result (start: ${startSlope})`);
    }
  });

  it('predictHead matches the TF forward pass and gives distributions', async () => {
    const train = clusters([20, 20, 20, 20, 20], 24, 3, 14);
    const test = clusters([10, 10, 10, 10, 10], 24, 3, 15, 14);
    for (const hidden of [0, 12]) {
      const head = await trainHead(train, undefined, { hidden, epochs: 20 });
      const ours = predictHead(head.weights, test.x, test.n);
      const theirs = tfForward(head.weights, test.x, test.n);
      assert.equal(ours.length, test.n * 5);
      let diff = 0;
      for (let i = 0; i < ours.length; i++) diff = Math.max(diff, Math.abs(ours[i]! - theirs[i]!));
      assert.ok(diff < 1e-5, `max difference ${diff}`);
      for (let i = 0; i < test.n; i++) {
        const row = ours.subarray(i * 5, (i + 1) * 5);
        assert.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-5);
        assert.ok(row.every((v) => v >= 0 && v <= 1));
      }
    }
  });

  it('standardizes with training statistics and survives constant features', async () => {
    const train = clusters([20, 20], 6, 4, 16);
    for (let i = 0; i < train.n; i++) train.x[i * 6 + 5] = 3; // a dead channel
    const head = await trainHead(train, undefined, { epochs: 10 });
    assert.ok(Math.abs(head.weights.mean[5]! - 3) < 1e-6);
    assert.ok(head.weights.std.every((s) => Number.isFinite(s) && s > 0));
    // A value never seen in training on the dead channel does not blow up the prediction.
    const x = train.x.slice(0, 6);
    x[5] = 3.5;
    assert.ok(predictHead(head.weights, x, 1).every((p) => Number.isFinite(p)));
    const constant: Dataset = { x: new Float32Array(8).fill(1), y: Int32Array.from([0, 1, 0, 1]), n: 4, d: 2, classes: 2 };
    const flat = await trainHead(constant, undefined, { epochs: 2 });
    assert.ok(predictHead(flat.weights, constant.x, 4).every((p) => Math.abs(p - 0.5) < 1e-6));
  });

  it('the gradient pass equals finite differences of the loss, with and without a hidden layer', async () => {
    const rng = createRng(23);
    const rows = 6;
    for (const sizes of [[5, 3], [5, 4, 3]]) {
      const layers: Layer[] = sizes.slice(1).map((units, i) => ({
        kernel: Float32Array.from({ length: sizes[i]! * units }, () => normal(rng)),
        bias: Float32Array.from({ length: units }, () => normal(rng)),
        inputs: sizes[i]!,
        units,
      }));
      const x = Float32Array.from({ length: rows * sizes[0]! }, () => normal(rng));
      // Weighted, smoothed targets: rows sum to a class weight, not to 1.
      const t = Float32Array.from({ length: rows * 3 }, (_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1.4 : 0.05));
      // sum_i(-t_i . log softmax(z_i)) / rows, in double precision.
      const loss = (): number => {
        let total = 0;
        for (let r = 0; r < rows; r++) {
          let h = Array.from(x.subarray(r * sizes[0]!, (r + 1) * sizes[0]!));
          layers.forEach((l, li) => {
            const z = Array.from({ length: l.units }, (_, u) => h.reduce((acc, v, k) => acc + v * l.kernel[k * l.units + u]!, l.bias[u]!));
            h = li < layers.length - 1 ? z.map((v) => Math.max(0, v)) : z;
          });
          const max = Math.max(...h);
          const logSum = max + Math.log(h.reduce((acc, v) => acc + Math.exp(v - max), 0));
          h.forEach((v, c) => (total -= t[r * 3 + c]! * (v - logSum)));
        }
        return total / rows;
      };
      const passes = await HeadPasses.for(sizes);
      const { grads } = await passes.gradients(layers, x, t, rows);
      layers.forEach((l, li) => {
        for (const [param, grad] of [[l.kernel, grads[2 * li]!], [l.bias, grads[2 * li + 1]!]] as const) {
          for (let j = 0; j < param.length; j++) {
            const keep = param[j]!;
            // A small step, so no ReLU kink lies inside it; the float32 weights round the step.
            param[j] = keep + 1e-3;
            const step = param[j]! - keep;
            const up = loss();
            param[j] = keep - step;
            const down = loss();
            param[j] = keep;
            const numeric = (up - down) / (2 * step);
            assert.ok(Math.abs(numeric - grad[j]!) < 2e-3 + 1e-2 * Math.abs(numeric), `sizes ${sizes} layer ${li} param ${j}: ${grad[j]} vs ${numeric}`);
          }
        }
      });
    }
  });

  it('rejects bad input with one-line errors', async () => {
    const good = clusters([5, 5], 4, 3, 19);
    await rejectsWith(trainHead({ ...good, n: 0, x: new Float32Array(0), y: new Int32Array(0) }, undefined), /training set is empty/);
    await rejectsWith(trainHead({ ...good, classes: 1 }, undefined), /1 classes; a classifier needs at least 2/);
    const outOfRange = { ...good, y: good.y.map((c, i) => (i === 3 ? 2 : c)) };
    await rejectsWith(trainHead(outOfRange, undefined), /example 3 has label 2; labels must be 0\.\.1/);
    const negative = { ...good, y: good.y.map((c, i) => (i === 0 ? -1 : c)) };
    await rejectsWith(trainHead(negative, undefined), /label -1/);
    const nan = { ...good, x: good.x.map((v, i) => (i === 6 ? NaN : v)) };
    await rejectsWith(trainHead(nan, undefined), /example 1 has a non-finite feature \(NaN\) at dim 2/);
    await rejectsWith(trainHead({ ...good, x: good.x.subarray(1) }, undefined), /feature values; expected n \* d/);
    await rejectsWith(trainHead({ ...good, y: good.y.subarray(1) }, undefined), /9 labels for 10 examples/);
    const missingClass = { ...good, classes: 3 };
    await rejectsWith(trainHead(missingClass, undefined), /class 2 has no training examples/);
    await rejectsWith(trainHead(good, { ...good, d: 2, x: good.x.subarray(0, 20) }), /validation set has 2 features/);
    await rejectsWith(trainHead(good, { ...good, n: 0, x: new Float32Array(0), y: new Int32Array(0) }), /validation set is empty/);
    await rejectsWith(trainHead(good, undefined, { dropout: 1 }), /dropout = 1 is invalid/);
    await rejectsWith(trainHead(good, undefined, { epochs: 0 }), /epochs = 0 is invalid/);
    await rejectsWith(trainHead(good, undefined, { hidden: 2.5 }), /hidden = 2\.5 is invalid/);
    await rejectsWith(trainHead(good, undefined, { learningRate: -1 }), /learningRate = -1 is invalid/);
    assert.throws(() => predictHead({ mean: new Float32Array(4), std: new Float32Array(4), layers: [] }, new Float32Array(4), 1), HeadswapError);
    const head = await trainHead(good, undefined, { epochs: 1 });
    assert.throws(() => predictHead(head.weights, new Float32Array(5), 1), /5 feature values for 1 examples; the head expects 4/);
  });

  it('trains 300 x 1280 features, 7 classes, well under a second', async () => {
    const train = clusters([43, 43, 43, 43, 43, 43, 42], 1280, 4, 20);
    await trainHead(clusters([5, 5], 1280, 4, 21), undefined, { epochs: 2 }); // JIT warm-up, as in a long-running CLI
    const head = await trainHead(train, undefined);
    console.log(`# trainHead 300 x 1280 x 7: ${head.millis.toFixed(0)} ms, ${head.history.length} epochs of ${Math.ceil(300 / 32)} steps`);
    assert.ok(head.millis < 2000, `${head.millis} ms`);
    assert.equal(accuracy(head.weights, train), 1);
  });
});
