import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import sharp from 'sharp';
import { Backbone } from '../../src/backbone/backbone.js';
import { ModelExplainer } from '../../src/explain/cam.js';
import { defaultOut, explain, explainImage, type ExplainResult } from '../../src/explain/explain.js';
import { loadClassifier } from '../../src/export/classifier.js';
import { train } from '../../src/pipeline/train.js';
import { filterGrid, firstConvolution, type FirstConvolution } from '../../src/explain/filters.js';
import { constantTensors, decodeTensor } from '../../src/onnx/tensors.js';
import { loadRgb } from '../../src/image/preprocess.js';
import type { RgbImage } from '../../src/image/types.js';
import { PIXELS, keepOutputs } from '../../src/onnx/edit.js';
import { DataType, attr, encodeModel, floatTensor, node, valueInfo, type ModelProto, type NodeProto, type TensorProto } from '../../src/onnx/proto.js';
import { copySubset } from '../helpers/dataset.js';
import { HAT_1, SHOE_1, SHOE_2 } from '../helpers/images.js';
import { expectOneLine } from '../helpers/assert.js';

let dir: string;
let backbone: Backbone;
let photo: RgbImage;
let graph: ModelProto;
let conv: FirstConvolution;
let result: ExplainResult;
/** onnxruntime's own (raw, not dequantized) values of the chosen maps, from a session with onnxruntime's defaults like headswap's own. */
let raw: Record<string, ort.Tensor>;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-explain-'));
  backbone = await Backbone.load('mobilenet_v2');
  photo = await loadRgb(SHOE_1, backbone.preprocessing);
  graph = backbone.graph();
  conv = firstConvolution(graph, 'mobilenet_v2');
  result = await explainImage(SHOE_1, { base: backbone });
  raw = await run(result.layers.map((l) => l.tensor));
});
after(async () => {
  await backbone.release();
  await rm(dir, { recursive: true, force: true });
});

/**
 * onnxruntime's exact int8 arithmetic. By default, on x86 without VNNI, its u8s8 kernels add pairs of products in
 * saturating int16 (vpmaddubsw); this documented config key makes a level-2 graph transformer (so not with
 * optimization 'disabled' or 'basic') turn int8 weights into uint8 for its exact u8u8 kernels; elsewhere a no-op.
 */
const EXACT_INT8: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', extra: { session: { x64quantprecision: '1' } } };

/** Runs the pixels graph on the shoe photo with `outputs` as its only outputs (raw, not dequantized). */
async function run(outputs: string[], options: ort.InferenceSession.SessionOptions = {}): Promise<Record<string, ort.Tensor>> {
  const m = backbone.pixelsModel();
  keepOutputs(m, outputs);
  // Untyped outputs: onnxruntime takes each tensor's own type (uint8 for quantized maps).
  m.graph!.output = outputs.map((name) => ({ name }));
  const session = await ort.InferenceSession.create(encodeModel(m), options);
  try {
    return await session.run({ [PIXELS]: new ort.Tensor('uint8', photo.data, [1, 224, 224, 3]) });
  } finally {
    await session.release();
  }
}

function constant(name: string | undefined): Float32Array {
  const t = constantTensors(graph).get(name ?? '');
  assert.ok(t, `constant ${name}`);
  return decodeTensor(t).data;
}

function producerOf(tensor: string): NodeProto {
  const n = graph.graph!.node!.find((x) => x.output?.includes(tensor));
  assert.ok(n, `producer of ${tensor}`);
  return n;
}


describe('first-layer filters', () => {
  it('decodes the int8 model\'s 32 filters of 3x3x3 with per-filter scales', () => {
    assert.equal(conv.op, 'QLinearConv');
    assert.ok(conv.quantized);
    assert.deepEqual(conv.dims, [32, 3, 3, 3]);
    assert.equal(conv.weights.length, 32 * 27);
    assert.deepEqual(conv.strides, [2, 2]);
    assert.ok(new Set(conv.weights).size > 100, 'weights are not all equal');
    // Per-channel scales: filters' largest weights differ by orders of magnitude.
    const peaks = Array.from({ length: 32 }, (_, f) => Math.max(...conv.weights.subarray(f * 27, f * 27 + 27).map(Math.abs)));
    assert.ok(Math.max(...peaks) / Math.min(...peaks) > 100, peaks.join(' '));
    const grid = filterGrid(conv, 224);
    assert.ok(grid.height <= 224 && grid.width > grid.height);
    assert.equal(grid.data.length, grid.width * grid.height * 3);
  });

  it("dequantized filters reproduce onnxruntime's first convolution on the photo", async () => {
    const qconv = producerOf(conv.output);
    const quant = producerOf(conv.input);
    assert.equal(quant.opType, 'QuantizeLinear');
    // The reference is the exact quantized convolution: with the defaults on an AVX2 CPU, 13% of outputs are off by up to 19 steps.
    const exact = await run([conv.input, conv.output], EXACT_INT8);
    const xq = exact[conv.input]!.data as Uint8Array;
    const yq = exact[conv.output]!.data as Uint8Array;
    const [xs, xz] = [constant(quant.input![1])[0]!, constant(quant.input![2])[0]!];
    const [ys, yz] = [constant(qconv.input![6])[0]!, constant(qconv.input![7])[0]!];
    const wScale = constant(qconv.input![4]);
    const biasQ = constant(qconv.input![8]);
    // QLinearConv's int32 bias is in units of input scale x weight scale.
    const bias = Float32Array.from(biasQ, (b, m) => b * xs * wScale[m]!);
    /** Counts outputs of the first `M` filters that differ from onnxruntime's by 1 and by more. */
    const convolve = (weights: Float32Array, M: number): number[] => {
      const [C, K] = [3, 3];
      const [H, OH] = [224, 112];
      const mismatches = [0, 0];
      for (let m = 0; m < M; m++) {
        for (let oy = 0; oy < OH; oy++) {
          for (let ox = 0; ox < OH; ox++) {
            let y = bias[m]!;
            for (let c = 0; c < C; c++) {
              for (let ky = 0; ky < K; ky++) {
                const iy = oy * 2 - 1 + ky;
                if (iy < 0 || iy >= H) continue;
                for (let kx = 0; kx < K; kx++) {
                  const ix = ox * 2 - 1 + kx;
                  if (ix < 0 || ix >= H) continue;
                  y += weights[((m * C + c) * K + ky) * K + kx]! * (xq[(c * H + iy) * H + ix]! - xz) * xs;
                }
              }
            }
            const q = Math.min(255, Math.max(0, Math.round(y / ys) + yz));
            const d = Math.abs(q - yq[(m * OH + oy) * OH + ox]!);
            if (d > 0) mismatches[0]!++;
            if (d > 1) mismatches[1]!++;
          }
        }
      }
      return mismatches;
    };
    const [off, offByMore] = convolve(conv.weights, 32);
    assert.equal(offByMore, 0, 'every output within one quantization step');
    assert.ok(off! < 0.01 * yq.length, `${off} of ${yq.length} outputs differ by one step (rounding)`);
    // The check can fail: one scale for all filters (ignoring per-channel scales) is far off.
    const wrong = Float32Array.from(conv.weights, (w, i) => (w / wScale[Math.floor(i / 27)]!) * wScale[0]!);
    assert.ok(convolve(wrong, 8)[1]! > 0.1 * (yq.length / 4));
  });
});

describe('activation maps', () => {
  it('four depths from the first layer to the last, spatial size decreasing', () => {
    const layers = result.layers;
    assert.deepEqual(layers.map((l) => l.title), ['light and dark', 'edges', 'shapes', 'object parts']);
    assert.equal(layers[0]!.tensor, conv.output, 'depth 1 is the first layer (ReLU fused into the int8 conv)');
    for (let i = 1; i < 4; i++) {
      const [a, b] = [layers[i - 1]!, layers[i]!];
      assert.ok(b.size[0] * b.size[1] < a.size[0] * a.size[1], `${a.tensor} ${a.size} then ${b.tensor} ${b.size}`);
      assert.ok(b.stride > a.stride);
    }
    assert.deepEqual(layers.map((l) => l.stride), [2, 4, 16, 32]);
    assert.deepEqual(layers[3]!.dims, [1, 1280, 7, 7]);
    for (const l of layers) assert.equal(l.strongest.length, 6);
  });

  it('the strongest channels are those with the highest mean activation (brute force)', async () => {
    for (const layer of result.layers) {
      const t = raw[layer.tensor]!;
      const [, C, H, W] = t.dims.map(Number) as [number, number, number, number];
      // Dequantize independently: the producing QLinear op's output scale and zero point (inputs 6, 7).
      let value = (v: number): number => v;
      if (layer.dequantized) {
        const p = producerOf(layer.tensor);
        assert.equal(p.opType, 'QLinearConv');
        const [s, z] = [constant(p.input![6])[0]!, constant(p.input![7])[0]!];
        value = (v) => (v - z) * s;
      } else {
        assert.equal(t.type, 'float32');
      }
      const data = t.data as ArrayLike<number>;
      const means: number[] = [];
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) sum += value(data[(c * H + y) * W + x]!);
        means.push(sum / (H * W));
      }
      const best = [...means].sort((a, b) => b - a).slice(0, 6);
      layer.strongest.forEach((ch, i) => {
        assert.ok(Math.abs(ch.mean - means[ch.index]!) < 1e-4, `${layer.tensor} channel ${ch.index}: ${ch.mean} vs ${means[ch.index]}`);
        assert.ok(Math.abs(ch.mean - best[i]!) < 1e-4, `${layer.tensor} rank ${i}: ${ch.mean} vs ${best[i]}`);
      });
      assert.ok(best[0]! > means.reduce((a, b) => a + b, 0) / C, 'the strongest is above average');
    }
  });
});

describe('contact sheet', () => {
  it('is a PNG of the reported size, and the HTML embeds it without network references', async () => {
    const meta = await sharp(result.png).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, result.width);
    assert.equal(meta.height, result.height);
    // A label column, six 224-pixel tiles per row; the photo row plus four depth rows.
    assert.ok(result.width > 6 * 224 + 200 && result.width < 2000, `${result.width}`);
    assert.ok(result.height > 5 * 224 && result.height < 1600, `${result.height}`);
    assert.doesNotMatch(result.html, /https?:/i);
    assert.doesNotMatch(result.html, /<(script|link)\b/i);
    const embedded = /src="data:image\/png;base64,([^"]+)"/.exec(result.html)?.[1];
    assert.ok(embedded && Buffer.from(embedded, 'base64').equals(result.png));
    for (const l of result.layers) assert.ok(result.html.includes(l.tensor), l.tensor);
    assert.match(result.html, /layer 4: object parts/);
  });

});

/** A float model of `convs` stride-2 convolutions with ReLU, weights in typed fields (not raw_data), then a classifier. */
function tinyCnn(convs: number): ModelProto {
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let x = 'image';
  let channels = 3;
  for (let i = 0; i < convs; i++) {
    const n = channels * 4 * 9;
    inits.push({ name: `w${i}`, dims: [4, channels, 3, 3], dataType: DataType.FLOAT, floatData: Array.from({ length: n }, (_, j) => Math.sin(j * 1.7 + i)) });
    nodes.push(node('Conv', [x, `w${i}`], [`conv${i}`], [attr.ints('strides', [2, 2]), attr.ints('pads', [1, 1, 1, 1]), attr.ints('kernel_shape', [3, 3])]));
    nodes.push(node('Relu', [`conv${i}`], [`relu${i}`]));
    x = `relu${i}`;
    channels = 4;
  }
  nodes.push(node('GlobalAveragePool', [x], ['pooled']), node('Flatten', ['pooled'], ['flat']), node('Gemm', ['flat', 'fc'], ['logits']));
  inits.push(floatTensor('fc', [channels, 2], new Float32Array(channels * 2).fill(0.5)));
  return {
    irVersion: 7,
    opsetImport: [{ domain: '', version: 12 }],
    graph: { name: 'tiny', node: nodes, initializer: inits, input: [valueInfo('image', DataType.FLOAT, [1, 3, 32, 32])], output: [valueInfo('logits', DataType.FLOAT, [1, 2])] },
  } as ModelProto;
}

describe('other models', () => {
  it('a float CNN: filters from typed fields, depth 1 after the activation', async () => {
    const path = join(dir, 'tiny.onnx');
    await writeFile(path, encodeModel(tinyCnn(4)));
    const r = await explainImage(SHOE_1, { base: path, channels: 2 });
    assert.equal(r.filters.op, 'Conv');
    assert.equal(r.filters.quantized, false);
    assert.deepEqual(r.filters.dims, [4, 3, 3, 3]);
    const float = firstConvolution(tinyCnn(4), 'tiny');
    assert.ok(float.weights.every((w, j) => Math.abs(w - Math.sin(j * 1.7)) < 1e-6));
    assert.deepEqual(r.layers.map((l) => l.tensor), ['relu0', 'relu1', 'relu2', 'relu3']);
    assert.deepEqual(r.layers.map((l) => l.size[0]), [16, 8, 4, 2]);
  });

  it('explain() writes the PNG and the HTML next to it, nothing else', async () => {
    const tiny = join(dir, 'tiny4.onnx');
    await writeFile(tiny, encodeModel(tinyCnn(4)));
    const out = join(dir, 'sheets', 'shoe.png');
    const r = await explain(SHOE_1, { base: tiny, out, channels: 3 });
    assert.equal(r.pngPath, out);
    assert.equal(r.htmlPath, join(dir, 'sheets', 'shoe.html'));
    assert.deepEqual((await readdir(join(dir, 'sheets'))).sort(), ['shoe.html', 'shoe.png']);
    assert.ok((await readFile(out)).equals(r.png));
    assert.equal(await readFile(r.htmlPath, 'utf8'), r.html);
    assert.ok(r.layers.every((l) => l.strongest.length === 3));
    const meta = await sharp(out).metadata();
    assert.deepEqual([meta.width, meta.height], [r.width, r.height]);
    assert.equal(defaultOut('photos/shoe-1.jpg'), resolve('shoe-1.explain.png'));
  });

  it('one-line errors: no convolution, too few resolutions, bad image, bad output name', async () => {
    const flat = tinyCnn(0);
    const flatPath = join(dir, 'flat.onnx');
    await writeFile(flatPath, encodeModel(flat));
    await expectOneLine(explainImage(SHOE_1, { base: flatPath }), /flat\.onnx: the model has no convolution/);
    const shallow = join(dir, 'shallow.onnx');
    await writeFile(shallow, encodeModel(tinyCnn(2)));
    await expectOneLine(explainImage(SHOE_1, { base: shallow }), /shallow\.onnx: explain needs convolutional feature maps at 4 resolutions, this model has them at 2 \(16x16, 8x8\)/);
    const text = join(dir, 'notes.jpg');
    await writeFile(text, 'not a photo\n'.repeat(20));
    await expectOneLine(explainImage(text, { base: backbone }), /notes\.jpg: not a readable image/);
    await expectOneLine(explain(SHOE_1, { base: backbone, out: join(dir, 'x.jpg') }), /x\.jpg: the output must be a \.png file/);
    await expectOneLine(explainImage(SHOE_1, { base: backbone, channels: 0 }), /channels must be a whole number/);
  });
});

describe('class activation maps of a trained model', () => {
  const CLASSES = ['hat', 'shoes', 't-shirt'];
  let modelDir: string;
  let explainer: ModelExplainer;

  before(async () => {
    // A linear head on one backbone, trained on a few real photos per class: seconds, no shared cache.
    await copySubset('train', CLASSES, 8, join(dir, 'photos'));
    modelDir = join(dir, 'photos.model');
    await train({ data: join(dir, 'photos'), out: modelDir, base: 'mobilenet_v2', quality: 'plain', cacheDir: join(dir, 'cache'), record: false, seed: 0 });
    explainer = await ModelExplainer.load(modelDir, { threads: 1 });
  });
  after(async () => {
    await explainer?.release();
  });

  it("the map's mean plus the bias is the model's own logit, and their softmax its probabilities (model.onnx's numbers)", async () => {
    const classifier = await loadClassifier(modelDir, { threads: 1 });
    try {
      for (const file of [SHOE_1, HAT_1]) {
        const photo = await explainer.loadImage(file);
        const e = await explainer.explain(photo, CLASSES);
        assert.equal(e.method, 'cam');
        assert.equal(e.tta, false);
        assert.deepEqual(new Set(e.classes.map((c) => c.label)), new Set(CLASSES));
        const logits = new Float64Array(CLASSES.length);
        for (const c of e.classes) {
          const [member] = c.members;
          assert.equal(c.members.length, 1);
          assert.equal(member!.views.length, 1);
          const view = member!.views[0]!;
          assert.equal(view.map.data.length, 7 * 7);
          const mean = view.map.data.reduce((a, b) => a + b, 0) / view.map.data.length;
          assert.ok(Math.abs(mean + view.bias - view.logit) < 1e-4, `${file} ${c.label}: mean ${mean} + bias ${view.bias} vs logit ${view.logit}`);
          // The map is not flat: it says where, not only how much.
          assert.ok(Math.max(...view.map.data) - Math.min(...view.map.data) > 0.1, `${c.label}: a flat map`);
          logits[c.index] = mean + view.bias;
        }
        // Probabilities from a plain session of the untouched model.onnx, as `predict` computes them.
        const [p] = await classifier.predict(file);
        const z = Math.max(...logits);
        const sum = logits.reduce((a, v) => a + Math.exp(v - z), 0);
        logits.forEach((v, i) => assert.ok(Math.abs(Math.exp(v - z) / sum - p!.probabilities[i]!) < 1e-4, `${file} class ${i}`));
        assert.equal(e.classes[0]!.index, p!.top[0]!.index, 'the predicted class comes first');
      }
    } finally {
      await classifier.release();
    }
  });

  it("the peak of the map for 'shoes' is where a real shoe is pasted onto a blank canvas", async () => {
    const [w, h] = [224, 224];
    const shoe = await sharp(SHOE_2).resize(112, 112, { fit: 'cover' }).toBuffer();
    for (const [left, top] of [[0, 0], [112, 112], [112, 0]] as const) {
      const { data } = await sharp({ create: { width: w, height: h, channels: 3, background: { r: 255, g: 255, b: 255 } } })
        .composite([{ input: shoe, left, top }])
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
      const e = await explainer.explain({ width: w, height: h, data: new Uint8Array(data) }, ['shoes']);
      const map = e.classes.find((c) => c.label === 'shoes')!.map;
      const peak = map.data.indexOf(Math.max(...map.data));
      // Cell centres in pixels: cell i of 7 covers 32 pixels.
      const [x, y] = [((peak % map.width) + 0.5) * (w / map.width), (Math.floor(peak / map.width) + 0.5) * (h / map.height)];
      assert.ok(x >= left && x < left + 112 && y >= top && y < top + 112, `shoe at (${left},${top}): peak at (${x},${y})`);
    }
  });

  it("explain() with the model writes the class picture next to the sheet, and its page shows it", async () => {
    const out = join(dir, 'with-model.png');
    const r = await explain(SHOE_1, { model: explainer, classes: ['hat'], out });
    assert.equal(r.classesPath, join(dir, 'with-model.classes.png'));
    const meta = await sharp(await readFile(r.classesPath!)).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, r.classMaps!.width);
    assert.deepEqual(r.classMaps!.classes.map((c) => c.label).slice(1), ['hat']);
    assert.match(await readFile(r.htmlPath, 'utf8'), /Why the model says '[\w-]+'/);
  });

  it('one-line errors: unknown class (names the classes), a folder without headswap.json, a backbone with no map', async () => {
    const photo = await explainer.loadImage(SHOE_1);
    await expectOneLine(explainer.explain(photo, ['cap']), /class 'cap' is not one of the model's classes: hat, shoes, t-shirt/);
    await expectOneLine(ModelExplainer.load(join(dir, 'photos')), /photos: has no headswap\.json/);
    await expectOneLine(ModelExplainer.load(join(dir, 'missing.model')), /missing\.model: cannot open the model folder/);
  });
});
