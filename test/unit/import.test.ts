import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
import { loadGraphModel } from '@tensorflow/tfjs-converter';
import ort from 'onnxruntime-node';

import { Backbone } from '../../src/backbone/backbone.js';
import type { ZooEntry } from '../../src/backbone/types.js';
import { getEntry } from '../../src/backbone/zoo.js';
import { runImport } from '../helpers/cli-import.js';
import { HeadswapError } from '../../src/errors.js';
import { loadRgb } from '../../src/image/preprocess.js';
import { samePads } from '../../src/onnx/builder.js';
import { convertTfjs, importTfjs, readTfjsFolder } from '../../src/import/index.js';
import { decodeWeights } from '../../src/import/tfjs/manifest.js';
import { unwrapBundle } from '../../src/import/tfjs/nsfwjs.js';
import { encodeModel, readModel, type ModelProto } from '../../src/onnx/proto.js';
import { packagePath } from '../../src/util/paths.js';
import { startServer, type Handler, type TestServer } from '../helpers/http-server.js';
import { tfjsHandler } from '../helpers/tfjs.js';

const DARKNET = packagePath('test', 'fixtures', 'models', 'darknet-tiny');

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-import-'));
  await tf.setBackend('cpu');
});
after(() => rm(dir, { recursive: true, force: true }));


async function runOnnx(model: ModelProto, input: string, x: tf.Tensor): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(encodeModel(model));
  try {
    return await session.run({ [input]: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape) });
  } finally {
    await session.release();
  }
}

function maxDiff(a: ort.Tensor, b: tf.Tensor): number {
  assert.deepEqual([...a.dims], b.shape, 'same shape');
  const x = a.data as Float32Array;
  const y = b.dataSync();
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i]! - y[i]!));
  return d;
}

/** IEEE half from float, round to nearest even (normal range is all the tests need). */
function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const bits = new Uint32Array(f.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  const mant = bits & 0x7fffff;
  if (exp <= 0) return sign;
  let h = sign | (exp << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return h;
}

type Quantize = 'uint8' | 'uint16' | 'float16';

/** Writes a TF.js LayersModel as model.json + weights.bin, optionally quantized like the TF.js converter. */
async function saveLayers(model: tfl.LayersModel, out: string, quantize?: Quantize): Promise<void> {
  let art: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    art = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const raw = new Uint8Array(art!.weightData as ArrayBuffer);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const spec of art!.weightSpecs!) {
    const n = spec.shape.reduce((p, q) => p * q, 1);
    const values = new Float32Array(raw.slice(offset, offset + n * 4).buffer);
    offset += n * 4;
    if (!quantize) {
      specs.push(spec);
      parts.push(new Uint8Array(values.buffer));
    } else if (quantize === 'float16') {
      specs.push({ ...spec, quantization: { dtype: 'float16' } });
      parts.push(new Uint8Array(Uint16Array.from(values, toHalf).buffer));
    } else {
      const levels = quantize === 'uint8' ? 255 : 65535;
      const min = Math.min(...values);
      const scale = (Math.max(...values) - min) / levels || 1;
      const q = Array.from(values, (v) => Math.round((v - min) / scale));
      specs.push({ ...spec, quantization: { dtype: quantize, min, scale } });
      parts.push(quantize === 'uint8' ? Uint8Array.from(q) : new Uint8Array(Uint16Array.from(q).buffer));
    }
  }
  await mkdir(out, { recursive: true });
  await writeFile(join(out, 'weights.bin'), Buffer.concat(parts));
  await writeFile(join(out, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: art!.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: specs }] }));
}

/** Gives every weight seeded random values (variances positive) so that no layer is an identity by accident. */
function randomize(model: tfl.LayersModel, seed: number): void {
  model.setWeights(model.weights.map((w, i) => {
    const positive = /variance|gamma/.test(w.originalName);
    return tf.randomUniform(w.shape as number[], positive ? 0.5 : -0.5, positive ? 1.5 : 0.5, 'float32', seed + i);
  }));
}

/** Many layer kinds, odd input size (asymmetric SAME padding), branches and merges, two outputs. */
function syntheticLayersModel(): tfl.LayersModel {
  const L = tfl.layers;
  const input = tfl.input({ shape: [15, 17, 3], name: 'image' });
  const sym = (l: tfl.layers.Layer, x: tfl.SymbolicTensor | tfl.SymbolicTensor[]): tfl.SymbolicTensor => l.apply(x) as tfl.SymbolicTensor;
  let x = sym(L.rescaling({ scale: 2, offset: -1 }), input);
  x = sym(L.zeroPadding2d({ padding: [[1, 0], [0, 2]] }), x);
  x = sym(L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6', name: 'conv_a' }), x);
  x = sym(L.batchNormalization({ name: 'bn_a' }), x);
  x = sym(L.leakyReLU({ alpha: 0.2 }), x);
  const a = sym(L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', strides: 2, name: 'dw' }), x);
  const b = sym(L.separableConv2d({ filters: 16, kernelSize: 3, padding: 'same', strides: 2, activation: 'elu', name: 'sep' }), x);
  const c = sym(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), sym(L.conv2d({ filters: 16, kernelSize: [1, 3], padding: 'same', dilationRate: 1 }), x));
  x = sym(L.concatenate({ axis: -1, name: 'concat' }), [sym(L.add(), [a, b]), sym(L.multiply(), [b, c])]);
  x = sym(L.prelu({ sharedAxes: [1, 2] }), x);
  x = sym(L.averagePooling2d({ poolSize: 2, strides: 1, padding: 'same' }), x);
  x = sym(L.upSampling2d({ size: [2, 2] }), x);
  x = sym(L.cropping2D({ cropping: [[1, 0], [0, 1]] }), x);
  x = sym(L.reLU({ maxValue: 6 }), x);
  x = sym(L.activation({ activation: 'swish' }), x);
  x = sym(L.conv2d({ filters: 6, kernelSize: 3, padding: 'valid', name: 'features' }), x);
  x = sym(L.batchNormalization({ center: false }), x);
  const pooled = sym(L.globalAveragePooling2d({}), x);
  const flat = sym(L.flatten(), sym(L.permute({ dims: [2, 1, 3] }), x));
  const head = sym(L.dense({ units: 7, activation: 'tanh' }), sym(L.dropout({ rate: 0.5 }), pooled));
  const reshaped = sym(L.reshape({ targetShape: [2, 2] }), sym(L.dense({ units: 4, activation: 'sigmoid' }), flat));
  const out1 = sym(L.softmax({ name: 'probs' }), sym(L.dense({ units: 5 }), sym(L.concatenate(), [head, sym(L.flatten(), reshaped)])));
  const out2 = sym(L.activation({ activation: 'hardSigmoid', name: 'aux' }), sym(L.globalMaxPooling2d({}), x));
  return tfl.model({ inputs: input, outputs: [out1, out2] });
}

describe('TF.js layers-model import', () => {
  it('SAME padding puts the odd pixel after, as TF does', () => {
    assert.deepEqual(samePads(224, 3, 2, 1), [0, 1]);
    assert.deepEqual(samePads(15, 3, 2, 1), [1, 1]);
    assert.deepEqual(samePads(8, 1, 2, 1), [0, 0]);
    assert.deepEqual(samePads(7, 2, 2, 1), [0, 1]);
    assert.deepEqual(samePads(10, 3, 1, 2), [2, 2]);
  });

  it('a synthetic model with 25 layer kinds matches TF.js on both outputs and a feature layer', async () => {
    const model = syntheticLayersModel();
    randomize(model, 7);
    await saveLayers(model, join(dir, 'synthetic'));
    const a = await readTfjsFolder(join(dir, 'synthetic'));
    const c = convertTfjs(a, { extraOutputs: ['features', 'concat'] });
    assert.deepEqual(c.inputSize, [15, 17]);
    assert.deepEqual(c.outputs.slice(2), ['features', 'concat']);
    const ref = await tfl.loadLayersModel(tfjsHandler(a));
    const probe = tfl.model({ inputs: ref.inputs, outputs: [...ref.outputs, ref.getLayer('features').output as tfl.SymbolicTensor, ref.getLayer('concat').output as tfl.SymbolicTensor] });
    const x = tf.randomUniform([3, 15, 17, 3], 0, 1, 'float32', 3);
    const want = probe.predict(x) as tf.Tensor[];
    const got = await runOnnx(c.model, c.input, x);
    c.outputs.forEach((name, i) => assert.ok(maxDiff(got[name]!, want[i]!) < 1e-4, `${name}: ${maxDiff(got[name]!, want[i]!)}`));
  });

  for (const q of ['uint8', 'uint16', 'float16'] as const) {
    it(`dequantizes ${q} weights exactly as TF.js does`, async () => {
      const model = syntheticLayersModel();
      randomize(model, 11);
      await saveLayers(model, join(dir, q), q);
      const a = await readTfjsFolder(join(dir, q));
      const ours = decodeWeights(a);
      // A copy with its own ArrayBuffer: a small Buffer is a view into Node's shared pool, whose .buffer starts elsewhere.
      const theirs = tf.io.decodeWeights(new Uint8Array(a.shards.get('weights.bin')!).buffer, a.modelJson.weightsManifest[0]!.weights as tf.io.WeightsManifestEntry[]);
      for (const [name, w] of ours) assert.deepEqual(w.data, theirs[name]!.dataSync(), name);
      const c = convertTfjs(a);
      const ref = await tfl.loadLayersModel(tfjsHandler(a));
      const x = tf.randomUniform([2, 15, 17, 3], 0, 1, 'float32', 5);
      const want = ref.predict(x) as tf.Tensor[];
      const got = await runOnnx(c.model, c.input, x);
      c.outputs.forEach((name, i) => assert.ok(maxDiff(got[name]!, want[i]!) < 1e-4, name));
    });
  }

  it('names every unsupported layer in one line', async () => {
    const json = JSON.parse(await readFile(join(DARKNET, 'model.json'), 'utf8')) as { modelTopology: { model_config: { config: { layers: { class_name: string; config: { activation?: string } }[] } } } };
    const layers = json.modelTopology.model_config.config.layers;
    layers[3]!.class_name = 'Lambda';
    layers[7]!.class_name = 'Lambda';
    layers[9]!.class_name = 'Conv3D';
    layers[1]!.config.activation = 'exponential';
    const bad = join(dir, 'unsupported-layers');
    await cp(DARKNET, bad, { recursive: true });
    await writeFile(join(bad, 'model.json'), JSON.stringify(json));
    await assertOneLine(importTfjs(bad, { cacheDir: join(dir, 'cache-unsup') }), /model\.json: unsupported layers: Conv2D activation 'exponential' \(1x, e\.g\. 'conv2d_1'\), Lambda \(2x, e\.g\. 'leaky_re_lu_1'\), Conv3D \(1x, e\.g\. '[a-z_0-9]+'\); headswap imports InputLayer, Conv2D/);
    await assertCacheEmpty(join(dir, 'cache-unsup'));
  });
});

/** A graph with the TF ops a converted model uses beyond MobileNet's, built by hand. */
function syntheticGraph(): { json: object; weights: Buffer } {
  const consts: { name: string; shape: number[]; dtype: 'float32' | 'int32'; values: number[] }[] = [];
  let seed = 1;
  const rnd = (n: number, lo = -0.5, hi = 0.5): number[] => Array.from({ length: n }, () => {
    seed = (seed * 16807) % 2147483647;
    return lo + (hi - lo) * (seed / 2147483647);
  });
  const c = (name: string, shape: number[], values?: number[], dtype: 'float32' | 'int32' = 'float32'): string => {
    consts.push({ name, shape, dtype, values: values ?? rnd(shape.reduce((p, q) => p * q, 1)) });
    return name;
  };
  const s = (v: string): { s: string } => ({ s: Buffer.from(v).toString('base64') });
  const ints = (v: number[]): { list: { i: string[] } } => ({ list: { i: v.map(String) } });
  const T = { T: { type: 'DT_FLOAT' } };
  const node = (name: string, op: string, input: string[], attr: object = {}): object => ({ name, op, input, attr: { ...T, ...attr } });
  const nodes = [
    { name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '-1' }, { size: '-1' }, { size: '3' }] } } } },
    node('conv1', '_FusedConv2D', ['x', c('w1', [3, 3, 3, 4]), c('b1', [4])], { strides: ints([1, 2, 2, 1]), padding: s('SAME'), data_format: s('NHWC'), dilations: ints([1, 1, 1, 1]), fused_ops: { list: { s: [s('BiasAdd').s, s('Relu').s] } }, num_args: { i: '1' } }),
    node('pad', 'Pad', ['conv1', c('paddings', [4, 2], [0, 0, 1, 2, 0, 1, 0, 0], 'int32')]),
    node('dw', 'DepthwiseConv2dNative', ['pad', c('dwk', [3, 3, 4, 2])], { strides: ints([1, 1, 1, 1]), padding: s('VALID'), data_format: s('NHWC'), dilations: ints([1, 1, 1, 1]) }),
    node('mp', 'MaxPool', ['dw'], { ksize: ints([1, 3, 3, 1]), strides: ints([1, 2, 2, 1]), padding: s('SAME'), data_format: s('NHWC') }),
    node('conv2', 'Conv2D', ['mp', c('w2', [2, 2, 8, 6])], { strides: ints([1, 1, 1, 1]), padding: s('EXPLICIT'), explicit_paddings: ints([0, 0, 1, 0, 0, 1, 0, 0]), data_format: s('NHWC'), dilations: ints([1, 1, 1, 1]) }),
    node('bn', 'FusedBatchNormV3', ['conv2', c('scale', [6]), c('offset', [6]), c('mean', [6]), c('var', [6], rnd(6, 0.5, 1.5))], { epsilon: { f: 0.001 }, data_format: s('NHWC') }),
    node('relu6', 'Relu6', ['bn']),
    node('avg', 'AvgPool', ['relu6'], { ksize: ints([1, 2, 2, 1]), strides: ints([1, 1, 1, 1]), padding: s('SAME'), data_format: s('NHWC') }),
    node('cat', 'ConcatV2', ['relu6', 'avg', c('axis', [], [-1], 'int32')], { N: { i: '2' } }),
    node('mul', 'Mul', ['cat', c('k', [12])]),
    node('sub', 'Sub', ['mul', c('half', [], [0.5])]),
    node('gap', 'Mean', ['sub', c('hw', [2], [1, 2], 'int32')], { keep_dims: { b: false } }),
    node('rows', 'Mean', ['sub', c('h', [1], [1], 'int32')], { keep_dims: { b: false } }),
    node('flat', 'Reshape', ['rows', c('shape', [2], [-1, 36], 'int32')]),
    node('col', 'ExpandDims', ['gap', c('one', [], [1], 'int32')], { Tdim: { type: 'DT_INT32' } }),
    node('row', 'Transpose', ['col', c('perm', [3], [0, 2, 1], 'int32')], { Tperm: { type: 'DT_INT32' } }),
    node('gap2', 'Reshape', ['row', c('shape2', [2], [-1, 12], 'int32')]),
    node('gapf', 'Cast', ['gap2'], { SrcT: { type: 'DT_FLOAT' }, DstT: { type: 'DT_FLOAT' } }),
    node('fc1', '_FusedMatMul', ['gapf', c('m1', [12, 5]), c('mb1', [5])], { transpose_a: { b: false }, transpose_b: { b: false }, fused_ops: { list: { s: [s('BiasAdd').s, s('Relu').s] } }, num_args: { i: '1' } }),
    node('fc2', 'MatMul', ['flat', c('m2', [5, 36])], { transpose_a: { b: false }, transpose_b: { b: true } }),
    node('sum', 'AddV2', ['fc1', 'fc2']),
    node('probs', 'Softmax', ['sum']),
    node('Identity', 'Identity', ['probs']),
  ];
  const allNodes = [...consts.map((k) => ({ name: k.name, op: 'Const', attr: { dtype: { type: k.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT' }, value: { tensor: { dtype: k.dtype === 'int32' ? 'DT_INT32' : 'DT_FLOAT', tensorShape: { dim: k.shape.map((d) => ({ size: String(d) })) } } } } })), ...nodes];
  const weights = Buffer.concat(consts.map((k) => Buffer.from((k.dtype === 'int32' ? Int32Array.from(k.values) : Float32Array.from(k.values)).buffer)));
  return {
    json: {
      format: 'graph-model',
      modelTopology: { node: allNodes, versions: { producer: 1395 } },
      signature: { inputs: { 'x:0': { name: 'x:0', dtype: 'DT_FLOAT' } }, outputs: { 'Identity:0': { name: 'Identity:0', dtype: 'DT_FLOAT' } } },
      weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: consts.map((k) => ({ name: k.name, shape: k.shape, dtype: k.dtype })) }],
    },
    weights,
  };
}

describe('TF.js graph-model import', () => {
  it('a synthetic graph (fused conv, Pad, explicit padding, pools, Mean, Reshape, Transpose, MatMul) matches TF.js', async () => {
    const { json, weights } = syntheticGraph();
    const g = join(dir, 'graph');
    await mkdir(g, { recursive: true });
    await writeFile(join(g, 'model.json'), JSON.stringify(json));
    await writeFile(join(g, 'group1-shard1of1.bin'), weights);
    const a = await readTfjsFolder(g);
    // The input size is open in this graph: it comes from the caller.
    assert.throws(() => convertTfjs(a), /input size is open/);
    const c = convertTfjs(a, { inputSize: [13, 11], extraOutputs: ['cat', 'rows'] });
    const ref = await loadGraphModel(tfjsHandler(a));
    const x = tf.randomUniform([2, 13, 11, 3], 0, 1, 'float32', 9);
    const want = ref.execute(x, ['Identity', 'cat', 'rows']) as tf.Tensor[];
    const got = await runOnnx(c.model, c.input, x);
    assert.deepEqual(c.outputs, ['Identity', 'cat', 'rows']);
    c.outputs.forEach((name, i) => assert.ok(maxDiff(got[name]!, want[i]!) < 1e-4, `${name}: ${maxDiff(got[name]!, want[i]!)}`));
  });

  it('names every unsupported op in one line', async () => {
    const { json, weights } = syntheticGraph();
    const nodes = (json as { modelTopology: { node: { name: string; op: string }[] } }).modelTopology.node;
    nodes.find((n) => n.name === 'relu6')!.op = 'Cumsum';
    nodes.find((n) => n.name === 'mp')!.op = 'ResizeBilinear';
    (nodes.find((n) => n.name === 'conv1') as unknown as { attr: { fused_ops: { list: { s: string[] } } } }).attr.fused_ops.list.s[1] = Buffer.from('Gelu').toString('base64');
    const g = join(dir, 'graph-unsupported');
    await mkdir(g, { recursive: true });
    await writeFile(join(g, 'model.json'), JSON.stringify(json));
    await writeFile(join(g, 'group1-shard1of1.bin'), weights);
    await assertOneLine(importTfjs(g, { cacheDir: join(dir, 'cache-g'), inputSize: [13, 11] }), /model\.json: unsupported ops: _FusedConv2D with BiasAdd\+Gelu \(1x, e\.g\. 'conv1'\), ResizeBilinear \(1x, e\.g\. 'mp'\), Cumsum \(1x, e\.g\. 'relu6'\); headswap imports Placeholder/);
    await assertCacheEmpty(join(dir, 'cache-g'));
  });
});

async function assertOneLine(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof HeadswapError, String(err));
    assert.ok(!err.message.includes('\n'), 'one line');
    assert.match(err.message, pattern);
    return true;
  });
}

/** Nothing, not even a temp file, is left in the cache after a failed import. */
async function assertCacheEmpty(cache: string): Promise<void> {
  const left = await readdir(join(cache, 'models')).catch(() => [] as string[]);
  assert.deepEqual(left, []);
}

describe('importTfjs: bad input', () => {
  async function variant(name: string, edit: (d: string) => Promise<void>): Promise<string> {
    const d = join(dir, 'bad', name);
    await cp(DARKNET, d, { recursive: true });
    await edit(d);
    return d;
  }
  const cases: [string, (d: string) => Promise<void>, RegExp][] = [
    ['missing shard', (d) => rm(join(d, 'group7-shard1of1')), /group7-shard1of1: weight shard listed in .*model\.json is missing/],
    ['truncated shard', async (d) => writeFile(join(d, 'group17-shard1of1'), (await readFile(join(d, 'group17-shard1of1'))).subarray(0, 1000)), /group17-shard1of1: 1000 bytes, but .*model\.json lists 294912 bytes of weights for it \(truncated\)/],
    ['too long shard', async (d) => writeFile(join(d, 'group3-shard1of1'), Buffer.concat([await readFile(join(d, 'group3-shard1of1')), Buffer.alloc(4)])), /group3-shard1of1: 1028 bytes, but .* lists 1024 bytes .*\(too long\)/],
    ['malformed JSON', async (d) => writeFile(join(d, 'model.json'), (await readFile(join(d, 'model.json'), 'utf8')).slice(0, 5000)), /model\.json: not valid JSON \(/],
    ['not a model', (d) => writeFile(join(d, 'model.json'), '{"hello": 1}'), /model\.json: no modelTopology object; this is not a TF\.js model\.json/],
    ['unknown dtype', async (d) => writeFile(join(d, 'model.json'), (await readFile(join(d, 'model.json'), 'utf8')).replace('"batch_normalization_1/gamma", "shape": [16], "dtype": "float32"', '"batch_normalization_1/gamma", "shape": [16], "dtype": "float64"')), /model\.json: weight 'batch_normalization_1\/gamma' has dtype 'float64', which headswap cannot import/],
    ['unknown quantization', async (d) => writeFile(join(d, 'model.json'), (await readFile(join(d, 'model.json'), 'utf8')).replace('"dtype": "float32"}', '"dtype": "float32", "quantization": {"dtype": "int4"}}')), /has quantization dtype 'int4', which headswap cannot import/],
    ['escaping shard path', async (d) => writeFile(join(d, 'model.json'), (await readFile(join(d, 'model.json'), 'utf8')).replace('"group1-shard1of1"', '"../group1-shard1of1"')), /weight shard path "\.\.\/group1-shard1of1" is not a plain relative path/],
    ['weights of another model', async (d) => writeFile(join(d, 'model.json'), (await readFile(join(d, 'model.json'), 'utf8')).replace('"conv2d_5/kernel"', '"conv2d_99/kernel"')), /layer 'conv2d_5' needs weight 'conv2d_5\/kernel', which the weights manifest does not list/],
  ];
  for (const [name, edit, pattern] of cases) {
    it(`${name}: one line naming the file, nothing cached`, async () => {
      const d = await variant(name.replace(/ /g, '-'), edit);
      const cache = join(dir, 'cache-bad', name.replace(/ /g, '-'));
      await assertOneLine(importTfjs(d, { cacheDir: cache }), pattern);
      await assertCacheEmpty(cache);
    });
  }

  it('a missing folder or model.json is one line', async () => {
    await assertOneLine(importTfjs(join(dir, 'nope')), /nope not found; give a TF\.js model folder/);
    await mkdir(join(dir, 'empty'));
    await assertOneLine(importTfjs(join(dir, 'empty')), /empty: no model\.json in this folder/);
  });
});

describe('importTfjs: cache, URL, CLI', () => {
  let server: TestServer;
  let files: string[];
  let truncate = false;
  before(async () => {
    files = await readdir(DARKNET);
    const routes: Record<string, Handler> = {};
    for (const f of files) {
      routes[`/models/darknet/${f}`] = (_req, res) => {
        void readFile(join(DARKNET, f)).then((b) => {
          const body = truncate && f === 'group19-shard1of1' ? b.subarray(0, 5000) : b;
          res.writeHead(200, { 'content-length': body.length }).end(body);
        });
      };
      // Like TF Hub: files only with ?tfjs-format=file (without it TF Hub answers its HTML page).
      routes[`/google/tfjs-model/darknet/1/${f}`] = (req, res) => {
        if (!/[?&]tfjs-format=file(&|$)/.test(req.url ?? '')) return void res.writeHead(404).end('not a file request');
        void readFile(join(DARKNET, f)).then((b) => res.writeHead(200, { 'content-length': b.length }).end(b));
      };
    }
    server = await startServer(routes);
  });
  after(() => server.close());

  it('converts a folder once into <cache>/models/tfjs-<sha256>.onnx and reuses it', async () => {
    const cache = join(dir, 'cache-folder');
    const first = await importTfjs(DARKNET, { cacheDir: cache });
    assert.match(first.onnxPath, /[\\/]models[\\/]tfjs-[0-9a-f]{64}\.onnx$/);
    assert.equal(first.onnxPath, join(cache, 'models', `tfjs-${first.sourceSha256}.onnx`));
    assert.deepEqual(first.inputSize, [224, 224]);
    assert.equal(first.input, 'input_1');
    assert.deepEqual(first.outputs, ['global_average_pooling2d_1']);
    assert.equal(first.labels?.length, 1000);
    assert.equal(first.labels?.[0], 'kit fox');
    assert.equal(first.format, 'layers-model');
    const model = await readModel(first.onnxPath);
    assert.deepEqual(model.graph!.input![0]!.type!.tensorType!.shape!.dim!.map((d) => d.dimValue ?? d.dimParam), ['batch', 224, 224, 3]);
    const mtime = (await stat(first.onnxPath)).mtimeMs;
    const again = await importTfjs(join(DARKNET, 'model.json'), { cacheDir: cache });
    assert.deepEqual(again, first);
    assert.equal((await stat(first.onnxPath)).mtimeMs, mtime, 'not written again');
    assert.deepEqual((await readdir(join(cache, 'models'))).length, 1);
  });

  it('fetches model.json then its shards over HTTP into the cache; a second import makes no request', async () => {
    const cache = join(dir, 'cache-url');
    const url = `${server.url}/models/darknet/model.json`;
    const local = await importTfjs(DARKNET, { cacheDir: join(dir, 'cache-folder') });
    const r = await importTfjs(url, { cacheDir: cache });
    assert.equal(r.sha256, local.sha256, 'same ONNX bytes as from the folder');
    assert.equal(r.labels?.length, 1000);
    assert.equal(server.requests[0], '/models/darknet/model.json');
    const shardRequests = server.requests.filter((p) => /group\d+-shard/.test(p));
    assert.equal(shardRequests.length, 31);
    const before = server.requests.length;
    const again = await importTfjs(url, { cacheDir: cache });
    assert.equal(again.onnxPath, r.onnxPath);
    // The folder's URL means its model.json.
    assert.equal((await importTfjs(`${server.url}/models/darknet`, { cacheDir: cache })).onnxPath, r.onnxPath);
    assert.equal(server.requests.length, before, 'served from the cache');
  });

  it('a TF.js zoo entry (TF Hub style: a query on every file, the output as features) loads through the download path', async () => {
    const cache = join(dir, 'cache-zoo-tfjs');
    const entry: ZooEntry = {
      ...getEntry('mobilenet_v2'),
      id: 'test_tfhub_darknet',
      format: 'tfjs',
      url: `${server.url}/google/tfjs-model/darknet/1/model.json?tfjs-format=file`,
      sha256: null,
      bytes: null,
      bundled: undefined,
      classifier: undefined,
      preprocessing: { size: [224, 224], resize: 'crop', cropRatio: 0.875, scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC' },
      feature: 'output',
      featureDims: 1000,
    };
    const backbone = await Backbone.load(entry, { cacheDir: cache });
    const direct = await Backbone.load(DARKNET, { cacheDir: cache, feature: { tensor: 'global_average_pooling2d_1', pooling: 'none' } });
    try {
      assert.equal(backbone.id, 'test_tfhub_darknet');
      assert.deepEqual(backbone.feature, { tensor: 'global_average_pooling2d_1', pooling: 'none' });
      const shards = server.requests.filter((p) => p.startsWith('/google/tfjs-model/darknet/1/group'));
      assert.equal(shards.length, 31, 'every shard fetched with the query');
      const image = await loadRgb(join(DARKNET, '..', '..', 'photos', 'shoe-1.jpg'), backbone.preprocessing);
      const a = await backbone.features([image]);
      const b = await direct.features([image]);
      assert.equal(a.dims, 1000);
      assert.ok(a.data.every((v, i) => Math.abs(v - b.data[i]!) < 1e-6), 'the same network as the local folder');
      const before = server.requests.length;
      await (await Backbone.load(entry, { cacheDir: cache })).release();
      assert.equal(server.requests.length, before, 'a second load makes no request');
    } finally {
      await backbone.release();
      await direct.release();
    }
  });

  it('a truncated shard from the server: one line naming its URL, nothing cached', async () => {
    const cache = join(dir, 'cache-url-bad');
    truncate = true;
    try {
      await assertOneLine(importTfjs(`${server.url}/models/darknet/model.json`, { cacheDir: cache }), /download of http:\/\/127\.0\.0\.1:\d+\/models\/darknet\/group19-shard1of1 was cut off|group19-shard1of1: 5000 bytes, but/);
    } finally {
      truncate = false;
    }
    await assertCacheEmpty(cache);
    await assertOneLine(importTfjs(`${server.url}/models/nothing/model.json`, { cacheDir: cache }), /download of .*\/models\/nothing\/model\.json failed: HTTP 404/);
    await assertCacheEmpty(cache);
  });

  it('headswap import <src> <out.onnx> writes the ONNX file', async () => {
    const out = join(dir, 'cli', 'darknet.onnx');
    await mkdir(join(dir, 'cli'), { recursive: true });
    const printed = await runImport([DARKNET, out], join(dir, 'cache-folder'), async (program) => {
      await assert.rejects(program.parseAsync(['node', 'headswap', 'import', DARKNET, out]), /exists; give another path or --force/);
    });
    assert.match(printed, /darknet\.onnx: layers-model converted to ONNX; input 'input_1' float32 \[N,224,224,C\] NHWC .*outputs 'global_average_pooling2d_1'; 1000 labels/);
    const model = await readModel(out);
    assert.equal(model.graph!.output![0]!.name, 'global_average_pooling2d_1');
  });
});

describe('nsfwjs bundle unwrapping', () => {
  it('reads the exported literal without running the bundle', () => {
    const text = '!function(e){module.exports=e()}(function(){return function e(a,n,i){}({1:[function(e,h,n){h.exports={a:!0,"b c":[.5,-1e-3,null,!1],d:\'it\\\'s\',e:"x\\"y"}},{}]},{},[1])(1)});';
    assert.deepEqual(unwrapBundle(text, 'x.min.js'), { a: true, 'b c': [0.5, -0.001, null, false], d: "it's", e: 'x"y' });
    assert.throws(() => unwrapBundle('console.log(1)', 'x.min.js'), /x\.min\.js: not an nsfwjs model bundle/);
  });
});
