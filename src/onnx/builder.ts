import { HeadswapError } from '../errors.js';
import { HEADSWAP_VERSION } from '../util/versions.js';
import { DataType, attr, floatTensor, int64Tensor, node, AttributeType, createModel, valueInfo, type AttributeProto, type ModelProto, type NodeProto, type TensorProto } from './proto.js';

/** Opset of the graphs the importer writes: Softmax over one axis, Squeeze/Unsqueeze axes as inputs, ReduceMean axes as an attribute. */
const IMPORT_OPSET = 13;

/**
 * A tensor of the network being imported. Shapes are always in TF's view (NHWC for images).
 * Rank-4 tensors are kept NCHW inside the ONNX graph, because onnxruntime's Conv and pooling
 * kernels only take NCHW: `nchw` says the ONNX tensor is the TF tensor transposed by [0,3,1,2].
 * Layout is converted lazily and at most once per tensor.
 */
export interface Value {
  readonly name: string;
  /** -1 = not known before running (the batch). */
  readonly shape: readonly number[];
  readonly nchw: boolean;
  /** Values of a constant (weights, shapes, axes), TF layout; emitted as an initializer only when used as data. */
  readonly data?: Float32Array | Int32Array;
}

export type Padding = 'same' | 'valid' | { readonly explicit: readonly [number, number, number, number] };

/** Integers stand for `scale * (q - zeroPoint)`: one scale and zero point per tensor, or one per output channel. */
export interface Quantization {
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array;
}

/**
 * Constant weights as the source file stores them, kept as compact in the ONNX file: float32 as
 * is; IEEE half floats (a Uint16Array of their bits) behind a Cast; integers (with their
 * `quantization`, which they then need) behind a DequantizeLinear, the form onnxruntime fuses
 * into integer kernels.
 */
export interface Weights {
  readonly data: Float32Array | Uint16Array | Int8Array | Uint8Array | Int32Array;
  /** TF layout: conv [kh, kw, in/groups, out], depthwise [kh, kw, in, multiplier], dense [in, out]. */
  readonly shape: readonly number[];
  readonly quantization?: Quantization;
}

type NumericArray = Weights['data'];

export interface ConvOptions {
  readonly strides: readonly [number, number];
  readonly dilations: readonly [number, number];
  readonly padding: Padding;
  /** Channel groups of a grouped convolution (Keras `groups`); depthwise is separate. */
  readonly groups?: number;
  readonly bias?: Float32Array | Weights;
}

export type Activation =
  | 'linear' | 'relu' | 'relu6' | 'elu' | 'selu' | 'sigmoid' | 'hard_sigmoid' | 'tanh' | 'softmax'
  | 'softplus' | 'softsign' | 'swish' | 'mish' | 'gelu';

export const ACTIVATIONS: readonly Activation[] = ['linear', 'relu', 'relu6', 'elu', 'selu', 'sigmoid', 'hard_sigmoid', 'tanh', 'softmax', 'softplus', 'softsign', 'swish', 'mish', 'gelu'];

export type BinaryOp = 'Add' | 'Sub' | 'Mul' | 'Div' | 'Max' | 'Min' | 'Pow';
export type ReduceOp = 'mean' | 'max' | 'min' | 'sum' | 'prod';

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

function strAttr(name: string, value: string): AttributeProto {
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
}

/** TF's SAME padding: output ceil(in/stride), the odd pixel of padding goes after (bottom/right). */
export function samePads(size: number, kernel: number, stride: number, dilation: number): [number, number] {
  const eff = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + eff - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** An initializer of raw little-endian values (integers, or float16 bits). */
function typedTensor(name: string, dims: number[], dataType: number, data: Exclude<NumericArray, Float32Array>): TensorProto {
  return { name, dims, dataType, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Copies `data` of `shape` transposed by `perm` (out dim i = in dim perm[i]). */
export function transposeData<T extends NumericArray>(data: T, shape: readonly number[], perm: readonly number[]): T {
  const rank = shape.length;
  const outShape = perm.map((p) => shape[p]!);
  const inStrides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1]! * shape[i + 1]!;
  const strides = perm.map((p) => inStrides[p]!);
  const out = new (data.constructor as new (n: number) => T)(data.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += idx[d]! * strides[d]!;
    out[o] = data[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      if (idx[d]! < outShape[d]!) break;
      idx[d] = 0;
    }
  }
  return out;
}

function broadcast(a: readonly number[], b: readonly number[], what: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1 && x !== -1 && y !== -1) throw new HeadswapError(`${what}: shapes [${a.join(',')}] and [${b.join(',')}] do not broadcast`);
    out.push(x === 1 ? y : y === 1 ? x : Math.max(x, y));
  }
  return out;
}

/**
 * Builds an ONNX graph from TF-style operations: shapes are tracked so TF's SAME padding becomes
 * explicit (asymmetric) pads, and NHWC/NCHW conversions are inserted only where needed.
 */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly inits: TensorProto[] = [];
  private readonly inputs: { name: string; shape: readonly number[] }[] = [];
  private readonly used = new Set<string>();
  /** Names `fresh` handed out that no op has taken yet: the op given one keeps it as is. */
  private readonly unclaimed = new Set<string>();
  private readonly emitted = new Set<string>();
  private readonly layoutCache = new Map<string, Value>();

  /** `reserved`: names the source network uses, so helper tensors never take them. */
  constructor(private readonly reserved: ReadonlySet<string>) {}

  /** `name` itself when free (a name of the source network, or one just made by `fresh`), else a fresh variant. */
  private claim(name: string): string {
    if (this.unclaimed.delete(name)) return name;
    if (!this.used.has(name)) {
      this.used.add(name);
      return name;
    }
    return this.fresh(name);
  }

  /** A new helper tensor name derived from `base`, clashing with nothing the network names. */
  fresh(base: string): string {
    for (let i = 0; ; i++) {
      const name = i === 0 ? base : `${base}_${i}`;
      if (!this.used.has(name) && !this.reserved.has(name)) {
        this.used.add(name);
        this.unclaimed.add(name);
        return name;
      }
    }
  }

  private emit(op: string, inputs: string[], out: string, attrs: AttributeProto[] = []): string {
    this.nodes.push(node(op, inputs, [out], attrs, out));
    return out;
  }

  private init(base: string, dims: number[], values: ArrayLike<number>): string {
    const name = this.fresh(base);
    this.inits.push(floatTensor(name, dims, values));
    return name;
  }

  /**
   * An initializer for weights already in ONNX layout, stored as `data` is (see `Weights`);
   * per-channel scales run along `axis`. Returns the name of the float tensor.
   */
  private weights(base: string, dims: number[], data: NumericArray, q: Quantization | undefined, axis: number): string {
    if (data instanceof Float32Array) return this.init(base, dims, data);
    if (data instanceof Uint16Array) {
      const half = this.fresh(`${base}/float16`);
      this.inits.push(typedTensor(half, dims, DataType.FLOAT16, data));
      return this.emit('Cast', [half], this.fresh(base), [attr.int('to', DataType.FLOAT)]);
    }
    if (!q) throw new HeadswapError(`${base}: integer weights without a scale and zero point`);
    const channels = dims[axis] ?? 1;
    if (q.scale.length !== q.zeroPoint.length || (q.scale.length !== 1 && q.scale.length !== channels)) {
      throw new HeadswapError(`${base}: ${q.scale.length} scales and ${q.zeroPoint.length} zero points for ${channels} channels`);
    }
    const type = data instanceof Int8Array ? DataType.INT8 : data instanceof Uint8Array ? DataType.UINT8 : DataType.INT32;
    const quantized = this.fresh(`${base}/quantized`);
    this.inits.push(typedTensor(quantized, dims, type, data));
    const [scale, zero] = this.quantParams(base, q.scale, q.zeroPoint, type);
    const perChannel = q.scale.length > 1 ? [attr.int('axis', axis)] : [];
    return this.emit('DequantizeLinear', [quantized, scale, zero], this.fresh(base), perChannel);
  }

  /** Scale and zero-point initializers: scalars for one value, vectors for per-channel ones. */
  private quantParams(base: string, scale: Float32Array, zeroPoint: Int32Array, type: number): [string, string] {
    const dims = scale.length === 1 ? [] : [scale.length];
    const s = this.init(`${base}/scale`, dims, scale);
    const z = this.fresh(`${base}/zero_point`);
    const zeros = type === DataType.INT8 ? Int8Array.from(zeroPoint) : type === DataType.UINT8 ? Uint8Array.from(zeroPoint) : Int32Array.from(zeroPoint);
    this.inits.push(typedTensor(z, dims, type, zeros));
    return [s, z];
  }

  private int64(base: string, values: number[]): string {
    const name = this.fresh(base);
    this.inits.push(int64Tensor(name, [values.length], values));
    return name;
  }

  /** The ONNX name of `v` as node input, emitting a constant's initializer on first use. */
  use(v: Value): string {
    if (v.data && !this.emitted.has(v.name)) {
      this.emitted.add(v.name);
      this.inits.push(floatTensor(v.name, [...v.shape], v.data));
    }
    return v.name;
  }

  input(name: string, shape: readonly number[]): Value {
    const v = { name: this.claim(name), shape, nchw: false };
    this.inputs.push(v);
    return v;
  }

  constant(name: string, shape: readonly number[], data: Float32Array | Int32Array): Value {
    return { name: this.claim(name), shape, nchw: false, data };
  }

  toNchw(v: Value): Value {
    if (v.nchw) return v;
    if (v.shape.length !== 4) throw new HeadswapError(`tensor '${v.name}' has shape [${v.shape.join(',')}], but an image operation needs a rank-4 NHWC tensor`);
    if (v.data) return this.constNchw(v, v.shape);
    const key = `nchw:${v.name}`;
    let out = this.layoutCache.get(key);
    if (!out) {
      out = { name: this.relayout(v, TO_NCHW, `${v.name}/nchw`), shape: v.shape, nchw: true };
      this.layoutCache.set(key, out);
    }
    return out;
  }

  /** A constant as an NCHW initializer, its TF shape first padded to `shape4` (rank 4) with leading 1s. */
  private constNchw(v: Value, shape4: readonly number[]): Value {
    const key = `nchw:${v.name}`;
    let out = this.layoutCache.get(key);
    if (!out) {
      out = { name: this.fresh(`${v.name}/nchw`), shape: shape4, nchw: true, data: transposeData(v.data!, shape4, TO_NCHW) };
      // Already emitted, with NCHW dims (use() would write the TF ones).
      this.emitted.add(out.name);
      this.inits.push(floatTensor(out.name, TO_NCHW.map((p) => shape4[p]!), out.data!));
      this.layoutCache.set(key, out);
    }
    return out;
  }

  toTf(v: Value): Value {
    if (!v.nchw) return v;
    const key = `tf:${v.name}`;
    let out = this.layoutCache.get(key);
    if (!out) {
      out = { name: this.relayout(v, TO_NHWC, `${v.name}/nhwc`), shape: v.shape, nchw: false };
      this.layoutCache.set(key, out);
    }
    return out;
  }

  /** A layout change; with a 1x1 map no data moves, so a Reshape does it (and later passes see through it). */
  private relayout(v: Value, perm: number[], base: string): string {
    const [, h, w, c] = v.shape;
    if (h === 1 && w === 1) {
      const dims = perm === TO_NCHW ? [0, c!, 1, 1] : [0, 1, 1, c!];
      return this.emit('Reshape', [this.use(v), this.int64(`${base}/shape`, dims)], this.fresh(base));
    }
    return this.emit('Transpose', [this.use(v)], this.fresh(base), [attr.ints('perm', perm)]);
  }

  private spatial(x: Value, what: string): [number, number, number, number] {
    if (x.shape.length !== 4) throw new HeadswapError(`${what}: needs a rank-4 NHWC input, got shape [${x.shape.join(',')}]`);
    const [n, h, w, c] = x.shape as [number, number, number, number];
    if (!(h > 0 && w > 0)) throw new HeadswapError(`${what}: the input's height and width are not known; give the input size`);
    return [n, h, w, c];
  }

  private pads(h: number, w: number, k: readonly [number, number], s: readonly [number, number], d: readonly [number, number], padding: Padding): [number, number, number, number] {
    if (padding === 'valid') return [0, 0, 0, 0];
    if (padding === 'same') {
      const [t, b] = samePads(h, k[0], s[0], d[0]);
      const [l, r] = samePads(w, k[1], s[1], d[1]);
      return [t, b, l, r];
    }
    return [...padding.explicit];
  }

  private outSize(size: number, k: number, s: number, d: number, before: number, after: number, what: string): number {
    const out = Math.floor((size + before + after - ((k - 1) * d + 1)) / s) + 1;
    if (out < 1) throw new HeadswapError(`${what}: a ${k}-wide window does not fit a ${size}-wide input`);
    return out;
  }

  /**
   * 2-D convolution. `kernel` is TF's [kh, kw, in/groups, out]; `depthwise` takes TF's
   * [kh, kw, in, multiplier] and makes channel c*multiplier+m, as TF does.
   */
  conv(x: Value, kernel: Weights, o: ConvOptions & { depthwise?: boolean }, out: string): Value {
    const [n, h, w, c] = this.spatial(x, out);
    const [kh, kw, ki, ko] = kernel.shape as [number, number, number, number];
    if (kernel.shape.length !== 4) throw new HeadswapError(`${out}: kernel has shape [${kernel.shape.join(',')}], expected 4 dimensions`);
    let weights: NumericArray;
    let dims: number[];
    let group: number;
    let channels: number;
    if (o.depthwise) {
      if (ki !== c) throw new HeadswapError(`${out}: depthwise kernel is for ${ki} channels but the input has ${c}`);
      // [kh,kw,c,m] -> [c,m,kh,kw] = ONNX [c*m, 1, kh, kw] with output channel c*m + m'.
      weights = transposeData(kernel.data, kernel.shape, [2, 3, 0, 1]);
      dims = [ki * ko, 1, kh, kw];
      group = ki;
      channels = ki * ko;
    } else {
      group = o.groups ?? 1;
      if (ki * group !== c) throw new HeadswapError(`${out}: kernel expects ${ki * group} input channels but the input has ${c}`);
      weights = transposeData(kernel.data, kernel.shape, [3, 2, 0, 1]);
      dims = [ko, ki, kh, kw];
      channels = ko;
    }
    const bias: Omit<Weights, 'shape'> | undefined = o.bias && (o.bias instanceof Float32Array ? { data: o.bias } : o.bias);
    if (bias && bias.data.length !== channels) throw new HeadswapError(`${out}: bias has ${bias.data.length} values for ${channels} channels`);
    const [t, b, l, r] = this.pads(h, w, [kh, kw], o.strides, o.dilations, o.padding);
    const oh = this.outSize(h, kh, o.strides[0], o.dilations[0], t, b, out);
    const ow = this.outSize(w, kw, o.strides[1], o.dilations[1], l, r, out);
    // Per-channel scales follow the output channel: axis 0 of ONNX's [out, in, kh, kw].
    const inputs = [this.use(this.toNchw(x)), this.weights(`${out}/weights`, dims, weights, kernel.quantization, 0)];
    if (bias) inputs.push(this.weights(`${out}/bias`, [channels], bias.data, bias.quantization, 0));
    const name = this.emit('Conv', inputs, this.claim(out), [
      attr.ints('kernel_shape', [kh, kw]),
      attr.ints('strides', [...o.strides]),
      attr.ints('dilations', [...o.dilations]),
      attr.ints('pads', [t, l, b, r]),
      attr.int('group', group),
    ]);
    return { name, shape: [n, oh, ow, channels], nchw: true };
  }

  pool(x: Value, kind: 'max' | 'avg', size: readonly [number, number], strides: readonly [number, number], padding: Padding, out: string): Value {
    const [n, h, w, c] = this.spatial(x, out);
    const [t, b, l, r] = this.pads(h, w, size, strides, [1, 1], padding);
    const oh = this.outSize(h, size[0], strides[0], 1, t, b, out);
    const ow = this.outSize(w, size[1], strides[1], 1, l, r, out);
    // TF averages over the real pixels of a padded window: count_include_pad = 0 (the default).
    const name = this.emit(kind === 'max' ? 'MaxPool' : 'AveragePool', [this.use(this.toNchw(x))], this.claim(out), [
      attr.ints('kernel_shape', [...size]),
      attr.ints('strides', [...strides]),
      attr.ints('pads', [t, l, b, r]),
    ]);
    return { name, shape: [n, oh, ow, c], nchw: true };
  }

  /** Inference batch normalization over the last (channel) axis. */
  batchNorm(x: Value, p: { gamma: Float32Array; beta: Float32Array; mean: Float32Array; variance: Float32Array; epsilon: number }, out: string): Value {
    const c = x.shape.at(-1)!;
    for (const [k, v] of Object.entries(p)) {
      if (typeof v !== 'number' && v.length !== c) throw new HeadswapError(`${out}: ${k} has ${v.length} values for ${c} channels`);
    }
    if (x.shape.length === 4) {
      const name = this.emit(
        'BatchNormalization',
        [this.use(this.toNchw(x)), this.init(`${out}/gamma`, [c], p.gamma), this.init(`${out}/beta`, [c], p.beta), this.init(`${out}/mean`, [c], p.mean), this.init(`${out}/variance`, [c], p.variance)],
        this.claim(out),
        [attr.float('epsilon', p.epsilon)],
      );
      return { name, shape: x.shape, nchw: true };
    }
    const scale = p.gamma.map((g, i) => g / Math.sqrt(p.variance[i]! + p.epsilon));
    const offset = p.beta.map((b, i) => b - p.mean[i]! * scale[i]!);
    const scaled = this.binary('Mul', x, this.constant(this.fresh(`${out}/scale`), [c], scale), this.fresh(`${out}/scaled`));
    return this.binary('Add', scaled, this.constant(this.fresh(`${out}/offset`), [c], offset), out);
  }

  /** A layout-preserving elementwise op with one input. */
  private unary(op: string, x: Value, out: string, attrs: AttributeProto[] = [], extra: string[] = []): Value {
    return { name: this.emit(op, [this.use(x), ...extra], this.claim(out), attrs), shape: x.shape, nchw: x.nchw };
  }

  clip(x: Value, min: number, max: number, out: string): Value {
    return this.unary('Clip', x, out, [], [this.init(`${out}/min`, [], [min]), this.init(`${out}/max`, [], [max])]);
  }

  leakyRelu(x: Value, alpha: number, out: string): Value {
    return this.unary('LeakyRelu', x, out, [attr.float('alpha', alpha)]);
  }

  elu(x: Value, alpha: number, out: string): Value {
    return this.unary('Elu', x, out, [attr.float('alpha', alpha)]);
  }

  /** TF-named elementwise functions that map to one ONNX op. */
  simple(op: 'Relu' | 'Sigmoid' | 'Tanh' | 'Exp' | 'Log' | 'Sqrt' | 'Reciprocal' | 'Neg' | 'Abs' | 'Softplus' | 'Softsign' | 'Selu' | 'Floor' | 'Ceil', x: Value, out: string): Value {
    return this.unary(op, x, out);
  }

  activation(x: Value, kind: Activation, out: string): Value {
    switch (kind) {
      case 'linear':
        return x;
      case 'relu':
        return this.simple('Relu', x, out);
      case 'relu6':
        return this.clip(x, 0, 6, out);
      case 'elu':
        return this.elu(x, 1, out);
      case 'selu':
        return this.simple('Selu', x, out);
      case 'sigmoid':
        return this.simple('Sigmoid', x, out);
      case 'tanh':
        return this.simple('Tanh', x, out);
      case 'softplus':
        return this.simple('Softplus', x, out);
      case 'softsign':
        return this.simple('Softsign', x, out);
      case 'softmax':
        return this.softmax(x, out);
      case 'hard_sigmoid':
        // TF.js: clip(0.2x + 0.5, 0, 1), ONNX HardSigmoid's defaults.
        return this.unary('HardSigmoid', x, out, [attr.float('alpha', 0.2), attr.float('beta', 0.5)]);
      case 'swish':
        return this.binary('Mul', x, this.simple('Sigmoid', x, this.fresh(`${out}/sigmoid`)), out);
      case 'mish': {
        const sp = this.simple('Softplus', x, this.fresh(`${out}/softplus`));
        return this.binary('Mul', x, this.simple('Tanh', sp, this.fresh(`${out}/tanh`)), out);
      }
      case 'gelu': {
        // TF.js gelu: 0.5 x (1 + erf(x / sqrt 2)).
        const scaled = this.binary('Mul', x, this.scalar(out, Math.SQRT1_2), this.fresh(`${out}/scaled`));
        const erf = this.unary('Erf', scaled, this.fresh(`${out}/erf`));
        const plus = this.binary('Add', erf, this.scalar(out, 1), this.fresh(`${out}/plus1`));
        const half = this.binary('Mul', x, this.scalar(out, 0.5), this.fresh(`${out}/half`));
        return this.binary('Mul', half, plus, out);
      }
    }
  }

  scalar(base: string, value: number): Value {
    return this.constant(this.fresh(`${base}/const`), [], Float32Array.of(value));
  }

  softmax(x: Value, out: string): Value {
    const t = this.toTf(x);
    return { name: this.emit('Softmax', [this.use(t)], this.claim(out), [attr.int('axis', -1)]), shape: t.shape, nchw: false };
  }

  /** TFLite's HARD_SWISH, x * relu6(x + 3) / 6 (ONNX HardSwish needs opset 14). */
  hardSwish(x: Value, out: string): Value {
    const gate = this.unary('HardSigmoid', x, this.fresh(`${out}/gate`), [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)]);
    return this.binary('Mul', x, gate, out);
  }

  /**
   * Rounds `x` to a quantized tensor's grid and back (QuantizeLinear, DequantizeLinear), as the
   * quantized network stores it; onnxruntime fuses such pairs with the ops around them.
   */
  quantize(x: Value, q: { readonly scale: number; readonly zeroPoint: number; readonly type: 'uint8' | 'int8' }, out: string): Value {
    const [scale, zero] = this.quantParams(out, Float32Array.of(q.scale), Int32Array.of(q.zeroPoint), q.type === 'int8' ? DataType.INT8 : DataType.UINT8);
    const quantized = this.emit('QuantizeLinear', [this.use(x), scale, zero], this.fresh(`${out}/quantized`));
    return { name: this.emit('DequantizeLinear', [quantized, scale, zero], this.claim(out)), shape: x.shape, nchw: x.nchw };
  }

  prelu(x: Value, alpha: Value, out: string): Value {
    const [a, s] = this.align(x, alpha, out);
    return { name: this.emit('PRelu', [a, s.name], this.claim(out)), shape: x.shape, nchw: s.nchw };
  }

  /**
   * Puts two operands of a broadcasting op in the same layout: when one is an NCHW map, the other
   * is moved to NCHW too (a lower-rank operand is first padded to rank 4 from the left, as TF
   * broadcasting aligns shapes on the right).
   */
  private align(a: Value, b: Value, what: string): [string, { name: string; nchw: boolean }] {
    const nchw = (a.nchw && a.shape.length === 4) || (b.nchw && b.shape.length === 4);
    if (!nchw) return [this.use(this.toTf(a)), { name: this.use(this.toTf(b)), nchw: false }];
    return [this.operandNchw(a, what), { name: this.operandNchw(b, what), nchw: true }];
  }

  private operandNchw(v: Value, what: string): string {
    const r = v.shape.length;
    if (r === 4) return this.use(this.toNchw(v));
    if (r === 0) return this.use(v);
    if (r > 4) throw new HeadswapError(`${what}: cannot combine a rank-${r} tensor with an image map`);
    const padded = [...new Array<number>(4 - r).fill(1), ...v.shape];
    if (v.data) return this.constNchw(v, padded).name;
    const axes = this.int64(`${v.name}/axes`, [...Array(4 - r).keys()]);
    const unsq = this.emit('Unsqueeze', [this.use(v), axes], this.fresh(`${v.name}/rank4`));
    return this.use(this.toNchw({ name: unsq, shape: padded, nchw: false }));
  }

  binary(op: BinaryOp, a: Value, b: Value, out: string): Value {
    const shape = broadcast(a.shape, b.shape, out);
    const [x, y] = this.align(a, b, out);
    return { name: this.emit(op, [x, y.name], this.claim(out)), shape, nchw: y.nchw && shape.length === 4 };
  }

  /** x @ kernel (+ bias) over the last axis; `kernel` is [in, out]. */
  dense(x: Value, kernel: Weights, biasData: Float32Array | Weights | undefined, out: string): Value {
    const t = this.toTf(x);
    const [k, units] = kernel.shape as [number, number];
    if (kernel.shape.length !== 2 || t.shape.at(-1) !== k) {
      throw new HeadswapError(`${out}: kernel [${kernel.shape.join(',')}] does not fit input [${t.shape.join(',')}]`);
    }
    const bias: Omit<Weights, 'shape'> | undefined = biasData && (biasData instanceof Float32Array ? { data: biasData } : biasData);
    if (bias && bias.data.length !== units) throw new HeadswapError(`${out}: bias has ${bias.data.length} values for ${units} units`);
    const shape = [...t.shape.slice(0, -1), units];
    // Per-channel scales follow the output unit: axis 1 of [in, out].
    const w = this.weights(`${out}/kernel`, [k, units], kernel.data, kernel.quantization, 1);
    const b = (): string => this.weights(`${out}/bias`, [units], bias!.data, bias!.quantization, 0);
    if (t.shape.length === 2) {
      const inputs = [this.use(t), w, ...(bias ? [b()] : [])];
      return { name: this.emit('Gemm', inputs, this.claim(out)), shape, nchw: false };
    }
    if (!bias) return { name: this.emit('MatMul', [this.use(t), w], this.claim(out)), shape, nchw: false };
    const mm = this.emit('MatMul', [this.use(t), w], this.fresh(`${out}/matmul`));
    return { name: this.emit('Add', [mm, b()], this.claim(out)), shape, nchw: false };
  }

  /** General matrix product of two tensors in TF layout (rank >= 2), with optional transposes. */
  matmul(a: Value, b: Value, transposeA: boolean, transposeB: boolean, out: string): Value {
    const prep = (v: Value, transpose: boolean): { name: string; shape: number[] } => {
      const t = this.toTf(v);
      const r = t.shape.length;
      if (r < 2) throw new HeadswapError(`${out}: MatMul operand '${v.name}' has rank ${r}`);
      if (!transpose) return { name: this.use(t), shape: [...t.shape] };
      const perm = [...Array(r - 2).keys(), r - 1, r - 2];
      const shape = perm.map((p) => t.shape[p]!);
      if (t.data) {
        const c = this.constant(this.fresh(`${v.name}/transposed`), shape, transposeData(t.data, t.shape, perm));
        return { name: this.use(c), shape };
      }
      return { name: this.emit('Transpose', [this.use(t)], this.fresh(`${v.name}/transposed`), [attr.ints('perm', perm)]), shape };
    };
    const x = prep(a, transposeA);
    const y = prep(b, transposeB);
    const shape = [...x.shape.slice(0, -1), y.shape.at(-1)!];
    return { name: this.emit('MatMul', [x.name, y.name], this.claim(out)), shape, nchw: false };
  }

  concat(values: readonly Value[], axis: number, out: string): Value {
    const first = values[0];
    if (!first) throw new HeadswapError(`${out}: concatenation of nothing`);
    const rank = first.shape.length;
    const ax = axis < 0 ? axis + rank : axis;
    if (ax < 0 || ax >= rank || values.some((v) => v.shape.length !== rank)) throw new HeadswapError(`${out}: cannot concatenate on axis ${axis} tensors of shapes ${values.map((v) => `[${v.shape.join(',')}]`).join(' ')}`);
    const shape = [...first.shape];
    shape[ax] = values.some((v) => v.shape[ax]! < 0) ? -1 : values.reduce((s, v) => s + v.shape[ax]!, 0);
    const nchw = rank === 4 && values.some((v) => v.nchw);
    const names = values.map((v) => this.use(nchw ? this.toNchw(v) : this.toTf(v)));
    const onnxAxis = nchw ? TO_NCHW.indexOf(ax) : ax;
    return { name: this.emit('Concat', names, this.claim(out), [attr.int('axis', onnxAxis)]), shape, nchw };
  }

  /**
   * Removes `axes` (TF numbering) of `x`, by a reduction or a squeeze. On an NCHW map the
   * surviving axes may come out in a different order than TF's, and are then transposed back.
   */
  private dropAxes(x: Value, axes: number[], out: string, make: (input: string, onnxAxes: number[], name: string) => string): Value {
    const rank = x.shape.length;
    const shape = x.shape.filter((_, i) => !axes.includes(i));
    if (!x.nchw) return { name: make(this.use(x), axes, this.claim(out)), shape, nchw: false };
    const onnxAxes = axes.map((a) => TO_NCHW.indexOf(a)).sort((p, q) => p - q);
    const survivors = TO_NCHW.filter((a) => !axes.includes(a));
    const sorted = [...survivors].sort((p, q) => p - q);
    if (survivors.every((a, i) => a === sorted[i])) return { name: make(this.use(x), onnxAxes, this.claim(out)), shape, nchw: false };
    if (rank !== 4) throw new HeadswapError(`${out}: internal layout error`);
    const mid = make(this.use(x), onnxAxes, this.fresh(`${out}/nchw`));
    const perm = sorted.map((a) => survivors.indexOf(a));
    return { name: this.emit('Transpose', [mid], this.claim(out), [attr.ints('perm', perm)]), shape, nchw: false };
  }

  reduce(kind: ReduceOp, x: Value, axes: readonly number[], keepDims: boolean, out: string): Value {
    const rank = x.shape.length;
    const ax = [...new Set(axes.map((a) => (a < 0 ? a + rank : a)))].sort((p, q) => p - q);
    if (ax.some((a) => a < 0 || a >= rank)) throw new HeadswapError(`${out}: reduction axes [${axes.join(',')}] out of range for rank ${rank}`);
    // Global pooling of an image map: the op the feature-cut search and onnxruntime know best.
    if (rank === 4 && (kind === 'mean' || kind === 'max') && ax.join() === '1,2') {
      const pooled = this.emit(kind === 'mean' ? 'GlobalAveragePool' : 'GlobalMaxPool', [this.use(this.toNchw(x))], keepDims ? this.claim(out) : this.fresh(`${out}/pool`));
      const [n, , , c] = x.shape as [number, number, number, number];
      if (keepDims) return { name: pooled, shape: [n, 1, 1, c], nchw: true };
      return { name: this.emit('Flatten', [pooled], this.claim(out), [attr.int('axis', 1)]), shape: [n, c], nchw: false };
    }
    const op = { mean: 'ReduceMean', max: 'ReduceMax', min: 'ReduceMin', sum: 'ReduceSum', prod: 'ReduceProd' }[kind];
    // ReduceSum takes its axes as an input from opset 13, the others as an attribute.
    const make = (input: string, onnxAxes: number[], name: string, keep: boolean): string =>
      op === 'ReduceSum'
        ? this.emit(op, [input, this.int64(`${name}/axes`, onnxAxes)], name, [attr.int('keepdims', keep ? 1 : 0)])
        : this.emit(op, [input], name, [attr.ints('axes', onnxAxes), attr.int('keepdims', keep ? 1 : 0)]);
    if (keepDims) {
      const onnxAxes = x.nchw ? ax.map((a) => TO_NCHW.indexOf(a)) : ax;
      const shape = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
      return { name: make(this.use(x), onnxAxes, this.claim(out), true), shape, nchw: x.nchw };
    }
    return this.dropAxes(x, ax, out, (input, onnxAxes, name) => make(input, onnxAxes, name, false));
  }

  squeeze(x: Value, axes: readonly number[], out: string): Value {
    const rank = x.shape.length;
    let ax = axes.map((a) => (a < 0 ? a + rank : a));
    if (ax.length === 0) ax = x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
    ax = [...new Set(ax)].sort((p, q) => p - q);
    for (const a of ax) if (x.shape[a] !== 1) throw new HeadswapError(`${out}: cannot squeeze axis ${a} of shape [${x.shape.join(',')}]`);
    return this.dropAxes(x, ax, out, (input, onnxAxes, name) => this.emit('Squeeze', [input, this.int64(`${name}/axes`, onnxAxes)], name));
  }

  /** TF reshape (row-major over the NHWC tensor); `target` may hold one -1. */
  reshape(x: Value, target: readonly number[], out: string): Value {
    const t = this.toTf(x);
    const known = count(t.shape.filter((d) => d >= 0));
    const fixed = count(target.filter((d) => d >= 0));
    const unknownIn = t.shape.some((d) => d < 0);
    const shape = target.map((d) => (d >= 0 ? d : unknownIn ? -1 : known / fixed));
    return { name: this.emit('Reshape', [this.use(t), this.int64(`${out}/shape`, [...target])], this.claim(out)), shape, nchw: false };
  }

  /** Keras Reshape: the batch dimension is kept (ONNX 0 = copy it). */
  reshapeKeepBatch(x: Value, target: readonly number[], out: string): Value {
    const t = this.toTf(x);
    const perImage = count(t.shape.slice(1));
    const fixed = count(target.filter((d) => d >= 0));
    const shape = [t.shape[0]!, ...target.map((d) => (d >= 0 ? d : perImage / fixed))];
    return { name: this.emit('Reshape', [this.use(t), this.int64(`${out}/shape`, [0, ...target])], this.claim(out)), shape, nchw: false };
  }

  flatten(x: Value, out: string): Value {
    // A 1x1 map flattens to the same values in either layout.
    const oneByOne = x.nchw && x.shape[1] === 1 && x.shape[2] === 1;
    const t = oneByOne ? x : this.toTf(x);
    const shape = [t.shape[0]!, count(t.shape.slice(1))];
    return { name: this.emit('Flatten', [this.use(t)], this.claim(out), [attr.int('axis', 1)]), shape, nchw: false };
  }

  expandDims(x: Value, axis: number, out: string): Value {
    const t = this.toTf(x);
    const ax = axis < 0 ? axis + t.shape.length + 1 : axis;
    const shape = [...t.shape.slice(0, ax), 1, ...t.shape.slice(ax)];
    return { name: this.emit('Unsqueeze', [this.use(t), this.int64(`${out}/axes`, [ax])], this.claim(out)), shape, nchw: false };
  }

  transpose(x: Value, perm: readonly number[], out: string): Value {
    const t = this.toTf(x);
    return { name: this.emit('Transpose', [this.use(t)], this.claim(out), [attr.ints('perm', [...perm])]), shape: perm.map((p) => t.shape[p]!), nchw: false };
  }

  /** `paddings`: [before, after] per TF axis. */
  pad(x: Value, paddings: readonly (readonly [number, number])[], mode: 'constant' | 'reflect', value: number, out: string): Value {
    const rank = x.shape.length;
    if (paddings.length !== rank) throw new HeadswapError(`${out}: ${paddings.length} paddings for a rank-${rank} tensor`);
    const order = x.nchw ? TO_NCHW : [...Array(rank).keys()];
    const pads = [...order.map((a) => paddings[a]![0]), ...order.map((a) => paddings[a]![1])];
    const shape = x.shape.map((d, i) => (d < 0 ? d : d + paddings[i]![0] + paddings[i]![1]));
    const inputs = [this.use(x), this.int64(`${out}/pads`, pads)];
    if (mode === 'constant') inputs.push(this.init(`${out}/value`, [], [value]));
    return { name: this.emit('Pad', inputs, this.claim(out), [strAttr('mode', mode)]), shape, nchw: x.nchw };
  }

  /** Keras Cropping2D: [top, bottom, left, right] pixels removed. */
  crop(x: Value, c: readonly [number, number, number, number], out: string): Value {
    const [n, h, w, ch] = this.spatial(x, out);
    const v = this.toNchw(x);
    const name = this.emit('Slice', [this.use(v), this.int64(`${out}/starts`, [c[0], c[2]]), this.int64(`${out}/ends`, [h - c[1], w - c[3]]), this.int64(`${out}/axes`, [2, 3])], this.claim(out));
    return { name, shape: [n, h - c[0] - c[1], w - c[2] - c[3], ch], nchw: true };
  }

  /** Nearest-neighbour upsampling by integer factors, as tf.image.resizeNearestNeighbor (no corner alignment). */
  upsample(x: Value, factor: readonly [number, number], out: string): Value {
    const [n, h, w, c] = this.spatial(x, out);
    const name = this.emit('Resize', [this.use(this.toNchw(x)), '', this.init(`${out}/scales`, [4], [1, 1, factor[0], factor[1]])], this.claim(out), [
      strAttr('mode', 'nearest'),
      strAttr('coordinate_transformation_mode', 'asymmetric'),
      strAttr('nearest_mode', 'floor'),
    ]);
    return { name, shape: [n, h * factor[0], w * factor[1], c], nchw: true };
  }

  /**
   * The finished model. Outputs are given in TF layout under their TF names: an NCHW tensor that
   * is an output is renamed `<name>/nchw` and transposed into `<name>`.
   */
  finish(outputs: readonly { name: string; value: Value }[], meta: Record<string, string>, graphName = 'tfjs-import'): ModelProto {
    const graphOutputs: { name: string; shape: readonly number[] }[] = [];
    for (const { name, value } of outputs) {
      if (graphOutputs.some((o) => o.name === name)) continue;
      const computed = !value.data && !this.inputs.some((i) => i.name === value.name);
      if (computed && value.name === name && !value.nchw) {
        graphOutputs.push({ name, shape: value.shape });
      } else if (computed && value.name === name) {
        const moved = this.fresh(`${name}/nchw`);
        this.rename(name, moved);
        this.emit('Transpose', [moved], name, [attr.ints('perm', TO_NHWC)]);
        // Later requests for this tensor in TF layout get the output itself.
        this.layoutCache.set(`tf:${name}`, { name, shape: value.shape, nchw: false });
        graphOutputs.push({ name, shape: value.shape });
      } else {
        // An alias (Identity, nested model), a constant or the input: copied under the requested name.
        const t = this.toTf(value);
        const target = this.used.has(name) || this.inputs.some((i) => i.name === name) ? this.fresh(name) : name;
        this.used.add(target);
        this.emit('Identity', [this.use(t)], target);
        graphOutputs.push({ name: target, shape: value.shape });
      }
    }
    const dims = (shape: readonly number[]): (number | string)[] => shape.map((d, i) => (d >= 0 ? d : i === 0 ? 'batch' : `dim${i}`));
    return createModel({
      irVersion: 8,
      opsetImport: [{ domain: '', version: IMPORT_OPSET }],
      producerName: 'headswap',
      producerVersion: HEADSWAP_VERSION,
      metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
      graph: {
        name: graphName,
        node: this.nodes,
        initializer: this.inits,
        input: this.inputs.map((i) => valueInfo(i.name, DataType.FLOAT, dims(i.shape))),
        output: graphOutputs.map((o) => valueInfo(o.name, DataType.FLOAT, dims(o.shape))),
      },
    });
  }

  private rename(from: string, to: string): void {
    for (const n of this.nodes) {
      n.input = (n.input ?? []).map((i) => (i === from ? to : i));
      n.output = (n.output ?? []).map((o) => (o === from ? to : o));
      if (n.name === from) n.name = to;
    }
  }
}
