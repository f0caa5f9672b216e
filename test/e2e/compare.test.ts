import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { Command } from 'commander';
import { formatComparison, registerCompare } from '../../src/cli/compare.js';
import { compareRuns, compare, verdict } from '../../src/compare/compare.js';
import { trainFromScratch, type LabeledPath } from '../../src/compare/scratch.js';
import type { ApproachResult, CompareResult } from '../../src/compare/types.js';
import { useWasmBackend } from '../../src/compare/wasm-gradients.js';
import { scanDataset } from '../../src/dataset/scan.js';
import { HeadswapError } from '../../src/errors.js';
import { evaluate } from '../../src/evaluate/metrics.js';
import { createRng } from '../../src/util/random.js';
import { copySubset } from '../helpers/dataset.js';
import { openRunStore } from '../../src/runs/store.js';
import { renderReport } from '../../src/report/html.js';
import { reportFromTrain } from '../../src/report/input.js';
import { escapeHtml } from '../../src/report/markup.js';

const CLASSES = ['dress', 'hat', 'shoes'];
let dir: string;
let train: LabeledPath[];
let test: LabeledPath[];

before(async () => {
  // Importing the wasm backend makes it the default, and it cannot start synchronously.
  await tf.setBackend('cpu');
  dir = await mkdtemp(join(tmpdir(), 'headswap-compare-'));
  await copySubset('train', CLASSES, 4, join(dir, 'train'));
  await copySubset('test', CLASSES, 3, join(dir, 'test'));
  const labeled = async (folder: string): Promise<LabeledPath[]> => (await scanDataset(join(dir, folder))).files.map((f) => ({ path: f.path, label: f.label }));
  train = await labeled('train');
  test = await labeled('test');
});
after(() => rm(dir, { recursive: true, force: true }));

/** Uniform values in [-1, 1) from the seeded generator, so both backends get identical inputs. */
function values(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => 2 * rng() - 1);
}

interface Case {
  readonly x: [number, number, number, number];
  readonly w: [number, number, number, number];
  readonly stride: number;
  readonly pad: 'same' | 'valid';
}

/** Gradients of sum(conv2d(x, w) * r) with respect to x and w, on the active backend. */
function convGrads(c: Case): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(tf.util.sizeFromShape(c.x), 1), c.x);
    const w = tf.tensor4d(values(tf.util.sizeFromShape(c.w), 2), c.w);
    const f = (a: tf.Tensor, b: tf.Tensor): tf.Scalar => {
      const y = tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
      return tf.sum(tf.mul(y, tf.tensor(values(y.size, 3), y.shape)));
    };
    return tf.grads(f)([x, w]).map((g) => g.dataSync() as Float32Array);
  });
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < actual.length; i++) {
    // Sums of up to a few hundred products of values in [-1, 1]: float32 rounding stays far below 1e-5.
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= 1e-5 * Math.max(1, Math.abs(expected[i]!)), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

function approach(name: 'transfer' | 'scratch', top1: number, trainSeconds: number): ApproachResult {
  const count = 100;
  const correct = Math.round(top1 * count);
  const evaluation = evaluate(
    Array.from({ length: count }, (_, i) => ({ file: `${i}.jpg`, label: 0, probs: Float32Array.from(i < correct ? [0.9, 0.1] : [0.1, 0.9]) })),
    ['a', 'b'],
  );
  return { name, description: name, evaluation, trainSeconds, trainableParams: 1, imagesUsed: 1 };
}

describe('wasm training kernels', () => {
  it('give the cpu backend\'s convolution gradients (fast stride-1 path and the cpu fallback)', async () => {
    const cases: Case[] = [
      { x: [2, 9, 9, 3], w: [3, 3, 3, 4], stride: 1, pad: 'same' },
      { x: [2, 8, 7, 5], w: [3, 3, 5, 2], stride: 1, pad: 'valid' },
      { x: [1, 6, 6, 2], w: [2, 2, 2, 3], stride: 1, pad: 'same' },
      { x: [2, 9, 9, 3], w: [3, 3, 3, 4], stride: 2, pad: 'same' },
    ];
    await tf.setBackend('cpu');
    const expected = cases.map(convGrads);
    const restore = await useWasmBackend();
    try {
      assert.equal(tf.getBackend(), 'wasm');
      cases.forEach((c, i) => {
        const [dx, dw] = convGrads(c);
        assertClose(dx!, expected[i]![0]!, `dx ${JSON.stringify(c)}`);
        assertClose(dw!, expected[i]![1]!, `dw ${JSON.stringify(c)}`);
      });
    } finally {
      await restore();
    }
    assert.equal(tf.getBackend(), 'cpu', 'the previous backend is restored');
  });
});

describe('trainFromScratch', () => {
  it('trains a real CNN for a budget and scores every test photo', async () => {
    const tensors = tf.memory().numTensors;
    const r = await trainFromScratch({ train, test, classes: CLASSES, budgetSeconds: 2, seed: 1 });
    assert.equal(tf.memory().numTensors, tensors, 'no tensor is left behind');
    assert.equal(r.name, 'scratch');
    assert.equal(r.inputSize, 64);
    assert.ok(r.epochs >= 1);
    assert.ok(r.trainableParams > 10_000, `${r.trainableParams} parameters`);
    assert.equal(r.imagesUsed, train.length);
    assert.equal(r.evaluation.count, test.length);
    assert.equal(r.evaluation.perClass.length, CLASSES.length);
    assert.equal(r.budgetSeconds, 2);
    assert.ok(r.trainSeconds >= 2, `the budget is used up: ${r.trainSeconds} s`);
    assert.match(r.library, /^TensorFlow\.js \d+\.\d+\.\d+ \(wasm backend/);
  });

  it('is reproducible for a seed when it stops on maxEpochs', async () => {
    const run = (seed: number) => trainFromScratch({ train, test, classes: CLASSES, budgetSeconds: 600, maxEpochs: 2, seed });
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    assert.equal(a.epochs, 2);
    assert.deepEqual(b.evaluation, a.evaluation);
    assert.notEqual(c.evaluation.logLoss, a.evaluation.logLoss, 'another seed trains another network');
  });

  it('refuses bad options with one-line errors', async () => {
    await assert.rejects(trainFromScratch({ train, test, classes: CLASSES, budgetSeconds: 1, size: 32 }), (e: unknown) => e instanceof HeadswapError && /64 to 96/.test(e.message));
    await assert.rejects(trainFromScratch({ train, test, classes: CLASSES, budgetSeconds: 0 }), HeadswapError);
    await assert.rejects(trainFromScratch({ train, test: [], classes: CLASSES, budgetSeconds: 1 }), HeadswapError);
    await assert.rejects(trainFromScratch({ train: [{ path: train[0]!.path, label: 3 }], test, classes: CLASSES, budgetSeconds: 1 }), HeadswapError);
  });
});

describe('compare', () => {
  it('scores both approaches on the same photos of train()\'s test split', async () => {
    const r = await compare({ data: join(dir, 'train'), budgetSeconds: 1, cacheDir: join(dir, 'cache') });
    assert.equal(r.transfer.name, 'transfer');
    assert.equal(r.scratch.name, 'scratch');
    assert.equal(r.scratch.evaluation.count, r.transfer.evaluation.count);
    // Each class of 4 photos gives at least one to each split.
    assert.ok(r.transfer.evaluation.count >= CLASSES.length && r.transfer.evaluation.count <= 6);
    assert.equal(r.scratch.imagesUsed, r.transfer.imagesUsed);
    assert.equal(r.scratch.imagesUsed + r.transfer.evaluation.count, train.length);
    // The default: a linear head on each bundled network's 1280 pooled features.
    assert.equal(r.transfer.trainableParams, 2 * (1280 + 1) * CLASSES.length);
    assert.match(r.transfer.description, /mobilenet_v2 .* \+ .*mobilenet_edgetpu .*averaged/);
    assert.match(r.transfer.pretraining ?? '', /ImageNet-1k/);
    assert.ok(r.scratch.budgetSeconds >= r.transfer.trainSeconds, 'scratch gets at least the transfer run\'s time');
    assert.ok(r.scratch.trainSeconds >= r.transfer.trainSeconds, `and uses it: ${r.scratch.trainSeconds} s vs ${r.transfer.trainSeconds} s`);
    assert.match(r.verdict, /points more accurate|Both reach/);
  });

  it('records the comparison in the run history and feeds the report', async () => {
    const cache = join(dir, 'cache');
    const { result, transferRun, runId } = await compareRuns({ data: join(dir, 'train'), budgetSeconds: 1, cacheDir: cache });
    const store = openRunStore(cache);
    const run = store.getRun(runId!);
    store.close();
    assert.equal(run?.kind, 'compare');
    assert.equal(run?.metrics.top1, result.transfer.evaluation.top1);
    assert.equal(run?.metrics.scratchTop1, result.scratch.evaluation.top1);
    const { html } = await renderReport(reportFromTrain(transferRun, 'compare', result));
    assert.match(html, /Transfer learning vs training from scratch/);
    assert.ok(html.includes(escapeHtml(result.verdict)));
  });

  it('runs as `headswap compare --test-dir --json` and prints a table without --json', async () => {
    const program = new Command().exitOverride();
    registerCompare(program);
    const out: string[] = [];
    const write = process.stdout.write;
    // Strings only: the test runner itself reports to its parent through stdout, in binary.
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => (typeof chunk === 'string' ? out.push(chunk) > 0 : write.call(process.stdout, chunk, ...rest))) as typeof process.stdout.write;
    try {
      await program.parseAsync(['compare', join(dir, 'train'), '--test-dir', join(dir, 'test'), '--budget', '1', '--seed', '3', '--cache-dir', join(dir, 'cache'), '--json'], { from: 'user' });
    } finally {
      process.stdout.write = write;
    }
    const r = JSON.parse(out.join('')) as CompareResult;
    assert.equal(r.transfer.evaluation.count, test.length);
    assert.equal(r.scratch.evaluation.count, test.length);
    assert.equal(r.scratch.imagesUsed, train.length);
    assert.equal(typeof r.verdict, 'string');
    const text = formatComparison(r);
    for (const row of ['top-1 (9 test photos)', '95% CI of top-1', 'training time', 'trainable parameters', 'training photos', 'pretraining reused', r.verdict]) {
      assert.ok(text.includes(row), `${row} in\n${text}`);
    }
    assert.ok(!text.includes('top-5'), 'no top-5 row for 3 classes');
  });

  it('states the gap in points and the time ratio', () => {
    assert.equal(
      verdict(approach('transfer', 0.8, 4), approach('scratch', 0.35, 60)),
      'Transfer learning is 45.0 points more accurate (80.0% vs 35.0% top-1 on the same 100 photos) and took 15x less training time (4.0 s vs 60.0 s).',
    );
    assert.match(verdict(approach('transfer', 0.5, 4), approach('scratch', 0.6, 8)), /^Training from scratch is 10\.0 points more accurate .*, but transfer learning took 2\.0x less training time/);
    assert.match(verdict(approach('transfer', 0.5, 4), approach('scratch', 0.5, 4)), /^Both reach 50\.0% top-1/);
  });
});
