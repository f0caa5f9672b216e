/**
 * Speed of TF.js models run by TF.js (wasm backend, SIMD, one thread: what Node gets) vs the
 * same models imported to ONNX and run by onnxruntime-node with headswap's session options (and
 * with one thread, for the engine's advantage alone).
 * Prints JSON per network and batch size: ms/image, best and median of rounds that alternate the
 * runners (so a busy machine slows all alike), and the speed-ups from the best times.
 * The nsfwjs networks were fine-tuned by nsfwjs for content moderation (their features transfer
 * poorly to everyday photos: 45-52% top-1 on clothing7 vs 78.7% for the default backbone); they
 * are here as real TF.js models of both formats and three sizes.
 *   node --import tsx bench/import.ts
 */
import os from 'node:os';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import * as tfl from '@tensorflow/tfjs-layers';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import ort from 'onnxruntime-node';
import { sessionOptions } from '../src/runtime/session.js';
import { loadRgb } from '../src/image/preprocess.js';
import { importTfjs, nsfwjsModelDir, readTfjsFolder } from '../src/import/index.js';
import { packagePath } from '../src/util/paths.js';
import { tfjsHandler as handler } from '../test/helpers/tfjs.js';

const NETWORKS = [
  { id: 'darknet-tiny', dir: packagePath('test', 'fixtures', 'models', 'darknet-tiny') },
  { id: 'nsfwjs mobilenet_v2', dir: nsfwjsModelDir('mobilenet_v2') },
  { id: 'nsfwjs mobilenet_v2_mid', dir: nsfwjsModelDir('mobilenet_v2_mid') },
  { id: 'nsfwjs inception_v3', dir: nsfwjsModelDir('inception_v3') },
];
const BATCHES = [1, 4];
const ROUNDS = 5;

const photoDir = packagePath('data', 'clothing7', 'test', 'shoes');
const photos = readdirSync(photoDir).slice(0, Math.max(...BATCHES)).map((f) => join(photoDir, f));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** ms/image of each runner: one warm-up call each, then ROUNDS rounds running them in turn. */
async function race(batch: number, runners: Record<string, () => Promise<void>>): Promise<Record<string, { best: number; median: number }>> {
  const times: Record<string, number[]> = {};
  for (const [name, run] of Object.entries(runners)) {
    await run();
    times[name] = [];
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, run] of Object.entries(runners)) {
      const t = performance.now();
      await run();
      times[name]!.push((performance.now() - t) / batch);
    }
  }
  return Object.fromEntries(Object.entries(times).map(([k, v]) => [k, { best: +Math.min(...v).toFixed(1), median: +median(v).toFixed(1) }]));
}


await tf.setBackend('wasm');
const cacheDir = await mkdtemp(join(os.tmpdir(), 'headswap-bench-import-'));
const results = [];
for (const net of NETWORKS) {
  const artifacts = await readTfjsFolder(net.dir);
  const t0 = performance.now();
  const imported = await importTfjs(net.dir, { cacheDir });
  const importSeconds = (performance.now() - t0) / 1000;
  const [h, w] = imported.inputSize;
  const pre = { size: [h, w] as const, resize: 'squash' as const, cropRatio: 1, scale: 1 / 255, mean: [0, 0, 0] as const, std: [1, 1, 1] as const, layout: 'NHWC' as const };
  const images = await Promise.all(photos.map((p) => loadRgb(p, pre)));
  const session = await ort.InferenceSession.create(imported.onnxPath, sessionOptions());
  // One thread, like TF.js's wasm backend in Node: the engine's own advantage, whatever the core count.
  const single = await ort.InferenceSession.create(imported.onnxPath, sessionOptions(1));
  const graph = artifacts.modelJson.format === 'graph-model' ? await loadGraphModel(handler(artifacts)) : undefined;
  const layers = graph ? undefined : await tfl.loadLayersModel(handler(artifacts));
  const byBatch = [];
  for (const batch of BATCHES) {
    const x = Float32Array.from(images.slice(0, batch).flatMap((im) => [...im.data]), (v) => v / 255);
    const shape: [number, number, number, number] = [batch, h, w, 3];
    const input = tf.tensor4d(x, shape);
    const t = await race(batch, {
      onnx: async () => {
        await session.run({ [imported.input]: new ort.Tensor('float32', x, shape) });
      },
      onnx1: async () => {
        await single.run({ [imported.input]: new ort.Tensor('float32', x, shape) });
      },
      tfjs: async () => {
        const out = (graph ? graph.execute(input) : layers!.predict(input)) as tf.Tensor;
        await out.data();
        out.dispose();
      },
    });
    input.dispose();
    byBatch.push({
      batch,
      tfjsWasmMsPerImage: t.tfjs,
      onnxMsPerImage: t.onnx,
      speedup: +(t.tfjs!.best / t.onnx!.best).toFixed(1),
      onnx1ThreadMsPerImage: t.onnx1,
      speedup1Thread: +(t.tfjs!.best / t.onnx1!.best).toFixed(1),
    });
  }
  await session.release();
  await single.release();
  graph?.dispose();
  layers?.dispose();
  results.push({ network: net.id, format: imported.format, inputSize: imported.inputSize, importSeconds: +importSeconds.toFixed(2), byBatch });
}
await rm(cacheDir, { recursive: true, force: true });
// The load average says how busy the machine was: onnxruntime's threads suffer most from a busy one.
console.log(JSON.stringify({ machine: { cores: os.availableParallelism(), node: process.version, loadAverage: os.loadavg().map((l) => +l.toFixed(1)) }, results }, null, 2));
