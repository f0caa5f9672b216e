import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { Backbone } from '../../src/backbone/backbone.js';
import { IMAGENET_CROP_224 } from '../../src/backbone/zoo.js';
import { classifyFiles } from '../../src/predict/classify.js';
import { loadRgb } from '../../src/image/preprocess.js';
import { findPenultimate } from '../../src/onnx/cut.js';
import { inspectModel } from '../../src/onnx/inspect.js';
import { DataType, encodeModel, floatTensor, node, readModel, valueInfo } from '../../src/onnx/proto.js';
import { packagePath } from '../../src/util/paths.js';
import { getEntry } from '../../src/backbone/zoo.js';
import { startServer } from '../helpers/http-server.js';
import { DRESS_1, HAT_1, SHOE_1, SHOE_2 } from '../helpers/images.js';
import { expectOneLine } from '../helpers/assert.js';

const MODEL = packagePath('models/mobilenet_v2/mobilenetv2-12-int8.onnx');
// ImageNet classes that are footwear.
const FOOTWEAR = new Set(['sandal', 'clog, geta, patten, sabot', 'Loafer', 'running shoe', 'cowboy boot', 'sock', 'knee pad']);

let dir: string;
let backbone: Backbone;
before(async () => {
  dir = await mkdtemp(`${tmpdir()}/headswap-backbone-`);
  backbone = await Backbone.load('mobilenet_v2');
});
after(async () => {
  await backbone.release();
  await rm(dir, { recursive: true, force: true });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}


describe('default backbone', () => {
  it('knows its input, labels and feature cut', () => {
    assert.equal(backbone.id, 'mobilenet_v2');
    assert.deepEqual(backbone.preprocessing.size, [224, 224]);
    assert.equal(backbone.labels?.length, 1000);
    assert.equal(backbone.labels?.[0], 'tench, Tinca tinca');
    assert.deepEqual(backbone.feature, { tensor: '627', pooling: 'avg-nchw' });
  });

  it("classify: the network's own top-1 for the two shoe photos is footwear", async () => {
    const results = [];
    for await (const p of classifyFiles([SHOE_1, SHOE_2], { top: 5 })) results.push(p);
    assert.equal(results.length, 2);
    for (const r of results) {
      assert.ok(FOOTWEAR.has(r.top[0]!.label), `${r.input}: ${r.top[0]!.label}`);
      const sum = r.probabilities.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-4, `softmax sums to ${sum}`);
      assert.ok(r.top[0]!.probability >= r.top[1]!.probability);
    }
  });

  it('gives 1280 pooled features, the same alone or in a batch', async () => {
    const images = await Promise.all([SHOE_1, HAT_1, DRESS_1].map((p) => loadRgb(p, backbone.preprocessing)));
    const batch = await backbone.features(images);
    assert.equal(batch.dims, 1280);
    assert.equal(batch.data.length, 3 * 1280);
    const single = await backbone.features([images[1]!]);
    assert.ok(maxAbsDiff(single.data, batch.data.slice(1280, 2560)) < 1e-5);
    // Pooled ReLU6 activations: non-negative, and different photos differ.
    assert.ok(batch.data.every((v) => v >= 0 && Number.isFinite(v)));
    assert.ok(maxAbsDiff(batch.data.slice(0, 1280), batch.data.slice(1280, 2560)) > 0.1);
  });

  it('region features: the global average, then each cell of the grid, equal to averaging the raw map', async () => {
    const images = await Promise.all([SHOE_1, DRESS_1].map((p) => loadRgb(p, backbone.preprocessing)));
    const raw = await Backbone.load('mobilenet_v2', { feature: { tensor: '627', pooling: 'none' } });
    const grid = await Backbone.load('mobilenet_v2', { regions: { rows: 3, cols: 2 } });
    try {
      const map = await raw.features(images);
      assert.equal(map.dims, 1280 * 49);
      const got = await grid.features(images);
      // 7 cells in 3 rows: 0-2, 2-4, 4-6; in 2 columns: 0-3, 3-6.
      type Span = readonly [number, number];
      const rows: Span[] = [[0, 3], [2, 5], [4, 7]];
      const cols: Span[] = [[0, 4], [3, 7]];
      const cells: (readonly [Span, Span])[] = [[[0, 7], [0, 7]], ...rows.flatMap((r) => cols.map((c) => [r, c] as const))];
      assert.equal(got.dims, 1280 * cells.length);
      assert.deepEqual(grid.feature, { tensor: '627', pooling: 'avg-nchw', regions: { rows: 3, cols: 2 } });
      assert.notEqual(grid.fingerprint, backbone.fingerprint);
      const expected = new Float32Array(images.length * got.dims);
      for (let n = 0; n < images.length; n++) {
        for (let ch = 0; ch < 1280; ch++) {
          const at = (y: number, x: number): number => map.data[n * map.dims + ch * 49 + y * 7 + x]!;
          cells.forEach(([[y0, y1], [x0, x1]], i) => {
            let sum = 0;
            for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += at(y, x);
            // The global average first, then channel-major cells.
            const slot = i === 0 ? ch : 1280 + ch * (cells.length - 1) + (i - 1);
            expected[n * got.dims + slot] = sum / ((y1 - y0) * (x1 - x0));
          });
        }
      }
      assert.ok(maxAbsDiff(got.data, expected) < 1e-4, `max diff ${maxAbsDiff(got.data, expected)}`);
      // The global part is the plain feature vector.
      const plain = await backbone.features(images);
      assert.ok(maxAbsDiff(got.data.slice(0, 1280), plain.data.slice(0, 1280)) < 1e-5);
    } finally {
      await raw.release();
      await grid.release();
    }
  });

  it('regions: left out for a cut that is already a vector, or a map with fewer cells than the grid', async () => {
    for (const options of [{ feature: { tensor: '627', pooling: 'none' as const }, regions: { rows: 3, cols: 3 } }, { regions: { rows: 8, cols: 1 } }]) {
      const b = await Backbone.load('mobilenet_v2', options);
      assert.equal(b.feature.regions, undefined);
      assert.equal(b.featureModel().graph!.node!.filter((n) => n.opType === 'AveragePool').length, 0);
      await b.release();
    }
  });

  it('finds the same penultimate layer on its own that the zoo documents', async () => {
    const model = await readModel(MODEL);
    assert.deepEqual(findPenultimate(model), { tensor: '627', pooling: 'avg-nchw' });
  });

  it('a copy of the file loads as a custom backbone with identical features', async () => {
    const copy = `${dir}/my-network.onnx`;
    await copyFile(MODEL, copy);
    const custom = await Backbone.load(copy);
    try {
      assert.equal(custom.id, 'custom');
      assert.equal(custom.labels, undefined);
      assert.deepEqual(custom.preprocessing, IMAGENET_CROP_224);
      assert.notEqual(custom.fingerprint, '');
      assert.equal(custom.fingerprint, backbone.fingerprint, 'same bytes, cut and preprocessing: same cache key');
      const img = await loadRgb(SHOE_1, custom.preprocessing);
      const a = await custom.features([img]);
      const b = await backbone.features([img]);
      assert.ok(maxAbsDiff(a.data, b.data) < 1e-6);
      await expectOneLine(custom.classify([img]), /no classifier with known labels/);
    } finally {
      await custom.release();
    }
  });

  it('a zoo entry without a bundled file downloads from its URL into the cache, then runs', async () => {
    const bytes = await readFile(MODEL);
    const server = await startServer({ '/mobilenetv2-12-int8.onnx': (_req, res) => res.end(bytes) });
    try {
      const { bundled: _bundled, ...online } = getEntry('mobilenet_v2');
      const entry = { ...online, id: 'mirrored_net', url: `${server.url}/mobilenetv2-12-int8.onnx` };
      const cache = `${dir}/zoo-cache`;
      const downloaded = await Backbone.load(entry, { cacheDir: cache });
      assert.equal(downloaded.source.kind, 'zoo-download');
      assert.ok(downloaded.source.path.startsWith(cache));
      const img = await loadRgb(SHOE_1, downloaded.preprocessing);
      assert.ok(maxAbsDiff((await downloaded.features([img])).data, (await backbone.features([img])).data) < 1e-6);
      await downloaded.release();
      const again = await Backbone.load(entry, { cacheDir: cache });
      await again.release();
      assert.equal(server.requests.length, 1, 'the second load is served from the cache');
    } finally {
      await server.close();
    }
  });

  it('inspect lists real tensor shapes', async () => {
    const tensors = await inspectModel(await readModel(MODEL), MODEL);
    const byName = new Map(tensors.map((t) => [t.name, t]));
    assert.deepEqual(byName.get('627')?.dims, [1, 1280, 7, 7]);
    assert.deepEqual(byName.get('output')?.dims, [1, 1000]);
    assert.ok(tensors.length > 60);
  });
});

describe('bad backbone sources', () => {
  it('missing, truncated and non-ONNX files, unknown ids', async () => {
    await expectOneLine(Backbone.load(`${dir}/nope.onnx`), /nope\.onnx not found/);
    await expectOneLine(Backbone.load('resnet9000'), /unknown backbone 'resnet9000'/);
    const truncated = `${dir}/truncated.onnx`;
    await writeFile(truncated, (await readFile(MODEL)).subarray(0, 100_000));
    await expectOneLine(Backbone.load(truncated), /truncated\.onnx: not an ONNX model/);
    const text = `${dir}/text.onnx`;
    await writeFile(text, 'hello, I am not a neural network\n'.repeat(10));
    await expectOneLine(Backbone.load(text), /text\.onnx: not an ONNX model/);
  });

  it('a model whose input is not an image tensor', async () => {
    const path = `${dir}/tabular.onnx`;
    const model = {
      irVersion: 7,
      opsetImport: [{ domain: '', version: 12 }],
      graph: {
        name: 'tabular',
        node: [node('Gemm', ['x', 'w'], ['y'])],
        initializer: [floatTensor('w', [10, 2], new Float32Array(20))],
        input: [valueInfo('x', DataType.FLOAT, ['n', 10])],
        output: [valueInfo('y', DataType.FLOAT, ['n', 2])],
      },
    };
    await writeFile(path, encodeModel(model as Parameters<typeof encodeModel>[0]));
    await expectOneLine(Backbone.load(path), /tabular\.onnx: input 'x' is not an image tensor/);
  });
});
