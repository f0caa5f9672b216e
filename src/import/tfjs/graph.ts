import { HeadswapError } from '../../errors.js';
import { GraphBuilder, type BinaryOp, type Padding, type ReduceOp, type Value } from '../../onnx/builder.js';
import { resolveInputShape, summarize, unsupportedError, type ConvertOptions, type Converted } from './common.js';
import { isRecord, type ModelJson, type Weight } from './manifest.js';

/** TensorFlow ops the importer converts (`graph-model` format). */
export const SUPPORTED_OPS = [
  'Placeholder', 'Const', 'Identity', 'StopGradient', 'Snapshot', 'NoOp',
  'Conv2D', '_FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2dNative',
  'FusedBatchNorm', 'FusedBatchNormV2', 'FusedBatchNormV3', 'BiasAdd',
  'Relu', 'Relu6', 'Elu', 'Selu', 'LeakyRelu', 'Prelu', 'Sigmoid', 'Tanh', 'Softplus', 'Softmax',
  'Exp', 'Log', 'Sqrt', 'Rsqrt', 'Square', 'Neg', 'Abs', 'Reciprocal', 'Floor', 'Ceil',
  'Add', 'AddV2', 'Sub', 'Mul', 'RealDiv', 'Div', 'Maximum', 'Minimum', 'Pow', 'SquaredDifference',
  'AvgPool', 'MaxPool', 'Mean', 'Max', 'Min', 'Sum', 'Prod',
  'ConcatV2', 'Concat', 'Squeeze', 'ExpandDims', 'Reshape', 'Transpose', 'Cast', 'Pad', 'PadV2', 'MirrorPad',
  'MatMul', '_FusedMatMul',
] as const;

const SUPPORTED = new Set<string>(SUPPORTED_OPS);
const ALIASES = new Set(['Identity', 'StopGradient', 'Snapshot']);
const BINARY: Record<string, BinaryOp> = { Add: 'Add', AddV2: 'Add', BiasAdd: 'Add', Sub: 'Sub', Mul: 'Mul', RealDiv: 'Div', Div: 'Div', Maximum: 'Max', Minimum: 'Min', Pow: 'Pow' };
const SIMPLE = { Relu: 'Relu', Sigmoid: 'Sigmoid', Tanh: 'Tanh', Softplus: 'Softplus', Selu: 'Selu', Exp: 'Exp', Log: 'Log', Sqrt: 'Sqrt', Neg: 'Neg', Abs: 'Abs', Reciprocal: 'Reciprocal', Floor: 'Floor', Ceil: 'Ceil' } as const;
const REDUCE: Record<string, ReduceOp> = { Mean: 'mean', Max: 'max', Min: 'min', Sum: 'sum', Prod: 'prod' };

interface TfNode {
  readonly name: string;
  readonly op: string;
  /** Data inputs as `node` or `node:k`; control inputs (`^node`) are dropped. */
  readonly inputs: string[];
  readonly attr: Record<string, unknown>;
}

function parseNodes(topology: Record<string, unknown>, source: string): TfNode[] {
  if (!Array.isArray(topology.node)) throw new HeadswapError(`${source}: graph model has no node list`);
  if (Array.isArray((topology.library as { function?: unknown[] } | undefined)?.function) && (topology.library as { function: unknown[] }).function.length > 0) {
    throw new HeadswapError(`${source}: graph model uses control flow functions (library), which headswap cannot import`);
  }
  return topology.node.map((n): TfNode => {
    if (!isRecord(n) || typeof n.name !== 'string' || typeof n.op !== 'string') throw new HeadswapError(`${source}: a graph node has no name or op; the model is damaged`);
    const inputs = (Array.isArray(n.input) ? n.input : []).map(String).filter((i) => !i.startsWith('^'));
    return { name: n.name, op: n.op, inputs, attr: isRecord(n.attr) ? n.attr : {} };
  });
}

/** `node:0` and `node` are the same tensor. */
function tensorKey(ref: string): string {
  return ref.endsWith(':0') ? ref.slice(0, -2) : ref;
}

function nodeOf(ref: string): string {
  const m = /^(.*):\d+$/.exec(ref);
  return m ? m[1]! : ref;
}

class Attrs {
  constructor(private readonly n: TfNode, private readonly what: string) {}

  private get(key: string): Record<string, unknown> | undefined {
    const v = this.n.attr[key];
    return isRecord(v) ? v : undefined;
  }

  /** Strings are base64 in the JSON GraphDef. */
  str(key: string): string | undefined {
    const s = this.get(key)?.s;
    return typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : undefined;
  }

  strList(key: string): string[] {
    const list = this.get(key)?.list;
    const s = isRecord(list) && Array.isArray(list.s) ? list.s : [];
    return s.map((x) => Buffer.from(String(x), 'base64').toString('utf8'));
  }

  ints(key: string): number[] {
    const list = this.get(key)?.list;
    return (isRecord(list) && Array.isArray(list.i) ? list.i : []).map(Number);
  }

  float(key: string, dflt: number): number {
    const f = this.get(key)?.f;
    return typeof f === 'number' ? f : dflt;
  }

  bool(key: string): boolean {
    return this.get(key)?.b === true;
  }

  shape(key: string): number[] | undefined {
    const shape = this.get(key)?.shape;
    if (!isRecord(shape) || shape.unknownRank === true) return undefined;
    return (Array.isArray(shape.dim) ? shape.dim : []).map((d) => (isRecord(d) ? Number(d.size ?? -1) : -1));
  }

  /** NHWC only: TF.js itself runs NCHW convolutions only on some backends. */
  nhwc(): void {
    const f = this.str('data_format');
    if (f !== undefined && f !== 'NHWC') throw new HeadswapError(`${this.what}: data_format ${f} is not supported (NHWC is)`);
  }

  /** Spatial part of a 4-entry NHWC list (strides, dilations, ksize). */
  hw(key: string, dflt: [number, number]): [number, number] {
    const l = this.ints(key);
    return l.length === 4 ? [l[1]!, l[2]!] : dflt;
  }

  padding(): Padding {
    const p = this.str('padding');
    if (p === 'SAME') return 'same';
    if (p === 'VALID') return 'valid';
    if (p === 'EXPLICIT') {
      const e = this.ints('explicit_paddings');
      if (e.length !== 8) throw new HeadswapError(`${this.what}: EXPLICIT padding without 8 explicit_paddings`);
      return { explicit: [e[2]!, e[3]!, e[4]!, e[5]!] };
    }
    throw new HeadswapError(`${this.what}: unknown padding '${String(p)}'`);
  }
}

class GraphConverter {
  readonly b: GraphBuilder;
  readonly values = new Map<string, Value>();

  constructor(private readonly source: string, private readonly weights: ReadonlyMap<string, Weight>, reserved: ReadonlySet<string>, private readonly options: ConvertOptions) {
    this.b = new GraphBuilder(reserved);
  }

  private value(ref: string, n: TfNode): Value {
    const v = this.values.get(tensorKey(ref));
    if (!v) throw new HeadswapError(`${this.source}: node '${n.name}' reads '${ref}', which no supported node produces`);
    return v;
  }

  private constData(ref: string, n: TfNode, what: string): Float32Array | Int32Array {
    const v = this.value(ref, n);
    if (!v.data) throw new HeadswapError(`${this.source}: node '${n.name}' (${n.op}): its ${what} must be a constant, but '${ref}' is computed`);
    return v.data;
  }

  private ints(ref: string, n: TfNode, what: string): number[] {
    return [...this.constData(ref, n, what)].map(Number);
  }

  private floats(ref: string, n: TfNode, what: string): Float32Array {
    const d = this.constData(ref, n, what);
    return d instanceof Float32Array ? d : Float32Array.from(d);
  }

  private kernel(ref: string, n: TfNode): { data: Float32Array; shape: readonly number[] } {
    return { data: this.floats(ref, n, 'filter'), shape: this.value(ref, n).shape };
  }

  convert(n: TfNode): void {
    const what = `${this.source}: node '${n.name}' (${n.op})`;
    const a = new Attrs(n, what);
    const b = this.b;
    const input = (i: number): Value => {
      const ref = n.inputs[i];
      if (ref === undefined) throw new HeadswapError(`${what}: missing input ${i}`);
      return this.value(ref, n);
    };
    const set = (v: Value): void => {
      this.values.set(n.name, v);
    };
    const op = n.op;
    if (op === 'NoOp') return;
    if (ALIASES.has(op)) return set(input(0));
    if (op === 'Placeholder') {
      const dtype = isRecord(n.attr.dtype) ? n.attr.dtype.type : undefined;
      if (dtype !== undefined && dtype !== 'DT_FLOAT') throw new HeadswapError(`${what}: the input is ${String(dtype)}; headswap imports models with a float image input`);
      const shape = a.shape('shape');
      if (!shape) throw new HeadswapError(`${what}: the input's shape is not recorded`);
      return set(b.input(n.name, resolveInputShape(shape.map((d) => (d < 0 ? null : d)), this.options, what)));
    }
    if (op === 'Const') return set(this.constant(n, what));
    if (op in SIMPLE) return set(b.simple(SIMPLE[op as keyof typeof SIMPLE], input(0), n.name));
    if (op === 'BiasAdd') a.nhwc();
    if (op in BINARY) return set(b.binary(BINARY[op]!, input(0), input(1), n.name));
    if (op in REDUCE) return set(b.reduce(REDUCE[op]!, input(0), this.ints(n.inputs[1] ?? '', n, 'axes'), a.bool('keep_dims'), n.name));
    switch (op) {
      case 'Conv2D':
      case '_FusedConv2D':
      case 'DepthwiseConv2dNative':
      case 'FusedDepthwiseConv2dNative': {
        a.nhwc();
        const depthwise = op.includes('Depthwise');
        const fused = this.fusedOps(a);
        const bias = fused.bias ? this.floats(n.inputs[2] ?? '', n, 'bias') : undefined;
        const opts = { strides: a.hw('strides', [1, 1]), dilations: a.hw('dilations', [1, 1]), padding: a.padding(), depthwise, ...(bias ? { bias } : {}) };
        const conv = b.conv(input(0), this.kernel(n.inputs[1] ?? '', n), opts, fused.activation ? b.fresh(`${n.name}/conv`) : n.name);
        return set(this.fusedActivation(conv, fused.activation, n, a, 3));
      }
      case '_FusedMatMul': {
        const fused = this.fusedOps(a);
        const mm = b.matmul(input(0), input(1), a.bool('transpose_a'), a.bool('transpose_b'), fused.bias ? b.fresh(`${n.name}/matmul`) : n.name);
        const biased = fused.bias ? b.binary('Add', mm, input(2), fused.activation ? b.fresh(`${n.name}/biased`) : n.name) : mm;
        return set(this.fusedActivation(biased, fused.activation, n, a, 3));
      }
      case 'MatMul':
        return set(b.matmul(input(0), input(1), a.bool('transpose_a'), a.bool('transpose_b'), n.name));
      case 'FusedBatchNorm':
      case 'FusedBatchNormV2':
      case 'FusedBatchNormV3':
        a.nhwc();
        return set(b.batchNorm(input(0), {
          gamma: this.floats(n.inputs[1] ?? '', n, 'scale'),
          beta: this.floats(n.inputs[2] ?? '', n, 'offset'),
          mean: this.floats(n.inputs[3] ?? '', n, 'mean'),
          variance: this.floats(n.inputs[4] ?? '', n, 'variance'),
          epsilon: a.float('epsilon', 1e-3),
        }, n.name));
      case 'Relu6':
        return set(b.clip(input(0), 0, 6, n.name));
      case 'Elu':
        return set(b.elu(input(0), 1, n.name));
      case 'LeakyRelu':
        return set(b.leakyRelu(input(0), a.float('alpha', 0.2), n.name));
      case 'Prelu':
        return set(b.prelu(input(0), input(1), n.name));
      case 'Rsqrt':
        return set(b.simple('Reciprocal', b.simple('Sqrt', input(0), b.fresh(`${n.name}/sqrt`)), n.name));
      case 'Square':
        return set(b.binary('Mul', input(0), input(0), n.name));
      case 'SquaredDifference': {
        const d = b.binary('Sub', input(0), input(1), b.fresh(`${n.name}/diff`));
        return set(b.binary('Mul', d, d, n.name));
      }
      case 'Softmax':
        return set(b.softmax(input(0), n.name));
      case 'AvgPool':
      case 'MaxPool':
        a.nhwc();
        return set(b.pool(input(0), op === 'MaxPool' ? 'max' : 'avg', a.hw('ksize', [1, 1]), a.hw('strides', [1, 1]), a.padding(), n.name));
      case 'ConcatV2':
      case 'Concat': {
        const axisRef = op === 'ConcatV2' ? n.inputs.at(-1) : n.inputs[0];
        const parts = op === 'ConcatV2' ? n.inputs.slice(0, -1) : n.inputs.slice(1);
        const axis = this.ints(axisRef ?? '', n, 'axis')[0] ?? 0;
        return set(b.concat(parts.map((r) => this.value(r, n)), axis, n.name));
      }
      case 'Squeeze':
        return set(b.squeeze(input(0), a.ints('squeeze_dims'), n.name));
      case 'Reshape':
        return set(b.reshape(input(0), this.ints(n.inputs[1] ?? '', n, 'shape'), n.name));
      case 'ExpandDims':
        return set(b.expandDims(input(0), this.ints(n.inputs[1] ?? '', n, 'axis')[0] ?? 0, n.name));
      case 'Transpose':
        return set(b.transpose(input(0), this.ints(n.inputs[1] ?? '', n, 'perm'), n.name));
      case 'Cast': {
        // Everything the importer computes is float32: only a cast to float is a no-op it can keep.
        const to = isRecord(n.attr.DstT) ? n.attr.DstT.type : undefined;
        if (to !== 'DT_FLOAT') throw new HeadswapError(`${what}: cast to ${String(to)} is not supported (only to float32)`);
        return set(input(0));
      }
      case 'Pad':
      case 'PadV2':
      case 'MirrorPad': {
        const flat = this.ints(n.inputs[1] ?? '', n, 'paddings');
        const pads = Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!] as [number, number]);
        if (op === 'MirrorPad' && a.str('mode') !== 'REFLECT') throw new HeadswapError(`${what}: mode ${String(a.str('mode'))} is not supported (REFLECT is)`);
        const value = op === 'PadV2' ? (this.floats(n.inputs[2] ?? '', n, 'constant value')[0] ?? 0) : 0;
        return set(b.pad(input(0), pads, op === 'MirrorPad' ? 'reflect' : 'constant', value, n.name));
      }
    }
    throw new HeadswapError(`${what}: unsupported op`);
  }

  private constant(n: TfNode, what: string): Value {
    const w = this.weights.get(n.name);
    if (w) {
      if (w.data instanceof Uint8Array) throw new HeadswapError(`${what}: bool constants are not supported`);
      return this.b.constant(n.name, w.shape, w.data);
    }
    // Small constants may stay inside the graph JSON instead of the weight files.
    const tensor = isRecord(n.attr.value) && isRecord(n.attr.value.tensor) ? n.attr.value.tensor : undefined;
    if (tensor) {
      const dims = isRecord(tensor.tensorShape) && Array.isArray(tensor.tensorShape.dim) ? tensor.tensorShape.dim.map((d) => (isRecord(d) ? Number(d.size ?? 0) : 0)) : [];
      const size = dims.reduce((p, q) => p * q, 1);
      const fill = (vals: unknown, make: (n: number) => Float32Array | Int32Array): Float32Array | Int32Array | undefined => {
        if (!Array.isArray(vals) || vals.length === 0) return undefined;
        const out = make(size);
        // A single value stands for all of them, as in TF's TensorProto.
        for (let i = 0; i < size; i++) out[i] = Number(vals[Math.min(i, vals.length - 1)]);
        return out;
      };
      const data = tensor.dtype === 'DT_INT32' ? fill(tensor.intVal, (k) => new Int32Array(k)) : tensor.dtype === 'DT_FLOAT' ? fill(tensor.floatVal, (k) => new Float32Array(k)) : undefined;
      if (data) return this.b.constant(n.name, dims, data);
    }
    throw new HeadswapError(`${what}: constant not found in the weights manifest; the model.json and its weights do not match`);
  }

  /** The fused ops, already checked by `isFusable`. */
  private fusedOps(a: Attrs): { bias: boolean; activation?: string } {
    const ops = a.strList('fused_ops');
    if (ops.length === 0) return { bias: false };
    return ops[1] === undefined ? { bias: true } : { bias: true, activation: ops[1] };
  }

  /** The activation a fused op ends with; Prelu's alpha is the input after the bias. */
  private fusedActivation(x: Value, activation: string | undefined, n: TfNode, a: Attrs, alphaInput: number): Value {
    const b = this.b;
    switch (activation) {
      case undefined:
        return x;
      case 'Relu':
        return b.simple('Relu', x, n.name);
      case 'Relu6':
        return b.clip(x, 0, 6, n.name);
      case 'Elu':
        return b.elu(x, 1, n.name);
      case 'Sigmoid':
        return b.simple('Sigmoid', x, n.name);
      case 'Tanh':
        return b.simple('Tanh', x, n.name);
      case 'LeakyRelu':
        return b.leakyRelu(x, a.float('leakyrelu_alpha', 0.2), n.name);
      case 'Prelu':
        return b.prelu(x, this.value(n.inputs[alphaInput] ?? '', n), n.name);
    }
    throw new HeadswapError(`${this.source}: node '${n.name}' (${n.op}): fused activation ${activation} is not supported`);
  }
}

const FUSED_ACTIVATIONS = new Set(['Relu', 'Relu6', 'Elu', 'Sigmoid', 'Tanh', 'LeakyRelu', 'Prelu']);

/** TF.js fuses a bias, optionally followed by one activation. */
function isFusable(ops: readonly string[]): boolean {
  return ops[0] === 'BiasAdd' && ops.length <= 2 && (ops[1] === undefined || FUSED_ACTIVATIONS.has(ops[1]));
}

/** The tensors the model outputs: its signature's, else the nodes nothing reads. */
function outputRefs(json: ModelJson, nodes: readonly TfNode[]): string[] {
  const outputs = json.signature?.outputs;
  if (isRecord(outputs)) {
    const refs = Object.values(outputs).flatMap((o) => (isRecord(o) && typeof o.name === 'string' ? [o.name] : []));
    if (refs.length > 0) return refs.map(tensorKey);
  }
  const read = new Set(nodes.flatMap((n) => n.inputs.map(nodeOf)));
  return nodes.filter((n) => !read.has(n.name) && n.op !== 'Const' && n.op !== 'NoOp' && n.op !== 'Placeholder').map((n) => n.name);
}

/** Converts a TF.js `graph-model` (frozen GraphDef JSON) with its weights to ONNX. */
export function convertGraphModel(json: ModelJson, weights: ReadonlyMap<string, Weight>, source: string, options: ConvertOptions = {}): Converted {
  const nodes = parseNodes(json.modelTopology, source);
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const outputs = outputRefs(json, nodes);
  const wanted = [...outputs, ...(options.extraOutputs ?? [])];
  // Only what the outputs depend on, in dependency order (iterative DFS: graphs can be thousands deep).
  const order: TfNode[] = [];
  const state = new Map<string, 'open' | 'done'>();
  for (const root of wanted) {
    const start = byName.get(nodeOf(root));
    if (!start) throw new HeadswapError(`${source}: no node named '${nodeOf(root)}' in the graph`);
    const stack: { n: TfNode; i: number }[] = [{ n: start, i: 0 }];
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.i === 0 && state.get(top.n.name) === 'done') {
        stack.pop();
        continue;
      }
      state.set(top.n.name, 'open');
      const ref = top.n.inputs[top.i++];
      if (ref === undefined) {
        state.set(top.n.name, 'done');
        order.push(top.n);
        stack.pop();
        continue;
      }
      const dep = byName.get(nodeOf(ref));
      if (!dep) throw new HeadswapError(`${source}: node '${top.n.name}' reads '${ref}', which is not in the graph; the model is damaged`);
      const s = state.get(dep.name);
      if (s === 'open') throw new HeadswapError(`${source}: the graph has a cycle through '${dep.name}' (control flow), which headswap cannot import`);
      if (s !== 'done') stack.push({ n: dep, i: 0 });
    }
  }
  const unsupported = new Map<string, string[]>();
  for (const n of order) {
    // A fused op is supported only with the activations it can end with.
    const fused = new Attrs(n, source).strList('fused_ops');
    const kind = !SUPPORTED.has(n.op) ? n.op : fused.length > 0 && !isFusable(fused) ? `${n.op} with ${fused.join('+')}` : undefined;
    if (kind) unsupported.set(kind, [...(unsupported.get(kind) ?? []), n.name]);
  }
  if (unsupported.size > 0) throw unsupportedError(source, 'op', unsupported, SUPPORTED_OPS);
  const placeholders = order.filter((n) => n.op === 'Placeholder');
  if (placeholders.length !== 1) throw new HeadswapError(`${source}: the graph has ${placeholders.length} inputs (${placeholders.map((p) => p.name).join(', ') || 'none'}); headswap imports single-image models`);
  const conv = new GraphConverter(source, weights, new Set(nodes.map((n) => n.name)), options);
  for (const n of order) {
    try {
      conv.convert(n);
    } catch (err) {
      // Shape errors from the graph builder do not know the file; name it and the node.
      if (err instanceof HeadswapError && !err.message.startsWith(source)) throw new HeadswapError(`${source}: node '${n.name}' (${n.op}): ${err.message}`);
      throw err;
    }
  }
  const model = conv.b.finish(
    wanted.map((ref) => {
      const value = conv.values.get(ref);
      if (!value) throw new HeadswapError(`${source}: output '${ref}' is not computed by the graph`);
      return { name: ref, value };
    }),
    { 'headswap.tfjs.format': 'graph-model' },
  );
  return summarize(model);
}
