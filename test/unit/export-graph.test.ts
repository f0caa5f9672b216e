import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import ort from 'onnxruntime-node';
import { Backbone } from '../../src/backbone/backbone.js';
import { loadRgb, packBatch } from '../../src/image/preprocess.js';
import { createRng, normal } from '../../src/util/random.js';
import { exportClassifierGraph, exportEnsembleGraph } from '../../src/export/graph.js';
import { mergeModels } from '../../src/onnx/merge.js';
import { makePortable } from '../../src/onnx/portable.js';
import { sessionOptions } from '../../src/runtime/session.js';
import { createModel, decodeModel, node, type ModelProto } from '../../src/onnx/proto.js';
import { averageProbabilities, predictHead, standardization } from '../../src/head/train.js';
import type { HeadWeights } from '../../src/head/weights.js';
import { DRESS_1, HAT_1, SHOE_1 } from '../helpers/images.js';

const FILES = [SHOE_1, HAT_1, DRESS_1];
let backbone: Backbone;
let plain: Float32Array;
let flipped: Float32Array;
let pixels: Uint8Array;
let d: number;

before(async () => {
  backbone = await Backbone.load('mobilenet_v2');
  const pre = backbone.preprocessing;
  const images = await Promise.all(FILES.map((f) => loadRgb(f, pre)));
  const mirrors = await Promise.all(FILES.map((f) => loadRgb(f, pre, { flip: true })));
  pixels = packBatch(images);
  const a = await backbone.features(images);
  plain = a.data;
  d = a.dims;
  flipped = (await backbone.features(mirrors)).data;
});
after(async () => backbone.release());

/**
 * A random 3-class head (fixed seed) on the photos' own standardization: outputs far from uniform,
 * so errors would show, but not saturated, so the mirror's features move them.
 */
function randomHead(seed = 5): HeadWeights {
  const rng = createRng(seed);
  const { mean, std } = standardization({ x: plain, y: new Int32Array(FILES.length), n: FILES.length, d, classes: 3 });
  const scale = 1 / Math.sqrt(d);
  return {
    mean,
    std,
    layers: [{ kernel: Float32Array.from({ length: d * 3 }, () => scale * normal(rng)), bias: Float32Array.of(0.1, -0.2, 0), inputs: d, units: 3 }],
  };
}

async function runGraph(bytes: Uint8Array): Promise<Float32Array> {
  // headswap's own session settings: the features it is compared with came through them.
  const session = await ort.InferenceSession.create(bytes, sessionOptions());
  try {
    const out = await session.run({ pixels: new ort.Tensor('uint8', pixels, [FILES.length, 224, 224, 3]) });
    assert.deepEqual(out.probabilities!.dims, [FILES.length, 3]);
    return out.probabilities!.data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

describe('exportClassifierGraph', () => {
  let head: HeadWeights;
  before(() => {
    head = randomHead();
  });

  it('appends the head to the feature graph: the same probabilities as predictHead on the features', async () => {
    const probs = await runGraph(exportClassifierGraph(backbone.featureModel(), head));
    const reference = predictHead(head, plain, FILES.length);
    assert.ok(maxAbsDiff(probs, reference) < 1e-4, `diff ${maxAbsDiff(probs, reference)}`);
  });

  it('averages probabilities over the photo and its mirror inside one graph', async () => {
    const probs = await runGraph(exportClassifierGraph(backbone.featureModel(), head, { tta: true }));
    const a = predictHead(head, plain, FILES.length);
    const b = predictHead(head, flipped, FILES.length);
    const reference = a.map((v, i) => (v + b[i]!) / 2);
    assert.ok(maxAbsDiff(probs, reference) < 1e-4, `diff ${maxAbsDiff(probs, reference)}`);
    assert.ok(maxAbsDiff(probs, a) > 1e-3, 'the mirror must contribute');
  });

  it('refuses a graph without a fixed-size pixels input', () => {
    assert.throws(() => exportClassifierGraph(backbone.graph(), head, { tta: true }), /no 'pixels' input of fixed width/);
  });
});

describe('exportEnsembleGraph', () => {
  it('one member is exportClassifierGraph, byte for byte', () => {
    const head = randomHead();
    assert.deepEqual(exportEnsembleGraph([{ features: backbone.featureModel(), head }], { tta: true }), exportClassifierGraph(backbone.featureModel(), head, { tta: true }));
  });

  it('averages the members\' probabilities (and the mirror\'s) inside one graph', async () => {
    const heads = [randomHead(5), randomHead(6)];
    const members = heads.map((head) => ({ features: backbone.featureModel(), head }));
    for (const tta of [false, true]) {
      const probs = await runGraph(exportEnsembleGraph(members, { tta }));
      const per = heads.map((h) => {
        const a = predictHead(h, plain, FILES.length);
        if (!tta) return a;
        const b = predictHead(h, flipped, FILES.length);
        return a.map((v, i) => (v + b[i]!) / 2);
      });
      const reference = averageProbabilities(per);
      assert.ok(maxAbsDiff(probs, reference) < 1e-4, `tta ${tta}: diff ${maxAbsDiff(probs, reference)}`);
      assert.ok(maxAbsDiff(probs, per[0]!) > 1e-3 && maxAbsDiff(probs, per[1]!) > 1e-3, 'both members contribute');
    }
  });
});

describe('the portable export', () => {
  let head: HeadWeights;
  let portable: ModelProto;
  let bytes: Uint8Array;
  before(() => {
    head = randomHead();
    bytes = exportClassifierGraph(backbone.featureModel(), head, { tta: true, portable: true });
    portable = decodeModel(bytes, 'portable');
  });
  const domains = (m: ModelProto): string[] => m.opsetImport.map((o) => o.domain ?? '').sort();
  const int64s = (m: ModelProto, name: string): number[] => {
    const t = m.graph!.initializer!.find((x) => x.name === name);
    assert.ok(t?.rawData, `initializer ${name}`);
    return [...new BigInt64Array(Uint8Array.from(t.rawData).buffer)].map(Number);
  };

  it('holds only default-domain operators, declares only the default domain, and stores no integer weights behind a node', () => {
    // The bundled int8 network itself uses com.microsoft QLinearAdd and declares six domains.
    assert.ok(backbone.graph().graph!.node!.some((n) => n.domain === 'com.microsoft'));
    const nodes = portable.graph!.node!;
    assert.deepEqual([...new Set(nodes.map((n) => n.domain ?? ''))], ['']);
    assert.deepEqual(domains(portable), ['']);
    assert.ok(!nodes.some((n) => n.opType!.startsWith('QLinear')), 'no QLinear* operator');
    const stored = new Set(portable.graph!.initializer!.map((t) => t.name));
    assert.ok(!nodes.some((n) => n.opType === 'DequantizeLinear' && stored.has(n.input![0])), 'weights are float initializers');
    assert.ok(nodes.some((n) => n.opType === 'QuantizeLinear'), 'activations stay on their 8-bit grid');
  });

  it('mirrors without a negative-step Slice and runs the head as Gemm with transB', () => {
    for (const n of portable.graph!.node!.filter((x) => x.opType === 'Slice')) {
      const steps = n.input![4];
      if (steps) assert.ok(int64s(portable, steps).every((s) => s > 0), `Slice ${n.name} steps ${int64s(portable, steps)}`);
    }
    assert.ok(!portable.graph!.node!.some((n) => n.opType === 'Gather' && n.input![0] === 'pixels'), 'no Gather of several columns either');
    const gemms = portable.graph!.node!.filter((n) => n.opType === 'Gemm');
    assert.equal(gemms.length, 1);
    assert.equal(gemms[0]!.attribute!.find((a) => a.name === 'transB')?.i, 1);
    assert.deepEqual(portable.graph!.initializer!.find((t) => t.name === gemms[0]!.input![1])!.dims!.map(Number), [3, d]);
  });

  it('refuses an operator of onnxruntime\'s own it has no standard equivalent for, naming it', () => {
    const m = backbone.featureModel();
    m.graph!.node!.push({ ...node('FusedConv', ['features'], ['other']), domain: 'com.microsoft' });
    m.graph!.output!.push({ name: 'other' });
    assert.throws(() => makePortable(m), /operator com\.microsoft\.FusedConv, which the portable export has no standard ONNX equivalent for; train without portable/);
  });

  it('the default export declares only the domains it uses', () => {
    const fast = decodeModel(exportClassifierGraph(backbone.featureModel(), head, { tta: true }), 'default');
    assert.ok(backbone.graph().opsetImport.length > 2);
    assert.deepEqual(domains(fast), ['', 'com.microsoft']);
  });

  it('runs on onnxruntime close to the integer graph, the mirror included', async () => {
    const probs = await runGraph(bytes);
    const a = predictHead(head, plain, FILES.length);
    const b = predictHead(head, flipped, FILES.length);
    const reference = a.map((v, i) => (v + b[i]!) / 2);
    // Float arithmetic puts some activations on the neighbouring 8-bit step where the integer
    // kernels round the other way, and 52 layers compound it (bench/README.md, "Portable export"),
    // so this random head's probabilities move by up to about 0.2; a wrong weight or bias moves them more.
    assert.ok(maxAbsDiff(probs, reference) < 0.3, `diff ${maxAbsDiff(probs, reference)}`);
    assert.ok(maxAbsDiff(probs, a) > 1e-3, 'the mirror must contribute');
  });
});

describe('mergeModels', () => {
  /** A one-node model: y = op(x) at the given default opset. */
  function tiny(op: string, opset: number, input = 'x'): ModelProto {
    return createModel({
      irVersion: 7,
      opsetImport: [{ domain: '', version: opset }],
      graph: {
        node: [node(op, [input], ['y'])],
        input: [{ name: input, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 3 }] } } } }],
        output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }],
      },
    });
  }

  it('keeps the shared input once and prefixes everything else', () => {
    const m = mergeModels([tiny('Relu', 13), tiny('Sigmoid', 12)], ['a/', 'b/'], ['x']);
    assert.deepEqual(m.graph!.input!.map((i) => i.name), ['x']);
    assert.deepEqual(m.graph!.node!.map((n) => n.output![0]), ['a/y', 'b/y']);
    assert.deepEqual(m.opsetImport!.map((o) => [o.domain, Number(o.version)]), [['', 13]]);
  });

  it('refuses to lift a graph past an opset that changed one of its operators', () => {
    assert.throws(() => mergeModels([tiny('Relu', 13), tiny('Squeeze', 12)], ['a/', 'b/'], ['x']), /network 2 is ONNX opset 12 and uses Squeeze/);
  });

  it('refuses members that read the shared input differently', () => {
    const other = tiny('Relu', 13);
    other.graph!.input![0]!.type!.tensorType!.elemType = 2;
    assert.throws(() => mergeModels([tiny('Relu', 13), other], ['a/', 'b/'], ['x']), /disagree on input 'x'/);
  });
});
