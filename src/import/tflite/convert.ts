import { HeadswapError } from '../../errors.js';
import { GraphBuilder, transposeData, type BinaryOp, type Value, type Weights } from '../../onnx/builder.js';
import { FEATURES, PIXELS, PROBABILITIES } from '../../onnx/edit.js';
import { summarize, unsupportedError, type Converted } from '../tfjs/common.js';
import type { TfliteModel, TfliteOperator, TfliteTensor } from './read.js';
import { ActivationFunctionType, BuiltinOperator, TensorType } from './schema/tflite_generated.js';

/** TFLite operators the importer converts (as float32, float16, or uint8/int8 quantized). */
export const SUPPORTED_OPERATORS = [
  'ADD', 'SUB', 'MUL', 'CONV_2D', 'DEPTHWISE_CONV_2D', 'FULLY_CONNECTED', 'AVERAGE_POOL_2D', 'MAX_POOL_2D',
  'MEAN', 'RESHAPE', 'SQUEEZE', 'CONCATENATION', 'PAD', 'SOFTMAX', 'LOGISTIC', 'HARD_SWISH', 'RELU', 'RELU6',
  'QUANTIZE', 'DEQUANTIZE',
] as const;

const SUPPORTED = new Set<string>(SUPPORTED_OPERATORS);
const FUSED = new Set([ActivationFunctionType.NONE, ActivationFunctionType.RELU, ActivationFunctionType.RELU_N1_TO_1, ActivationFunctionType.RELU6, ActivationFunctionType.TANH]);
/** Types a computed tensor may have: float, or 8-bit quantized. */
const ACTIVATION_TYPES = new Set([TensorType.FLOAT32, TensorType.UINT8, TensorType.INT8]);
/** Types of constants: weights (also float16 and int32 biases), shapes, axes and paddings (int32, int64). */
const CONSTANT_TYPES = new Set([TensorType.FLOAT32, TensorType.FLOAT16, TensorType.UINT8, TensorType.INT8, TensorType.INT32, TensorType.INT64]);
const BINARY: Partial<Record<BuiltinOperator, BinaryOp>> = { [BuiltinOperator.ADD]: 'Add', [BuiltinOperator.SUB]: 'Sub', [BuiltinOperator.MUL]: 'Mul' };
const BYTES: Partial<Record<TensorType, number>> = { [TensorType.FLOAT32]: 4, [TensorType.FLOAT16]: 2, [TensorType.UINT8]: 1, [TensorType.INT8]: 1, [TensorType.INT32]: 4, [TensorType.INT64]: 8 };
/** Ops that only move data: a softmax's output stays class probabilities through them. */
const PASS_PROBABILITIES = new Set([BuiltinOperator.RESHAPE, BuiltinOperator.SQUEEZE, BuiltinOperator.QUANTIZE, BuiltinOperator.DEQUANTIZE]);

/** Metadata key of the outputs that already are class probabilities (a softmax's): JSON list of names. */
export const PROBABILITIES_KEY = 'headswap.tflite.probabilities';

export interface TfliteConverted extends Converted {
  /** Outputs that already are class probabilities (they come from a SOFTMAX). */
  readonly probabilities: string[];
}

/** Per-tensor 8-bit quantization of a computed tensor, as `GraphBuilder.quantize` takes it. */
function activationQuant(t: TfliteTensor): { scale: number; zeroPoint: number; type: 'uint8' | 'int8' } | undefined {
  if ((t.type !== TensorType.UINT8 && t.type !== TensorType.INT8) || !t.quantization) return undefined;
  return { scale: t.quantization.scale[0]!, zeroPoint: t.quantization.zeroPoint[0] ?? 0, type: t.type === TensorType.INT8 ? 'int8' : 'uint8' };
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** IEEE half bits to float. */
function halfToFloat(h: number): number {
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  const sign = h & 0x8000 ? -1 : 1;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** A tensor as messages name it: its own name's first part (MLIR joins fused ops' names with ';'). */
function label(t: TfliteTensor): string {
  return t.name.split(';')[0] || `tensor_${t.index}`;
}

/**
 * ONNX names for the model's tensors: the first part of MLIR's ';'-joined fused names (the op's
 * own), made unique; computed tensors choose first, as they are the ones people cut at. The
 * names headswap's own graph edits add (a classifier's 'probabilities', ...) are left free.
 */
function tensorNames(tensors: readonly TfliteTensor[]): string[] {
  const seen = new Set<string>([PIXELS, FEATURES, PROBABILITIES]);
  const names: string[] = [];
  for (const t of [...tensors.filter((x) => !x.data), ...tensors.filter((x) => x.data)]) {
    const base = label(t);
    let name = base;
    for (let i = 1; seen.has(name); i++) name = `${base}_${i}`;
    seen.add(name);
    names[t.index] = name;
  }
  return names;
}

/** Everything in the model that headswap cannot convert, by kind, each with the tensors it makes. */
function unsupported(model: TfliteModel): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (kind: string, op: TfliteOperator): void => {
    const out = model.tensors[op.outputs[0] ?? -1];
    found.set(kind, [...(found.get(kind) ?? []), out ? label(out) : `operator ${op.index}`]);
  };
  for (const op of model.operators) {
    if (!SUPPORTED.has(op.name)) {
      add(op.name, op);
      continue;
    }
    const a = op.options.activation;
    if (a !== undefined && !FUSED.has(a)) add(`${op.name} with fused ${ActivationFunctionType[a] ?? a}`, op);
    if (op.options.shuffledWeights) add(`${op.name} with shuffled weights`, op);
    for (const i of [...op.inputs, ...op.outputs]) {
      const t = model.tensors[i];
      if (!t) continue;
      const type = TensorType[t.type] ?? String(t.type);
      if (t.data ? !CONSTANT_TYPES.has(t.type) : !ACTIVATION_TYPES.has(t.type)) add(`${op.name} on ${type}${t.data ? ' constants' : ' tensors'}`, op);
      else if (t.sparse) add(`${op.name} with sparse ${type} weights`, op);
      else if (t.quantization?.custom) add(`${op.name} with custom quantization`, op);
      else if (!t.data && t.type !== TensorType.FLOAT32 && !activationQuant(t)) add(`${op.name} on ${type} tensors without quantization`, op);
      else if (!t.data && activationQuant(t) && t.quantization!.scale.length !== 1) add(`${op.name} on per-channel quantized tensors`, op);
    }
  }
  return found;
}

class TfliteConverter {
  readonly b: GraphBuilder;
  readonly values = new Map<number, Value>();
  /** DEQUANTIZE of a constant: its output stands for the constant, which stays compact. */
  private readonly aliases = new Map<number, TfliteTensor>();
  /** Tensors that hold a softmax's class probabilities. */
  readonly probabilities = new Set<number>();

  constructor(private readonly model: TfliteModel, readonly names: readonly string[]) {
    this.b = new GraphBuilder(new Set(names));
  }

  private tensor(i: number | undefined, what: string): TfliteTensor {
    const t = i === undefined || i < 0 ? undefined : this.model.tensors[i];
    if (!t) throw new HeadswapError(`${what}: a required input is missing`);
    return t;
  }

  /** The constant behind tensor `i` (through a DEQUANTIZE), or undefined when it is computed. */
  private constantOf(i: number): TfliteTensor | undefined {
    const t = this.aliases.get(i) ?? this.model.tensors[i];
    return t?.data ? t : undefined;
  }

  /** Raw constant contents as their own typed array (file data need not be aligned for it). */
  private raw(t: TfliteTensor): Weights['data'] | BigInt64Array {
    const size = BYTES[t.type];
    const n = count(t.shape);
    if (size === undefined || t.data!.length !== n * size) {
      throw new HeadswapError(`tensor '${t.name}' holds ${t.data!.length} bytes, but [${t.shape.join(',')}] of ${TensorType[t.type]} needs ${n * (size ?? 0)}; the file is damaged`);
    }
    // A copy with its own ArrayBuffer (Buffer#slice would be a view of the whole file).
    const buffer = new Uint8Array(t.data!).buffer;
    switch (t.type) {
      case TensorType.FLOAT32:
        return new Float32Array(buffer);
      case TensorType.FLOAT16:
        return new Uint16Array(buffer);
      case TensorType.UINT8:
        return new Uint8Array(buffer);
      case TensorType.INT8:
        return new Int8Array(buffer);
      case TensorType.INT32:
        return new Int32Array(buffer);
      default:
        return new BigInt64Array(buffer);
    }
  }

  /** A constant as float32 values (dequantized), for operands that are not weights. */
  private floats(t: TfliteTensor): Float32Array {
    const raw = this.raw(t);
    if (raw instanceof Float32Array) return raw;
    if (raw instanceof Uint16Array) return Float32Array.from(raw, halfToFloat);
    if (raw instanceof BigInt64Array) throw new HeadswapError(`tensor '${t.name}' is int64, which is not data`);
    const q = t.quantization;
    if (!q) return Float32Array.from(raw);
    // Per-channel values along q.axis: the channel of flat index k is (k / inner) % channels.
    const inner = count(t.shape.slice(q.axis + 1));
    const channels = q.scale.length;
    return Float32Array.from(raw, (v, k) => {
      const c = channels === 1 ? 0 : Math.floor(k / inner) % channels;
      return (v - (q.zeroPoint[c] ?? 0)) * q.scale[c]!;
    });
  }

  private ints(i: number | undefined, what: string): number[] {
    const t = i === undefined || i < 0 ? undefined : this.constantOf(i);
    if (!t || (t.type !== TensorType.INT32 && t.type !== TensorType.INT64)) throw new HeadswapError(`${what} must be a constant int32 tensor`);
    return Array.from(this.raw(t) as Int32Array | BigInt64Array, Number);
  }

  /**
   * Weights in TFLite's layout, as GraphBuilder takes them: `perm` moves them to TF's, and
   * per-channel scales must run along `channelAxis` (the output channel).
   */
  private weights(i: number | undefined, what: string, channelAxis: number, perm?: readonly number[], shape?: readonly number[]): Weights {
    const t = i === undefined || i < 0 ? undefined : this.constantOf(i);
    if (!t) throw new HeadswapError(`${what} must be constant`);
    const raw = this.raw(t);
    if (raw instanceof BigInt64Array) throw new HeadswapError(`${what} is int64`);
    const q = t.quantization;
    if (q && q.scale.length > 1 && q.axis !== channelAxis) throw new HeadswapError(`${what} is quantized along axis ${q.axis}, not the output channel`);
    if (!q && !(raw instanceof Float32Array || raw instanceof Uint16Array)) throw new HeadswapError(`${what} is ${TensorType[t.type]} without quantization`);
    const data = perm ? transposeData(raw, t.shape, perm) : raw;
    const tfShape = shape ?? (perm ? perm.map((p) => t.shape[p]!) : t.shape);
    return { data, shape: tfShape, ...(q ? { quantization: { scale: q.scale, zeroPoint: q.zeroPoint.length === q.scale.length ? q.zeroPoint : new Int32Array(q.scale.length) } } : {}) };
  }

  private value(i: number | undefined, what: string): Value {
    if (i === undefined || i < 0) throw new HeadswapError(`${what}: a required input is missing`);
    let v = this.values.get(i);
    if (v) return v;
    const t = this.constantOf(i);
    if (!t) throw new HeadswapError(`${what} reads tensor '${this.names[i]}', which no operator before it computes`);
    v = this.b.constant(this.names[i]!, t.shape, this.floats(t));
    this.values.set(i, v);
    return v;
  }

  /**
   * Sets the op's output: `compute` makes the float result under the name it is given, then come
   * the fused activation and, for a quantized output, the rounding to its grid (the tensor's
   * TFLite name goes to the last of these).
   */
  private output(op: TfliteOperator, compute: (name: string) => Value): void {
    const index = op.outputs[0]!;
    const t = this.tensor(index, `operator ${op.index}`);
    const name = this.names[index]!;
    const q = activationQuant(t);
    const activation = op.options.activation ?? ActivationFunctionType.NONE;
    const activated = q ? this.b.fresh(`${name}/float`) : name;
    let v = compute(activation === ActivationFunctionType.NONE ? activated : this.b.fresh(`${name}/linear`));
    switch (activation) {
      case ActivationFunctionType.RELU:
        v = this.b.simple('Relu', v, activated);
        break;
      case ActivationFunctionType.RELU6:
        v = this.b.clip(v, 0, 6, activated);
        break;
      case ActivationFunctionType.RELU_N1_TO_1:
        v = this.b.clip(v, -1, 1, activated);
        break;
      case ActivationFunctionType.TANH:
        v = this.b.simple('Tanh', v, activated);
        break;
    }
    if (q) v = this.b.quantize(v, q, name);
    this.values.set(index, v);
  }

  input(): void {
    const { model, b } = this;
    if (model.inputs.length !== 1) {
      const names = model.inputs.map((i) => `'${model.tensors[i] ? label(model.tensors[i]) : i}'`).join(', ');
      throw new HeadswapError(`${model.source}: the model has ${model.inputs.length} inputs (${names || 'none'}); headswap imports image models with one 4-d [1,H,W,3] input`);
    }
    const index = model.inputs[0]!;
    const t = this.tensor(index, `${model.source}: the input`);
    const [n, h, w, c] = t.shape;
    if (t.shape.length !== 4 || !(n === 1 || n === -1) || !(h! > 0 && w! > 0) || c !== 3 || !ACTIVATION_TYPES.has(t.type)) {
      throw new HeadswapError(`${model.source}: input '${label(t)}' is ${TensorType[t.type] ?? t.type} [${t.shape.join(',')}], not an image; headswap imports image models with one 4-d [1,H,W,3] input`);
    }
    // The batch is left open: the file fixes it at 1, the converted graph takes any.
    const x = b.input(this.names[index]!, [-1, h!, w!, 3]);
    const q = activationQuant(t);
    this.values.set(index, q ? b.quantize(x, q, b.fresh(`${this.names[index]}/${q.type}`)) : x);
  }

  convert(op: TfliteOperator): void {
    const b = this.b;
    const what = `operator ${op.index} (${op.name})`;
    const o = op.options;
    const x = (): Value => this.value(op.inputs[0], what);
    const binary = BINARY[op.code];
    if (binary) return this.output(op, (name) => b.binary(binary, x(), this.value(op.inputs[1], what), name));
    switch (op.code) {
      case BuiltinOperator.CONV_2D: {
        const input = x();
        // OHWI -> TF's HWIO; a filter with fewer input channels than the map is a grouped convolution.
        const kernel = this.weights(op.inputs[1], `${what}: the filter`, 0, [1, 2, 3, 0]);
        const groups = (input.shape[3] ?? 0) / kernel.shape[2]!;
        const bias = op.inputs[2] !== undefined && op.inputs[2] >= 0 ? this.weights(op.inputs[2], `${what}: the bias`, 0) : undefined;
        const conv = { strides: o.strides!, dilations: o.dilations!, padding: o.padding!, ...(groups > 1 ? { groups } : {}), ...(bias ? { bias } : {}) };
        return this.output(op, (name) => b.conv(input, kernel, conv, name));
      }
      case BuiltinOperator.DEPTHWISE_CONV_2D: {
        const input = x();
        const filter = this.tensor(op.inputs[1], what);
        const [, kh, kw, cm] = filter.shape as [number, number, number, number];
        const c = input.shape[3]!;
        // [1, kh, kw, c*m] holds the same values in the same order as TF's [kh, kw, c, m].
        const kernel = this.weights(op.inputs[1], `${what}: the filter`, 3, undefined, [kh, kw, c, cm / c]);
        const bias = op.inputs[2] !== undefined && op.inputs[2] >= 0 ? this.weights(op.inputs[2], `${what}: the bias`, 0) : undefined;
        const conv = { strides: o.strides!, dilations: o.dilations!, padding: o.padding!, depthwise: true, ...(bias ? { bias } : {}) };
        return this.output(op, (name) => b.conv(input, kernel, conv, name));
      }
      case BuiltinOperator.FULLY_CONNECTED: {
        // [units, in] -> [in, units].
        const kernel = this.weights(op.inputs[1], `${what}: the weights`, 0, [1, 0]);
        const bias = op.inputs[2] !== undefined && op.inputs[2] >= 0 ? this.weights(op.inputs[2], `${what}: the bias`, 0) : undefined;
        let input = x();
        // TFLite flattens the input to rows of the weights' width unless told to keep its dims.
        if (!o.keepNumDims && input.shape.length !== 2) input = b.reshape(input, [-1, kernel.shape[0]!], b.fresh(`${this.names[op.outputs[0]!]}/rows`));
        return this.output(op, (name) => b.dense(input, kernel, bias, name));
      }
      case BuiltinOperator.AVERAGE_POOL_2D:
      case BuiltinOperator.MAX_POOL_2D:
        return this.output(op, (name) => b.pool(x(), op.code === BuiltinOperator.MAX_POOL_2D ? 'max' : 'avg', o.filter!, o.strides!, o.padding!, name));
      case BuiltinOperator.MEAN:
        return this.output(op, (name) => b.reduce('mean', x(), this.ints(op.inputs[1], `${what}: the axes`), o.keepDims ?? false, name));
      case BuiltinOperator.RESHAPE:
        return this.output(op, (name) => this.reshape(op, x(), name, what));
      case BuiltinOperator.SQUEEZE: {
        const input = x();
        const dims = (o.squeezeDims ?? []).map((d) => (d < 0 ? d + input.shape.length : d));
        if (dims.includes(0)) throw new HeadswapError(`${what} removes the batch axis, which the converted graph keeps open`);
        return this.output(op, (name) => b.squeeze(input, dims, name));
      }
      case BuiltinOperator.CONCATENATION:
        return this.output(op, (name) => b.concat(op.inputs.map((i) => this.value(i, what)), o.axis ?? 0, name));
      case BuiltinOperator.PAD: {
        const flat = this.ints(op.inputs[1], `${what}: the paddings`);
        const pads = Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!] as [number, number]);
        if (pads[0]?.some((p) => p !== 0)) throw new HeadswapError(`${what} pads the batch axis`);
        // A quantized map pads with its zero point, which is float 0.
        return this.output(op, (name) => b.pad(x(), pads, 'constant', 0, name));
      }
      case BuiltinOperator.SOFTMAX: {
        const beta = o.beta ?? 1;
        const input = beta === 1 ? x() : b.binary('Mul', x(), b.scalar(this.names[op.outputs[0]!]!, beta), b.fresh(`${this.names[op.outputs[0]!]}/scaled`));
        this.probabilities.add(op.outputs[0]!);
        return this.output(op, (name) => b.softmax(input, name));
      }
      case BuiltinOperator.LOGISTIC:
        return this.output(op, (name) => b.simple('Sigmoid', x(), name));
      case BuiltinOperator.HARD_SWISH:
        return this.output(op, (name) => b.hardSwish(x(), name));
      case BuiltinOperator.RELU:
        return this.output(op, (name) => b.simple('Relu', x(), name));
      case BuiltinOperator.RELU6:
        return this.output(op, (name) => b.clip(x(), 0, 6, name));
      case BuiltinOperator.QUANTIZE:
        // The input is float (or quantized differently): output() rounds it to the output's grid.
        if (!activationQuant(this.tensor(op.outputs[0], what))) throw new HeadswapError(`${what}: the output is not a quantized tensor`);
        this.passProbabilities(op);
        return this.output(op, () => x());
      case BuiltinOperator.DEQUANTIZE: {
        const constant = this.constantOf(op.inputs[0] ?? -1);
        if (constant) {
          this.aliases.set(op.outputs[0]!, constant);
          return;
        }
        // Quantized values are already carried as their float values.
        this.passProbabilities(op);
        this.values.set(op.outputs[0]!, x());
        return;
      }
    }
    throw new HeadswapError(`${what}: unsupported operator`);
  }

  private passProbabilities(op: TfliteOperator): void {
    if (PASS_PROBABILITIES.has(op.code) && this.probabilities.has(op.inputs[0] ?? -1)) this.probabilities.add(op.outputs[0]!);
  }

  /**
   * The file's batch is 1, so a target shape starting with 1 keeps the batch open (ONNX 0 copies
   * it); one starting with -1 works for any batch as it is.
   */
  private reshape(op: TfliteOperator, x: Value, name: string, what: string): Value {
    const target = op.inputs[1] !== undefined && op.inputs[1] >= 0 ? this.ints(op.inputs[1], `${what}: the shape`) : op.options.newShape;
    if (!target) throw new HeadswapError(`${what} has no target shape`);
    this.passProbabilities(op);
    if (target[0] === 1 && target.length > 1) return this.b.reshapeKeepBatch(x, target.slice(1), name);
    if (target[0] === -1) return this.b.reshape(x, target, name);
    throw new HeadswapError(`${what} reshapes to [${target.join(',')}], dropping the batch axis, which the converted graph keeps open`);
  }
}

/**
 * Converts a TFLite model to ONNX (opset 13, standard operators only): a float32 NHWC input
 * `[N,H,W,3]` in the model's float domain (a quantized input's dequantized values), float
 * outputs. Quantized tensors are computed in float and rounded to their grid after each op
 * (QuantizeLinear + DequantizeLinear, which onnxruntime fuses into integer kernels); weights
 * stay 8-bit (or float16) in the file. Everything unsupported is named in one error.
 */
export function convertTflite(model: TfliteModel): TfliteConverted {
  const source = model.source;
  const names = tensorNames(model.tensors);
  const found = unsupported(model);
  if (found.size > 0) throw unsupportedError(source, 'operator', found, SUPPORTED_OPERATORS);
  const conv = new TfliteConverter(model, names);
  conv.input();
  for (const op of model.operators) {
    try {
      conv.convert(op);
    } catch (err) {
      // The builder's shape errors do not know the file or the operator.
      if (err instanceof HeadswapError && !err.message.startsWith(source)) {
        throw new HeadswapError(`${source}: ${err.message.startsWith('operator ') ? '' : `operator ${op.index} (${op.name}): `}${err.message}`);
      }
      throw err;
    }
  }
  const outputs = model.outputs.map((i) => {
    const value = conv.values.get(i);
    if (!value) throw new HeadswapError(`${source}: output '${names[i]}' is not computed by any operator`);
    return { name: names[i]!, value };
  });
  const probabilities = model.outputs.filter((i) => conv.probabilities.has(i)).map((i) => names[i]!);
  const onnx = conv.b.finish(outputs, { 'headswap.source': 'tflite', [PROBABILITIES_KEY]: JSON.stringify(probabilities) }, 'tflite-import');
  return { ...summarize(onnx), probabilities };
}
