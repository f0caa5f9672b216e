import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as flatbuffers from 'flatbuffers';
import ort from 'onnxruntime-node';

import { Backbone } from '../../src/backbone/backbone.js';
import { resolveSource } from '../../src/backbone/source.js';
import { getEntry } from '../../src/backbone/zoo.js';
import { runImport } from '../helpers/cli-import.js';
import { HeadswapError } from '../../src/errors.js';
import { loadRgb } from '../../src/image/preprocess.js';
import { convertTflite, importTflite, readTflite, SUPPORTED_OPERATORS } from '../../src/import/index.js';
import { PIXELS, addPixelsPrefix } from '../../src/onnx/edit.js';
import { DataType, encodeModel, readModel, type ModelProto } from '../../src/onnx/proto.js';
import { openPredictor, streamPredictions } from '../../src/predict/files.js';
import {
  ActivationFunctionType as Act,
  BuiltinOperator as Op,
  BuiltinOptions as Opt,
  ConcatenationOptionsT,
  Conv2DOptionsT,
  DepthwiseConv2DOptionsT,
  FullyConnectedOptionsT,
  Padding,
  Pool2DOptionsT,
  ReducerOptionsT,
  SoftmaxOptionsT,
  SqueezeOptionsT,
  AddOptionsT,
  SubOptionsT,
  Model,
  MulOptionsT,
  TensorType,
} from '../../src/import/tflite/schema/tflite_generated.js';
import { createRng } from '../../src/util/random.js';
import { packagePath } from '../../src/util/paths.js';
import { startServer, type TestServer } from '../helpers/http-server.js';
import { TfliteGraph, metadataBytes, rewriteTflite, withZip } from '../helpers/tflite.js';

const EDGETPU = packagePath('models', 'mobilenet_edgetpu', 'mobilenet_edgetpu_224_1.0_uint8.tflite');
const PHOTO_DIR = packagePath('test', 'fixtures', 'photos');

let dir: string;
let photos: string[];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-tflite-'));
  photos = (await readdir(PHOTO_DIR)).filter((f) => f.endsWith('.jpg')).sort().map((f) => join(PHOTO_DIR, f));
});
after(() => rm(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// A reference implementation of the TFLite operators in plain JS, NHWC, float64.

interface Arr {
  readonly shape: number[];
  readonly data: Float64Array;
}

function arr(shape: number[], fill: (i: number) => number = () => 0): Arr {
  return { shape, data: Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => fill(i)) };
}

function map(x: Arr, f: (v: number, i: number) => number): Arr {
  return { shape: [...x.shape], data: x.data.map(f) };
}

/** Broadcast of `b` over `a` from the right (b's shape a suffix of a's, or a scalar). */
function zip(a: Arr, b: Arr, f: (x: number, y: number) => number): Arr {
  return map(a, (v, i) => f(v, b.data[i % b.data.length]!));
}

/** TF SAME padding: output ceil(in/stride), the odd pixel after. */
function window(size: number, k: number, s: number, d: number, padding: 'same' | 'valid'): { out: number; before: number } {
  const eff = (k - 1) * d + 1;
  if (padding === 'valid') return { out: Math.floor((size - eff) / s) + 1, before: 0 };
  const out = Math.ceil(size / s);
  return { out, before: Math.floor(Math.max((out - 1) * s + eff - size, 0) / 2) };
}

interface ConvSpec {
  readonly stride: [number, number];
  readonly dilation?: [number, number];
  readonly padding: 'same' | 'valid';
}

/** CONV_2D (`w` OHWI) or DEPTHWISE_CONV_2D (`w` [1,kh,kw,C*M]). */
function conv(x: Arr, w: Arr, bias: Arr, s: ConvSpec, depthwise = false): Arr {
  const [, h, wd, c] = x.shape as [number, number, number, number];
  const [o0, kh, kw, i0] = w.shape as [number, number, number, number];
  const outC = depthwise ? i0 : o0;
  const m = depthwise ? i0 / c : 1;
  const [dh, dw] = s.dilation ?? [1, 1];
  const H = window(h, kh, s.stride[0], dh, s.padding);
  const W = window(wd, kw, s.stride[1], dw, s.padding);
  const y = arr([1, H.out, W.out, outC]);
  for (let oy = 0; oy < H.out; oy++) {
    for (let ox = 0; ox < W.out; ox++) {
      for (let oc = 0; oc < outC; oc++) {
        let sum = bias.data[oc]!;
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * s.stride[0] - H.before + ky * dh;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * s.stride[1] - W.before + kx * dw;
            if (ix < 0 || ix >= wd) continue;
            if (depthwise) {
              sum += x.data[(iy * wd + ix) * c + Math.floor(oc / m)]! * w.data[(ky * kw + kx) * i0 + oc]!;
            } else {
              for (let ic = 0; ic < c; ic++) sum += x.data[(iy * wd + ix) * c + ic]! * w.data[((oc * kh + ky) * kw + kx) * i0 + ic]!;
            }
          }
        }
        y.data[(oy * W.out + ox) * outC + oc] = sum;
      }
    }
  }
  return y;
}

/** Average pooling counts only the pixels inside the image, as TFLite does. */
function pool(x: Arr, kind: 'avg' | 'max', k: [number, number], s: [number, number], padding: 'same' | 'valid'): Arr {
  const [, h, w, c] = x.shape as [number, number, number, number];
  const H = window(h, k[0], s[0], 1, padding);
  const W = window(w, k[1], s[1], 1, padding);
  const y = arr([1, H.out, W.out, c]);
  for (let oy = 0; oy < H.out; oy++) {
    for (let ox = 0; ox < W.out; ox++) {
      for (let ch = 0; ch < c; ch++) {
        let acc = kind === 'max' ? -Infinity : 0;
        let n = 0;
        for (let ky = 0; ky < k[0]; ky++) {
          for (let kx = 0; kx < k[1]; kx++) {
            const iy = oy * s[0] - H.before + ky;
            const ix = ox * s[1] - W.before + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
            const v = x.data[(iy * w + ix) * c + ch]!;
            acc = kind === 'max' ? Math.max(acc, v) : acc + v;
            n++;
          }
        }
        y.data[(oy * W.out + ox) * c + ch] = kind === 'max' ? acc : acc / n;
      }
    }
  }
  return y;
}

/** Mean over height and width: [1, C] (or [1, 1, 1, C] kept). */
function spatialMean(x: Arr, keep: boolean): Arr {
  const [, h, w, c] = x.shape as [number, number, number, number];
  const y = arr(keep ? [1, 1, 1, c] : [1, c]);
  for (let i = 0; i < h * w; i++) for (let ch = 0; ch < c; ch++) y.data[ch]! += x.data[i * c + ch]! / (h * w);
  return y;
}

function fullyConnected(x: Arr, w: Arr, bias: Arr): Arr {
  const [units, k] = w.shape as [number, number];
  const rows = x.data.length / k;
  const y = arr([rows, units]);
  for (let r = 0; r < rows; r++) for (let u = 0; u < units; u++) {
    let sum = bias.data[u]!;
    for (let i = 0; i < k; i++) sum += x.data[r * k + i]! * w.data[u * k + i]!;
    y.data[r * units + u] = sum;
  }
  return y;
}

function pad(x: Arr, p: [number, number][]): Arr {
  const [, h, w, c] = x.shape as [number, number, number, number];
  const y = arr([1, h + p[1]![0] + p[1]![1], w + p[2]![0] + p[2]![1], c]);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let ch = 0; ch < c; ch++) {
    y.data[((i + p[1]![0]) * y.shape[2]! + j + p[2]![0]) * c + ch] = x.data[(i * w + j) * c + ch]!;
  }
  return y;
}

function concatChannels(a: Arr, b: Arr): Arr {
  const ca = a.shape.at(-1)!;
  const cb = b.shape.at(-1)!;
  const pixels = a.data.length / ca;
  const y = arr([...a.shape.slice(0, -1), ca + cb]);
  for (let p = 0; p < pixels; p++) {
    for (let i = 0; i < ca; i++) y.data[p * (ca + cb) + i] = a.data[p * ca + i]!;
    for (let i = 0; i < cb; i++) y.data[p * (ca + cb) + ca + i] = b.data[p * cb + i]!;
  }
  return y;
}

function softmax(x: Arr): Arr {
  const max = Math.max(...x.data);
  const e = x.data.map((v) => Math.exp(v - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return { shape: [...x.shape], data: e.map((v) => v / sum) };
}

const ACTIVATE: Record<number, (v: number) => number> = {
  [Act.NONE]: (v) => v,
  [Act.RELU]: (v) => Math.max(0, v),
  [Act.RELU6]: (v) => Math.min(6, Math.max(0, v)),
  [Act.RELU_N1_TO_1]: (v) => Math.min(1, Math.max(-1, v)),
  [Act.TANH]: Math.tanh,
};

// ---------------------------------------------------------------------------------------------
// Synthetic models: every supported operator as a branch off one input, in four numeric forms.

type Variant = 'float32' | 'float16' | 'int8 per-channel' | 'uint8 per-tensor';

/** IEEE half bits, round to nearest even (normal range). */
function toHalf(v: number): number {
  const bits = new Uint32Array(new Float32Array([v]).buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  const mant = bits & 0x7fffff;
  if (exp <= 0) return sign;
  let h = sign | (exp << 10) | (mant >> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return h;
}

function fromHalf(h: number): number {
  const exp = (h >> 10) & 0x1f;
  return (h & 0x8000 ? -1 : 1) * (exp === 0 ? (h & 0x3ff) * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** (exp - 15));
}

interface Quant {
  scale: number;
  zeroPoint: number;
}

/** Asymmetric 8-bit parameters covering [min, max] (and 0). */
function rangeQuant(min: number, max: number, type: 'uint8' | 'int8'): Quant {
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const scale = Math.fround((hi - lo) / 255 || 1 / 255);
  const qmin = type === 'uint8' ? 0 : -128;
  return { scale, zeroPoint: Math.min(qmin + 255, Math.max(qmin, Math.round(qmin - lo / scale))) };
}

/** Rounds to the grid like onnxruntime's QuantizeLinear (half to even), saturating. */
function fakeQuant(v: number, q: Quant, type: 'uint8' | 'int8'): number {
  const r = v / q.scale;
  const f = Math.floor(r);
  const rounded = r - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(r);
  const qmin = type === 'uint8' ? 0 : -128;
  return (Math.min(qmin + 255, Math.max(qmin, rounded + q.zeroPoint)) - q.zeroPoint) * q.scale;
}

/** Builds the model and, alongside, the values each tensor must take: the reference. */
class Synthetic {
  readonly g = new TfliteGraph();
  readonly ref = new Map<number, Arr>();
  readonly quant = new Map<number, Quant>();
  readonly rng = createRng(42);
  readonly outputs: number[] = [];

  constructor(readonly variant: Variant) {}

  private get type(): 'uint8' | 'int8' | undefined {
    return this.variant === 'int8 per-channel' ? 'int8' : this.variant === 'uint8 per-tensor' ? 'uint8' : undefined;
  }

  random(shape: number[], lo = -1, hi = 1): Arr {
    return arr(shape, () => lo + (hi - lo) * this.rng());
  }

  /** A computed tensor holding `value` (rounded to its grid when quantized). */
  act(name: string, value: Arr): number {
    const type = this.type;
    if (!type) {
      const i = this.g.tensor({ name, shape: value.shape, type: TensorType.FLOAT32 });
      this.ref.set(i, value);
      return i;
    }
    const q = rangeQuant(Math.min(...value.data), Math.max(...value.data), type);
    const i = this.g.tensor({ name, shape: [], type: type === 'int8' ? TensorType.INT8 : TensorType.UINT8, quant: { scale: [q.scale], zeroPoint: [q.zeroPoint] } });
    this.ref.set(i, map(value, (v) => fakeQuant(v, q, type)));
    this.quant.set(i, q);
    return i;
  }

  /** Weights (OHWI, [1,kh,kw,CM] or [units,in]) with per-channel scales along `axis` for int8; returns the tensor and the values the reference uses. */
  weights(name: string, w: Arr, axis: number): { index: number; values: Arr; scales: number[] } {
    const shape = w.shape;
    switch (this.variant) {
      case 'float32':
        return { index: this.g.tensor({ name, shape, type: TensorType.FLOAT32, data: Float32Array.from(w.data) }), values: map(w, Math.fround), scales: [] };
      case 'float16': {
        const half = Uint16Array.from(w.data, toHalf);
        const stored = this.g.tensor({ name: `${name}/float16`, shape, type: TensorType.FLOAT16, data: half });
        const index = this.g.tensor({ name, shape, type: TensorType.FLOAT32 });
        this.g.op(Op.DEQUANTIZE, [stored], [index]);
        return { index, values: { shape, data: Float64Array.from(half, fromHalf) }, scales: [] };
      }
      case 'int8 per-channel': {
        const channels = shape[axis]!;
        const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
        const ch = (k: number): number => Math.floor(k / inner) % channels;
        const scales = Array.from({ length: channels }, (_, c) => Math.fround(Math.max(...w.data.filter((_, k) => ch(k) === c).map(Math.abs)) / 127));
        const q = Int8Array.from(w.data, (v, k) => Math.round(v / scales[ch(k)]!));
        const index = this.g.tensor({ name, shape, type: TensorType.INT8, data: q, quant: { scale: scales, zeroPoint: scales.map(() => 0), axis } });
        return { index, values: { shape, data: Float64Array.from(q, (v, k) => v * scales[ch(k)]!) }, scales };
      }
      case 'uint8 per-tensor': {
        const p = rangeQuant(Math.min(...w.data), Math.max(...w.data), 'uint8');
        const q = Uint8Array.from(w.data, (v) => Math.min(255, Math.max(0, Math.round(v / p.scale) + p.zeroPoint)));
        const index = this.g.tensor({ name, shape, type: TensorType.UINT8, data: q, quant: { scale: [p.scale], zeroPoint: [p.zeroPoint] } });
        return { index, values: { shape, data: Float64Array.from(q, (v) => (v - p.zeroPoint) * p.scale) }, scales: [p.scale] };
      }
    }
  }

  /** A bias: int32 at scale input x weight (per channel) when quantized. */
  bias(name: string, b: Arr, input: number, wScales: number[]): { index: number; values: Arr } {
    if (this.variant === 'float32' || this.variant === 'float16') {
      return { index: this.g.tensor({ name, shape: b.shape, type: TensorType.FLOAT32, data: Float32Array.from(b.data) }), values: map(b, Math.fround) };
    }
    const sIn = this.quant.get(input)!.scale;
    const scales = Array.from({ length: b.data.length }, (_, c) => Math.fround(sIn * (wScales[c] ?? wScales[0]!)));
    const q = Int32Array.from(b.data, (v, c) => Math.round(v / scales[c]!));
    const index = this.g.tensor({ name, shape: b.shape, type: TensorType.INT32, data: q, quant: { scale: scales, zeroPoint: scales.map(() => 0), axis: 0 } });
    return { index, values: { shape: b.shape, data: Float64Array.from(q, (v, c) => v * scales[c]!) } };
  }

  /** A float constant operand (shapes, axes: int32). */
  ints(name: string, values: number[]): number {
    return this.g.tensor({ name, shape: [values.length], type: TensorType.INT32, data: Int32Array.from(values) });
  }

  /** A model output: int8 models dequantize it to float, as converters write them. */
  output(i: number): void {
    if (this.variant !== 'int8 per-channel') return void this.outputs.push(i);
    const f = this.g.tensor({ name: `${this.g.tensors[i]!.name}/float`, shape: [], type: TensorType.FLOAT32 });
    this.g.op(Op.DEQUANTIZE, [i], [f]);
    this.ref.set(f, this.ref.get(i)!);
    this.quant.set(f, this.quant.get(i)!);
    this.outputs.push(f);
  }
}

/** Every supported operator on a [1,9,11,3] input: odd sizes give TF's asymmetric SAME padding. */
function syntheticModel(variant: Variant): { bytes: Uint8Array; input: Arr; s: Synthetic } {
  const s = new Synthetic(variant);
  const g = s.g;
  const shape = [1, 9, 11, 3];
  let input: Arr;
  let x: number;
  let inputIndex: number;
  if (variant === 'int8 per-channel') {
    // Float in, QUANTIZE to int8 first, as TFLite's full-integer models with float I/O do.
    input = s.random(shape, -3, 7);
    inputIndex = g.tensor({ name: 'image', shape, type: TensorType.FLOAT32 });
    x = s.act('image/int8', input);
    g.op(Op.QUANTIZE, [inputIndex], [x]);
  } else if (variant === 'uint8 per-tensor') {
    const q = rangeQuant(-3, 7, 'uint8');
    // Pixel-like bytes on the input's grid.
    input = arr(shape, () => (Math.floor(s.rng() * 256) - q.zeroPoint) * q.scale);
    inputIndex = x = g.tensor({ name: 'image', shape, type: TensorType.UINT8, quant: { scale: [q.scale], zeroPoint: [q.zeroPoint] } });
    s.ref.set(x, input);
    s.quant.set(x, q);
  } else {
    input = s.random(shape, -3, 7);
    inputIndex = x = g.tensor({ name: 'image', shape, type: TensorType.FLOAT32 });
  }
  const X = s.ref.get(x) ?? input;
  const activated = (a: Act, v: Arr): Arr => map(v, ACTIVATE[a]!);

  // CONV_2D 3x3 stride 2 SAME + RELU6; 2x2 dilation 2 VALID + RELU.
  for (const [name, o, k, stride, dil, padding, act] of [['conv_a', 4, 3, 2, 1, 'same', Act.RELU6], ['conv_b', 5, 2, 1, 2, 'valid', Act.RELU]] as const) {
    const w = s.weights(`${name}/weights`, s.random([o, k, k, 3], -0.5, 0.5), 0);
    const b = s.bias(`${name}/bias`, s.random([o], -0.5, 0.5), x, w.scales);
    const spec: ConvSpec = { stride: [stride, stride], dilation: [dil, dil], padding };
    const y = s.act(name, activated(act, conv(X, w.values, b.values, spec)));
    g.op(Op.CONV_2D, [x, w.index, b.index], [y], [Opt.Conv2DOptions, new Conv2DOptionsT(padding === 'same' ? Padding.SAME : Padding.VALID, stride, stride, act, dil, dil)]);
    s.output(y);
  }
  // DEPTHWISE_CONV_2D 3x3, multiplier 2, SAME, RELU_N1_TO_1.
  {
    const w = s.weights('dw/weights', s.random([1, 3, 3, 6], -0.5, 0.5), 3);
    const b = s.bias('dw/bias', s.random([6], -0.5, 0.5), x, w.scales);
    const y = s.act('dw', activated(Act.RELU_N1_TO_1, conv(X, w.values, b.values, { stride: [1, 1], padding: 'same' }, true)));
    g.op(Op.DEPTHWISE_CONV_2D, [x, w.index, b.index], [y], [Opt.DepthwiseConv2DOptions, new DepthwiseConv2DOptionsT(Padding.SAME, 1, 1, 2, Act.RELU_N1_TO_1)]);
    s.output(y);
  }
  // MEAN -> FULLY_CONNECTED (+RELU) -> SOFTMAX (beta 1.5): a classifier's end.
  const meanAxes = s.ints('mean/axes', [1, 2]);
  const m = s.act('mean', spatialMean(X, false));
  g.op(Op.MEAN, [x, meanAxes], [m], [Opt.ReducerOptions, new ReducerOptionsT(false)]);
  const fw = s.weights('fc/weights', s.random([5, 3], -1, 1), 0);
  const fb = s.bias('fc/bias', s.random([5], -0.5, 0.5), m, fw.scales);
  const fc = s.act('fc', activated(Act.RELU, fullyConnected(s.ref.get(m)!, fw.values, fb.values)));
  g.op(Op.FULLY_CONNECTED, [m, fw.index, fb.index], [fc], [Opt.FullyConnectedOptions, new FullyConnectedOptionsT(Act.RELU)]);
  const sm = s.act('softmax', softmax(map(s.ref.get(fc)!, (v) => v * 1.5)));
  g.op(Op.SOFTMAX, [fc], [sm], [Opt.SoftmaxOptions, new SoftmaxOptionsT(1.5)]);
  s.output(sm);
  // ADD a per-channel constant (+RELU), SUB a constant, MUL by itself.
  // Constant operands are stored like weights (quantized, or float16 behind a DEQUANTIZE).
  const addC = s.weights('add/c', arr([3], (i) => [0.5, -1, 2][i]!), 0);
  const a = s.act('add', activated(Act.RELU, zip(X, addC.values, (p, q) => p + q)));
  g.op(Op.ADD, [x, addC.index], [a], [Opt.AddOptions, new AddOptionsT(Act.RELU)]);
  s.output(a);
  const subC = s.weights('sub/c', arr([1, 1, 1, 3], (i) => [1, 0.25, -2][i]!), 3);
  const sub = s.act('sub', zip(X, subC.values, (p, q) => p - q));
  g.op(Op.SUB, [x, subC.index], [sub], [Opt.SubOptions, new SubOptionsT(Act.NONE)]);
  s.output(sub);
  const mul = s.act('mul', zip(X, X, (p, q) => p * q));
  g.op(Op.MUL, [x, x], [mul], [Opt.MulOptions, new MulOptionsT(Act.NONE)]);
  s.output(mul);
  // Pools.
  const ap = s.act('avgpool', pool(X, 'avg', [3, 3], [2, 2], 'same'));
  g.op(Op.AVERAGE_POOL_2D, [x], [ap], [Opt.Pool2DOptions, new Pool2DOptionsT(Padding.SAME, 2, 2, 3, 3, Act.NONE)]);
  s.output(ap);
  const mp = s.act('maxpool', pool(X, 'max', [2, 2], [2, 2], 'valid'));
  g.op(Op.MAX_POOL_2D, [x], [mp], [Opt.Pool2DOptions, new Pool2DOptionsT(Padding.VALID, 2, 2, 2, 2, Act.NONE)]);
  s.output(mp);
  // MEAN kept -> RESHAPE [1, 3] and SQUEEZE [1, 2].
  const mk = s.act('mean_kept', spatialMean(X, true));
  g.op(Op.MEAN, [x, meanAxes], [mk], [Opt.ReducerOptions, new ReducerOptionsT(true)]);
  const r = s.act('reshape', { shape: [1, 3], data: s.ref.get(mk)!.data });
  g.op(Op.RESHAPE, [mk, s.ints('reshape/shape', [1, 3])], [r]);
  s.output(r);
  const sq = s.act('squeeze', { shape: [1, 3], data: s.ref.get(mk)!.data });
  g.op(Op.SQUEEZE, [mk], [sq], [Opt.SqueezeOptions, new SqueezeOptionsT([1, 2])]);
  s.output(sq);
  // CONCATENATION of the input and the ADD branch (other scales when quantized), PAD.
  const cc = s.act('concat', concatChannels(X, s.ref.get(a)!));
  g.op(Op.CONCATENATION, [x, a], [cc], [Opt.ConcatenationOptions, new ConcatenationOptionsT(-1, Act.NONE)]);
  s.output(cc);
  const pd = s.act('pad', pad(X, [[0, 0], [1, 2], [0, 1], [0, 0]]));
  g.op(Op.PAD, [x, s.ints('pad/paddings', [0, 0, 1, 2, 0, 1, 0, 0])], [pd]);
  s.output(pd);
  // Elementwise activations.
  for (const [name, op, f] of [
    ['logistic', Op.LOGISTIC, (v: number) => 1 / (1 + Math.exp(-v))],
    ['hard_swish', Op.HARD_SWISH, (v: number) => (v * Math.min(6, Math.max(0, v + 3))) / 6],
    ['relu', Op.RELU, ACTIVATE[Act.RELU]!],
    ['relu6', Op.RELU6, ACTIVATE[Act.RELU6]!],
  ] as const) {
    const y = s.act(name, map(X, f));
    g.op(op, [x], [y]);
    s.output(y);
  }
  return { bytes: g.bytes([inputIndex], s.outputs), input, s };
}

async function run(model: ModelProto, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(encodeModel(model));
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

describe('TFLite import: constants stored after the FlatBuffer', () => {
  it('reads offset buffers (models over 2 GB keep them there) from a Node Buffer as from inline data', () => {
    const { bytes } = syntheticModel('float32');
    const inline = convertTflite(readTflite(bytes, 'inline.tflite'));
    const moveOut = (at: (i: number) => bigint) =>
      rewriteTflite(bytes, (m) => {
        m.buffers.forEach((b, i) => {
          if (b.data.length === 0) return;
          b.size = BigInt(b.data.length);
          b.offset = at(i);
          b.data = [];
        });
      });
    const datas = Model.getRootAsModel(new flatbuffers.ByteBuffer(bytes)).unpack().buffers.map((b) => Uint8Array.from(b.data));
    // Offsets are absolute, so lay the tail out after a first pass has fixed the FlatBuffer's length.
    const length = moveOut(() => 1n << 40n).length;
    const starts = datas.map((_, i) => BigInt(length + datas.slice(0, i).reduce((n, d) => n + d.length, 0)));
    const head = moveOut((i) => starts[i]!);
    assert.equal(head.length, length);
    const file = Buffer.concat([head, ...datas]);
    const outside = convertTflite(readTflite(file, 'outside.tflite'));
    const values = (m: ModelProto): string[] => (m.graph?.initializer ?? []).map((t) => `${t.name}:${Buffer.from(t.rawData ?? new Uint8Array()).toString('hex')}:${(t.floatData ?? []).join(',')}`);
    assert.ok(datas.filter((d) => d.length > 0).length >= 5, 'the model has constants');
    assert.deepEqual(values(outside.model), values(inline.model));
  });
});

describe('TFLite import: every operator against a JS reference', () => {
  for (const variant of ['float32', 'float16', 'int8 per-channel', 'uint8 per-tensor'] as const) {
    it(`${variant}: ${SUPPORTED_OPERATORS.length} operators, fused activations`, async () => {
      const { bytes, input, s } = syntheticModel(variant);
      const c = convertTflite(readTflite(bytes, 'synthetic.tflite'));
      assert.deepEqual(c.inputSize, [9, 11]);
      assert.equal(c.outputs.length, s.outputs.length);
      const got = await run(c.model, { [c.input]: new ort.Tensor('float32', Float32Array.from(input.data), [1, 9, 11, 3]) });
      const quantized = variant.includes('8');
      s.outputs.forEach((index, k) => {
        const name = c.outputs[k]!;
        const want = s.ref.get(index)!;
        const data = got[name]!.data as Float32Array;
        assert.equal(data.length, want.data.length, `${name}: size`);
        let worst = 0;
        let exact = 0;
        const step = s.quant.get(index)?.scale ?? 0;
        for (let i = 0; i < data.length; i++) {
          const d = Math.abs(data[i]! - want.data[i]!);
          worst = Math.max(worst, d);
          if (d <= step / 2 + 1e-6) exact++;
        }
        if (quantized) {
          // Integer kernels may round a tie the other way: at most one step, rarely.
          assert.ok(worst <= step * 1.001, `${name}: max |diff| ${worst} over one quantization step ${step}`);
          assert.ok(exact / data.length >= 0.9, `${name}: only ${exact} of ${data.length} on the same grid point`);
        } else {
          const scale = Math.max(1, ...want.data.map(Math.abs));
          assert.ok(worst <= 1e-4 * scale, `${name}: max |diff| ${worst}`);
        }
      });
      // Weights stay as compact as the file has them.
      const types = new Set(c.model.graph!.initializer!.map((t) => t.dataType));
      if (variant === 'float16') assert.ok(types.has(DataType.FLOAT16));
      if (variant === 'int8 per-channel') assert.ok(types.has(DataType.INT8) && types.has(DataType.INT32));
      if (variant === 'uint8 per-tensor') assert.ok(types.has(DataType.UINT8));
      assertStandard(c.model);
    });
  }

  it('the converted graph takes any batch: 3 images give the rows of 3 single runs', async () => {
    const { bytes, s } = syntheticModel('uint8 per-tensor');
    const c = convertTflite(readTflite(bytes, 'synthetic.tflite'));
    assert.equal(c.model.graph!.input![0]!.type!.tensorType!.shape!.dim![0]!.dimParam, 'batch');
    const images = [0, 1, 2].map((k) => s.random([1, 9, 11, 3], -3, 7).data);
    const session = await ort.InferenceSession.create(encodeModel(c.model));
    const batch = await session.run({ [c.input]: new ort.Tensor('float32', Float32Array.from(images.flatMap((x) => [...x])), [3, 9, 11, 3]) });
    for (const [k, x] of images.entries()) {
      const one = await session.run({ [c.input]: new ort.Tensor('float32', Float32Array.from(x), [1, 9, 11, 3]) });
      for (const name of c.outputs) {
        const n = (one[name]!.data as Float32Array).length;
        assert.equal(Number(batch[name]!.dims[0]), 3, name);
        assert.deepEqual([...(batch[name]!.data as Float32Array).subarray(k * n, (k + 1) * n)], [...(one[name]!.data as Float32Array)], `${name} row ${k}`);
      }
    }
    await session.release();
  });
});

/** Only standard ONNX operators (default domain), so any ONNX runtime takes the file. */
function assertStandard(model: ModelProto): void {
  assert.deepEqual(model.opsetImport.map((o) => [o.domain ?? '', Number(o.version)]), [['', 13]]);
  for (const n of model.graph!.node!) assert.ok(!n.domain, `${n.opType} in domain ${n.domain}`);
}

// ---------------------------------------------------------------------------------------------

describe('TFLite import: the bundled MobileNet-EdgeTPU on real photos', () => {
  it('classifies the fixture photos with ImageNet labels (index 0 background) and gives 1280 features', async () => {
    const cache = join(dir, 'cache-edgetpu');
    const backbone = await Backbone.load('mobilenet_edgetpu', { cacheDir: cache });
    try {
      assert.equal(backbone.labels?.length, 1001);
      assert.equal(backbone.labels?.[0], 'background');
      assert.equal(backbone.source.kind, 'tflite');
      const images = await Promise.all(photos.map((p) => loadRgb(p, backbone.preprocessing)));
      const probs = await backbone.classify(images);
      const footwear = /sandal|clog|Loafer|running shoe|cowboy boot|knee pad/;
      photos.forEach((p, i) => {
        // The softmax's uint8 output: multiples of 1/256 (so they need not add up to 1).
        const row = [...probs.subarray(i * 1001, (i + 1) * 1001)];
        assert.ok(row.every((v) => Number.isInteger(v * 256)) && Math.max(...row) > 0, p);
        const top = row.map((v, k) => [v, k] as const).sort((a, b) => b[0] - a[0]).slice(0, 3).map(([, k]) => backbone.labels![k]!);
        if (p.includes('shoe')) assert.match(top.join(' | '), footwear, `${p}: ${top.join(' | ')}`);
      });
      const f = await backbone.features(images);
      assert.equal(f.dims, 1280);
      assert.ok(f.data.every((v) => v >= 0 && Number.isFinite(v)), 'pooled ReLU map');
      // Batch 3 equals three single runs.
      const three = await backbone.features(images.slice(0, 3));
      for (let i = 0; i < 3; i++) assert.deepEqual([...three.data.subarray(i * 1280, (i + 1) * 1280)], [...(await backbone.features([images[i]!])).data]);
    } finally {
      await backbone.release();
    }
    // Converted once: <cache>/models/tflite-<sha256>.onnx, uint8 weights behind DequantizeLinear.
    const files = await readdir(join(cache, 'models'));
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^tflite-[0-9a-f]{64}\.onnx$/);
    const onnxPath = join(cache, 'models', files[0]!);
    assert.ok((await stat(onnxPath)).size < 1.1 * (await stat(EDGETPU)).size, 'weights stay 8-bit');
    const model = await readModel(onnxPath);
    assertStandard(model);
    assert.equal(model.graph!.input![0]!.type!.tensorType!.shape!.dim![0]!.dimParam, 'batch');
    assert.ok(model.graph!.initializer!.filter((t) => t.dataType === DataType.UINT8).length >= 70);
  });

  it('resolves as kind tflite, cached by content; inspect-style cut is the 7x7x1280 map', async () => {
    const cache = join(dir, 'cache-resolve');
    const a = await resolveSource(EDGETPU, { cacheDir: cache });
    assert.equal(a.kind, 'tflite');
    assert.equal(a.tflite?.sha256, getEntry('mobilenet_edgetpu').sha256);
    assert.deepEqual(a.tflite?.probabilities, ['MobilenetEdgeTPU/Predictions/Softmax']);
    assert.equal(a.tflite?.labels?.length, 1001, 'labels.txt beside the bundled file');
    const mtime = (await stat(a.path)).mtimeMs;
    const b = await resolveSource('mobilenet_edgetpu', { cacheDir: cache });
    assert.equal(b.path, a.path);
    assert.equal(b.sha256, a.sha256);
    assert.equal((await stat(a.path)).mtimeMs, mtime, 'not converted again');
    const model = await readModel(a.path);
    const dq = model.graph!.node!.find((n) => n.output?.[0] === 'MobilenetEdgeTPU/Conv_1/Relu');
    assert.equal(dq?.opType, 'DequantizeLinear');
  });
});

// ---------------------------------------------------------------------------------------------

/** A tiny float classifier: MEAN -> FULLY_CONNECTED -> SOFTMAX over 3 classes. */
function tinyClassifier(input: { type: TensorType; quant?: { scale: number[]; zeroPoint: number[] } } = { type: TensorType.FLOAT32 }, metadata?: Uint8Array): Uint8Array {
  const g = new TfliteGraph();
  const x = g.tensor({ name: 'image', shape: [1, 8, 8, 3], ...input });
  let f = x;
  if (input.quant) {
    f = g.tensor({ name: 'image/float', shape: [1, 8, 8, 3], type: TensorType.FLOAT32 });
    g.op(Op.DEQUANTIZE, [x], [f]);
  }
  const m = g.tensor({ name: 'mean', shape: [1, 3], type: TensorType.FLOAT32 });
  g.op(Op.MEAN, [f, g.tensor({ name: 'axes', shape: [2], type: TensorType.INT32, data: Int32Array.of(1, 2) })], [m], [Opt.ReducerOptions, new ReducerOptionsT(false)]);
  const logits = g.tensor({ name: 'logits', shape: [1, 3], type: TensorType.FLOAT32 });
  const w = g.tensor({ name: 'w', shape: [3, 3], type: TensorType.FLOAT32, data: Float32Array.of(4, 0, 0, 0, 4, 0, 0, 0, 4) });
  g.op(Op.FULLY_CONNECTED, [m, w, -1], [logits], [Opt.FullyConnectedOptions, new FullyConnectedOptionsT()]);
  const p = g.tensor({ name: 'probabilities', shape: [1, 3], type: TensorType.FLOAT32 });
  g.op(Op.SOFTMAX, [logits], [p], [Opt.SoftmaxOptions, new SoftmaxOptionsT(1)]);
  return g.bytes([x], [p], metadata);
}

describe('TFLite classifiers for predict: labels and preprocessing from the file', () => {
  it('MediaPipe Model Maker style: labels from the metadata zip, normalization from the metadata', async () => {
    const file = join(dir, 'maker.tflite');
    await writeFile(file, withZip(tinyClassifier(undefined, metadataBytes('labels.txt', { mean: [0], std: [255] })), { 'labels.txt': 'red\ngreen\nblue\n' }));
    const r = await importTflite(file, { cacheDir: join(dir, 'cache-maker') });
    assert.deepEqual(r.labels, ['red', 'green', 'blue']);
    assert.deepEqual(r.preprocessing, { scale: 1, mean: [0, 0, 0], std: [255, 255, 255] });
    const predictor = await openPredictor(file, { cacheDir: join(dir, 'cache-maker') });
    assert.equal(predictor.kind, 'tflite');
    const rows = [];
    for await (const p of streamPredictions(predictor.model, photos, { top: 3 })) rows.push(p);
    await predictor.release();
    assert.equal(rows.length, 4);
    for (const row of rows) {
      // Mean colour through an identity-like head: the top class is the dominant channel.
      assert.deepEqual(row.top.map((l) => l.label).sort(), ['blue', 'green', 'red']);
      assert.ok(row.top[0]!.probability > row.top[2]!.probability);
      assert.ok(Math.abs(row.top.reduce((a, l) => a + l.probability, 0) - 1) < 1e-5);
    }
  });

  it('uint8 input: (p - zero) * scale from its quantization; Teachable Machine labels.txt ("0 name") beside it', async () => {
    const folder = join(dir, 'tm');
    await mkdir(folder);
    await writeFile(join(folder, 'model.tflite'), tinyClassifier({ type: TensorType.UINT8, quant: { scale: [1 / 128], zeroPoint: [128] } }));
    await writeFile(join(folder, 'labels.txt'), '0 hat\n1 shoe\n2 dress\n');
    const r = await importTflite(join(folder, 'model.tflite'), { cacheDir: join(dir, 'cache-tm') });
    assert.deepEqual(r.labels, ['hat', 'shoe', 'dress']);
    assert.deepEqual(r.preprocessing, { scale: 1 / 128, mean: [1, 1, 1], std: [1, 1, 1] });
    // A float Teachable Machine model takes its [-1, 1] of the centered square.
    await writeFile(join(folder, 'model_unquant.tflite'), tinyClassifier());
    const f = await importTflite(join(folder, 'model_unquant.tflite'), { cacheDir: join(dir, 'cache-tm') });
    assert.deepEqual(f.preprocessing, { scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], cropRatio: 1 });
    // Without labels, predict says what is missing; --scale and friends override the defaults.
    await rm(join(folder, 'labels.txt'));
    await assertOneLine(openPredictor(join(folder, 'model.tflite'), { cacheDir: join(dir, 'cache-tm') }), /model\.tflite: no class names .*put the labels, one per line, in labels\.txt next to it/);
    const backbone = await Backbone.load(join(folder, 'model_unquant.tflite'), { cacheDir: join(dir, 'cache-tm'), preprocessing: { scale: 2 } });
    assert.equal(backbone.preprocessing.scale, 2);
    assert.deepEqual(backbone.preprocessing.mean, [0, 0, 0], 'unknown float model: [0, 1] like TF.js');
    await backbone.release();
  });
});

// ---------------------------------------------------------------------------------------------

async function assertOneLine(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof HeadswapError, String(err));
    assert.ok(!err.message.includes('\n'), 'one line');
    assert.match(err.message, pattern);
    return true;
  });
}

async function assertCacheEmpty(cache: string): Promise<void> {
  assert.deepEqual(await readdir(join(cache, 'models')).catch(() => [] as string[]), []);
}

describe('TFLite import: bad input is one line naming the file, nothing cached', () => {
  const cases: [string, () => Promise<Uint8Array>, RegExp][] = [
    ['truncated', async () => (await readFile(EDGETPU)).subarray(0, 2_000_000), /truncated\.tflite: truncated or damaged \(.*\); download or copy the file again/],
    ['not a FlatBuffer', () => readFile(photos[0]!), /not a FlatBuffer\.tflite: not a TensorFlow Lite model \(no "TFL3" FlatBuffer identifier\); give a \.tflite file/],
    ['too short', async () => new Uint8Array(5), /too short\.tflite: 5 bytes, too short for a TensorFlow Lite model/],
    ['no image input', async () => {
      const g = new TfliteGraph();
      const x = g.tensor({ name: 'features', shape: [1, 128], type: TensorType.FLOAT32 });
      const y = g.tensor({ name: 'y', shape: [1, 128], type: TensorType.FLOAT32 });
      g.op(Op.RELU, [x], [y]);
      return g.bytes([x], [y]);
    }, /no image input\.tflite: input 'features' is FLOAT32 \[1,128\], not an image; headswap imports image models with one 4-d \[1,H,W,3\] input/],
    ['unsupported operators', async () => {
      const g = new TfliteGraph();
      const x = g.tensor({ name: 'image', shape: [1, 8, 8, 3], type: TensorType.FLOAT32 });
      const t = (name: string): number => g.tensor({ name, shape: [], type: TensorType.FLOAT32 });
      const [a, b, c, d, e] = ['resize_a', 'resize_b', 'detect', 'signed', 'gelu'].map(t) as [number, number, number, number, number];
      g.op(Op.RESIZE_BILINEAR, [x], [a]);
      g.op(Op.RESIZE_BILINEAR, [a], [b]);
      g.op(Op.CUSTOM, [b], [c], undefined, 'TFLite_Detection_PostProcess');
      g.op(Op.CONV_2D, [c, g.tensor({ name: 'w', shape: [1, 1, 1, 3], type: TensorType.FLOAT32, data: new Float32Array(3) }), -1], [d], [Opt.Conv2DOptions, new Conv2DOptionsT(Padding.SAME, 1, 1, Act.SIGN_BIT)]);
      g.op(Op.GELU, [d], [e]);
      return g.bytes([x], [e]);
    }, /unsupported operators\.tflite: unsupported operators: RESIZE_BILINEAR \(2x, e\.g\. 'resize_a'\), CUSTOM 'TFLite_Detection_PostProcess' \(1x, e\.g\. 'detect'\), CONV_2D with fused SIGN_BIT \(1x, e\.g\. 'signed'\), GELU \(1x, e\.g\. 'gelu'\); headswap imports ADD, SUB, MUL, CONV_2D/],
  ];
  for (const [name, make, pattern] of cases) {
    it(`${name}: one line, nothing in the cache`, async () => {
      const file = join(dir, `${name}.tflite`);
      await writeFile(file, await make());
      const cache = join(dir, 'cache-bad', name.replace(/ /g, '-'));
      await assertOneLine(importTflite(file, { cacheDir: cache }), pattern);
      await assertCacheEmpty(cache);
    });
  }

  it('a missing file, and a URL that serves no model: one line, the download not kept', async () => {
    await assertOneLine(importTflite(join(dir, 'nope.tflite')), /nope\.tflite not found; give a \.tflite file or an http\(s\) URL of one/);
    const server: TestServer = await startServer({ '/bad.tflite': (_req, res) => void res.writeHead(200).end('<html>not a model</html>') });
    const cache = join(dir, 'cache-bad-url');
    try {
      await assertOneLine(importTflite(`${server.url}/bad.tflite`, { cacheDir: cache }), /http:\/\/127\.0\.0\.1:\d+\/bad\.tflite: not a TensorFlow Lite model/);
    } finally {
      await server.close();
    }
    await assertCacheEmpty(cache);
  });
});

describe('TFLite import: URL and CLI', () => {
  it('fetches a .tflite URL once into the cache; the same bytes as a file give the same ONNX', async () => {
    const bytes = tinyClassifier();
    const server: TestServer = await startServer({ '/m/classifier.tflite': (_req, res) => void res.writeHead(200, { 'content-length': bytes.length }).end(bytes) });
    const cache = join(dir, 'cache-url');
    try {
      const r = await resolveSource(`${server.url}/m/classifier.tflite`, { cacheDir: cache });
      assert.equal(r.kind, 'tflite');
      const again = await resolveSource(`${server.url}/m/classifier.tflite`, { cacheDir: cache });
      assert.equal(again.path, r.path);
      assert.equal(server.requests.length, 1, 'served from the cache');
      await writeFile(join(dir, 'classifier.tflite'), bytes);
      assert.equal((await importTflite(join(dir, 'classifier.tflite'), { cacheDir: cache })).onnxPath, r.path);
    } finally {
      await server.close();
    }
  });

  it('headswap import x.tflite out.onnx writes the converted graph', async () => {
    const out = join(dir, 'cli', 'edgetpu.onnx');
    await mkdir(join(dir, 'cli'), { recursive: true });
    const printed = await runImport([EDGETPU, out], join(dir, 'cache-edgetpu'));
    assert.match(printed, /edgetpu\.onnx: TensorFlow Lite model converted to ONNX; input 'input' float32 \[N,224,224,3\] NHWC .*outputs 'MobilenetEdgeTPU\/Predictions\/Softmax'; 1001 labels/);
    const model = await readModel(out);
    // The graph as the cache has it runs behind the pixels prefix.
    addPixelsPrefix(model, getEntry('mobilenet_edgetpu').preprocessing);
    const image = await loadRgb(photos[2]!, getEntry('mobilenet_edgetpu').preprocessing);
    const r = await run(model, { [PIXELS]: new ort.Tensor('uint8', image.data, [1, 224, 224, 3]) });
    assert.deepEqual(r['MobilenetEdgeTPU/Predictions/Softmax']!.dims, [1, 1001]);
  });
});
