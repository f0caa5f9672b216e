/**
 * Parity of imported real networks with TensorFlow.js itself (wasm backend, the fast one here):
 * darknet-tiny (layers), and the three networks the nsfwjs package ships — mobilenet_v2 and
 * inception_v3 (layers), mobilenet_v2_mid (graph), which nsfwjs fine-tuned for content
 * moderation (their features transfer poorly to everyday photos: 45-52% top-1 on clothing7 vs
 * 78.7% for the default backbone). Final output and one feature layer each, on the fixture photos
 * (inception_v3 on 2 of them: ~1-3.5 s per image in TF.js here). Also a Teachable Machine export.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import * as tfl from '@tensorflow/tfjs-layers';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import ort from 'onnxruntime-node';

import { Backbone } from '../../src/backbone/backbone.js';
import { loadRgb } from '../../src/image/preprocess.js';
import type { Preprocessing, RgbImage } from '../../src/image/types.js';
import { openPredictor, streamPredictions } from '../../src/predict/files.js';
import { NSFWJS_LABELS, convertTfjs, importTfjs, nsfwjsModelDir, readTfjsFolder, type TfjsArtifacts } from '../../src/import/index.js';
import { loadTeachableMachine, teachablePreprocessing } from '../../src/predict/teachable.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { packagePath } from '../../src/util/paths.js';
import { tfjsHandler } from '../helpers/tfjs.js';

const DARKNET = packagePath('test', 'fixtures', 'models', 'darknet-tiny');
const PHOTO_DIR = packagePath('test', 'fixtures', 'photos');
const TOLERANCE = 1e-3;

let dir: string;
let photos: string[];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-import-models-'));
  photos = (await readdir(PHOTO_DIR)).filter((f) => f.endsWith('.jpg')).sort().map((f) => join(PHOTO_DIR, f));
  assert.equal(photos.length, 4);
  await tf.setBackend('wasm');
});
after(() => rm(dir, { recursive: true, force: true }));

/** The photos as the [0, 1] float batch nsfwjs and darknet-tiny take. */
async function batch(size: readonly [number, number], files: readonly string[], pre: Partial<Preprocessing> = {}): Promise<{ x: Float32Array; images: RgbImage[] }> {
  const p: Preprocessing = { size, resize: 'squash', cropRatio: 0.875, scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC', ...pre };
  const images = await Promise.all(files.map((f) => loadRgb(f, p)));
  const x = new Float32Array(images.length * size[0] * size[1] * 3);
  images.forEach((im, i) => im.data.forEach((v, k) => (x[i * im.data.length + k] = v / 255)));
  return { x, images };
}


/** TF.js outputs for `names` (layer names of a layers model, node names of a graph model). */
async function reference(a: TfjsArtifacts, names: readonly string[], x: tf.Tensor4D): Promise<tf.Tensor[]> {
  if (a.modelJson.format === 'graph-model') {
    const g = await loadGraphModel(tfjsHandler(a));
    return g.execute(x, [...names]) as tf.Tensor[];
  }
  const m = await tfl.loadLayersModel(tfjsHandler(a));
  const outputs = names.map((n) => (m.outputNames.includes(n) ? m.outputs[m.outputNames.indexOf(n)]! : (m.getLayer(n).output as tfl.SymbolicTensor)));
  const r = tfl.model({ inputs: m.inputs, outputs }).predict(x);
  return Array.isArray(r) ? r : [r];
}

function maxDiff(a: Float32Array, b: tf.Tensor): number {
  const y = b.dataSync();
  assert.equal(a.length, y.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - y[i]!));
  return d;
}

/** Converts with one feature layer exposed, runs both, returns max |diff| per output. */
async function parity(a: TfjsArtifacts, feature: string, files: readonly string[]): Promise<Record<string, number>> {
  const c = convertTfjs(a, { extraOutputs: [feature] });
  const [h, w] = c.inputSize;
  const { x } = await batch([h, w], files);
  const session = await ort.InferenceSession.create(encodeModel(c.model));
  const got = await session.run({ [c.input]: new ort.Tensor('float32', x, [files.length, h, w, 3]) });
  await session.release();
  const want = await reference(a, c.outputs, tf.tensor4d(x, [files.length, h, w, 3]));
  const diffs: Record<string, number> = {};
  c.outputs.forEach((name, i) => {
    assert.deepEqual([...got[name]!.dims], want[i]!.shape, name);
    diffs[name] = maxDiff(got[name]!.data as Float32Array, want[i]!);
  });
  tf.dispose(want);
  return diffs;
}

/** Asserts the tolerance and reports the numbers as test diagnostics. */
function assertClose(t: TestContext, diffs: Record<string, number>): void {
  t.diagnostic(`max |diff|: ${Object.entries(diffs).map(([k, v]) => `${k.split('/').slice(-2).join('/')} ${v.toExponential(2)}`).join(', ')}`);
  assert.equal(Object.keys(diffs).length, 2, 'final output and a feature layer');
  for (const [name, d] of Object.entries(diffs)) assert.ok(d <= TOLERANCE, `${name}: max |diff| ${d}`);
}

const MID = 'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict';

describe('imported networks equal TF.js', () => {
  it('darknet-tiny (layers-model): logits and leaky_re_lu_14 on 4 photos', async (t) => {
    assertClose(t, await parity(await readTfjsFolder(DARKNET), 'leaky_re_lu_14', photos));
  });

  it('nsfwjs mobilenet_v2 (layers-model, fine-tuned for content moderation): probabilities and out_relu on 4 photos', async (t) => {
    assertClose(t, await parity(await readTfjsFolder(nsfwjsModelDir('mobilenet_v2')), 'out_relu', photos));
  });

  it('nsfwjs mobilenet_v2_mid (graph-model, fine-tuned for content moderation): probabilities and the 1792-d feature vector on 4 photos', async (t) => {
    assertClose(t, await parity(await readTfjsFolder(nsfwjsModelDir('mobilenet_v2_mid')), `${MID}/feature_vector/SpatialSqueeze`, photos));
  });

  it('nsfwjs inception_v3 (layers-model, fine-tuned for content moderation): probabilities and mixed10 on 2 photos', async (t) => {
    assertClose(t, await parity(await readTfjsFolder(nsfwjsModelDir('inception_v3')), 'mixed10', photos.slice(0, 2)));
  });

  it('an nsfwjs model folder imports through importTfjs, with its five labels', async () => {
    const r = await importTfjs(nsfwjsModelDir('mobilenet_v2_mid'), { cacheDir: join(dir, 'cache') });
    assert.equal(r.format, 'graph-model');
    assert.deepEqual(r.labels, [...NSFWJS_LABELS]);
    assert.deepEqual(r.inputSize, [224, 224]);
    assert.deepEqual(r.outputs, ['Identity']);
  });

  it('the imported ONNX works as a headswap backbone, cut at a named layer', async () => {
    const r = await importTfjs(DARKNET, { cacheDir: join(dir, 'cache') });
    const backbone = await Backbone.load(r.onnxPath, {
      // 4-D tensors inside an imported graph are NCHW, named after their TF.js layer.
      feature: { tensor: 'leaky_re_lu_14', pooling: 'avg-nchw' },
      preprocessing: { size: r.inputSize, resize: 'squash', scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
    });
    const { x, images } = await batch(r.inputSize, photos.slice(0, 2));
    const { data, dims } = await backbone.features(images);
    await backbone.release();
    assert.equal(dims, 512);
    const [want] = await reference(await readTfjsFolder(DARKNET), ['leaky_re_lu_14'], tf.tensor4d(x, [2, 224, 224, 3]));
    assert.ok(maxDiff(data, tf.mean(want!, [1, 2])) <= TOLERANCE);
  });
});

describe('Teachable Machine export', () => {
  const labels = ['hat', 'shoe', 'dress'];
  let tm: tfl.LayersModel;
  let tmDir: string;

  before(async () => {
    // The layout Teachable Machine exports: Sequential[Sequential[truncated base network, pooling], Sequential[Dense, Dense softmax]].
    const base = await tfl.loadLayersModel(tfjsHandler(await readTfjsFolder(DARKNET)));
    const trunk = tfl.model({ inputs: base.inputs, outputs: base.getLayer('leaky_re_lu_15').output as tfl.SymbolicTensor, name: 'model1' });
    const features = tfl.sequential({ layers: [trunk, tfl.layers.globalAveragePooling2d({})] });
    const head = tfl.sequential({
      layers: [
        tfl.layers.dense({ inputShape: [trunk.outputs[0]!.shape[3]!], units: 100, activation: 'relu', kernelInitializer: tfl.initializers.varianceScaling({ seed: 1 }) }),
        tfl.layers.dense({ units: labels.length, activation: 'softmax', kernelInitializer: tfl.initializers.varianceScaling({ seed: 2 }) }),
      ],
    });
    tm = tfl.sequential({ layers: [features, head] });
    tmDir = join(dir, 'tm-model');
    await mkdir(tmDir);
    await tm.save(tf.io.withSaveHandler(async (art) => {
      await writeFile(join(tmDir, 'weights.bin'), new Uint8Array(art.weightData as ArrayBuffer));
      await writeFile(join(tmDir, 'model.json'), JSON.stringify({ modelTopology: art.modelTopology, format: 'layers-model', generatedBy: 'TensorFlow.js tfjs-layers v4.22.0', convertedBy: null, weightsManifest: [{ paths: ['./weights.bin'], weights: art.weightSpecs }] }));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    await writeFile(join(tmDir, 'metadata.json'), JSON.stringify({ tfjsVersion: '4.22.0', tmVersion: '2.4.10', packageVersion: '0.8.5', packageName: '@teachablemachine/image', timeStamp: '2024-01-01T00:00:00.000Z', userMetadata: {}, modelName: 'tm-my-image-model', labels, imageSize: 224 }));
  });

  it('loads model.json + weights.bin + metadata.json and predicts like TF.js', async () => {
    const model = await loadTeachableMachine(tmDir, { cacheDir: join(dir, 'cache') });
    assert.deepEqual(model.labels, labels);
    assert.deepEqual(model.preprocessing, teachablePreprocessing([224, 224]));
    const images = await Promise.all(photos.map((p) => model.loadImage(p)));
    const predictions = await model.predict(images);
    await model.release();
    const x = new Float32Array(images.length * 224 * 224 * 3);
    images.forEach((im, i) => im.data.forEach((v, k) => (x[i * im.data.length + k] = v / 127 - 1)));
    const want = (tm.predict(tf.tensor4d(x, [images.length, 224, 224, 3])) as tf.Tensor).arraySync() as number[][];
    predictions.forEach((p, i) => {
      assert.equal(p.top.length, 3);
      assert.equal(p.top[0]!.label, labels[want[i]!.indexOf(Math.max(...want[i]!))]);
      want[i]!.forEach((v, k) => assert.ok(Math.abs(p.probabilities[k]! - v) <= 1e-4, `${photos[i]} ${labels[k]}`));
    });
  });

  it('headswap predict runs the export folder directly, with the same probabilities', async () => {
    const predictor = await openPredictor(tmDir, { cacheDir: join(dir, 'cache') });
    assert.equal(predictor.kind, 'teachable-machine');
    const rows = [];
    for await (const p of streamPredictions(predictor.model, photos, { top: 2 })) rows.push(p);
    await predictor.release();
    const direct = await loadTeachableMachine(tmDir, { cacheDir: join(dir, 'cache') });
    const expected = await direct.predict(await Promise.all(photos.map((p) => direct.loadImage(p))));
    await direct.release();
    assert.equal(rows.length, photos.length);
    rows.forEach((r, i) => {
      assert.equal(r.top.length, 2);
      assert.deepEqual([...r.probabilities], [...expected[i]!.probabilities]);
    });
  });

  it('refuses metadata whose labels do not fit the model', async () => {
    await writeFile(join(tmDir, 'metadata.json'), JSON.stringify({ labels: ['a', 'b'] }));
    await assert.rejects(loadTeachableMachine(tmDir, { cacheDir: join(dir, 'cache') }), /metadata\.json: 2 labels, but the model outputs 3 classes/);
  });
});
