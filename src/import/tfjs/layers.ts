import { HeadswapError } from '../../errors.js';
import { ACTIVATIONS, GraphBuilder, type Activation, type BinaryOp, type Padding, type Value } from '../../onnx/builder.js';
import { floats, resolveInputShape, summarize, unsupportedError, type ConvertOptions, type Converted } from './common.js';
import { isRecord, type ModelJson, type Weight } from './manifest.js';

/** Keras layer classes the importer converts (`layers-model` format). */
export const SUPPORTED_LAYERS = [
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'SeparableConv2D', 'BatchNormalization', 'Dense',
  'ReLU', 'LeakyReLU', 'PReLU', 'ELU', 'Softmax', 'Activation',
  'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'GlobalMaxPooling2D',
  'ZeroPadding2D', 'Cropping2D', 'UpSampling2D', 'Flatten', 'Reshape', 'Permute', 'Rescaling',
  'Add', 'Subtract', 'Multiply', 'Average', 'Maximum', 'Minimum', 'Concatenate',
  'Dropout', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'ActivityRegularization',
  'Sequential', 'Functional', 'Model',
] as const;

const MODEL_CLASSES = new Set(['Sequential', 'Functional', 'Model']);
const IDENTITY_LAYERS = new Set(['Dropout', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'ActivityRegularization']);
const SUPPORTED = new Set<string>(SUPPORTED_LAYERS);

interface Layer {
  readonly className: string;
  readonly name: string;
  readonly config: Record<string, unknown>;
  /** Functional models: per call, the [layer, node, tensor] it reads. */
  readonly inbound: readonly (readonly [string, number, number])[][];
}

function parseLayer(raw: unknown, source: string): Layer {
  if (!isRecord(raw) || typeof raw.class_name !== 'string' || !isRecord(raw.config)) {
    throw new HeadswapError(`${source}: a layer entry has no class_name/config; the model topology is damaged`);
  }
  const name = typeof raw.name === 'string' ? raw.name : typeof raw.config.name === 'string' ? raw.config.name : '';
  if (!name) throw new HeadswapError(`${source}: a ${raw.class_name} layer has no name`);
  const inbound = Array.isArray(raw.inbound_nodes) ? raw.inbound_nodes.map((n) => parseInbound(n, name, source)) : [];
  return { className: raw.class_name, name, config: raw.config, inbound };
}

function parseInbound(n: unknown, layer: string, source: string): [string, number, number][] {
  // Keras 2 form: [[layer, node, tensor, kwargs], ...]; Keras 3's {args, kwargs} form is not read by TF.js either.
  if (!Array.isArray(n)) throw new HeadswapError(`${source}: layer '${layer}' has inbound nodes in a format TF.js does not read (Keras 3?); re-export with Keras 2 / tf.keras`);
  return n.map((t) => {
    if (!Array.isArray(t) || typeof t[0] !== 'string') throw new HeadswapError(`${source}: layer '${layer}' has a malformed inbound node`);
    return [t[0], Number(t[1] ?? 0), Number(t[2] ?? 0)];
  });
}

/** Layers of a model config (Sequential configs are a list, or `{layers}` in newer files). */
function modelLayers(config: unknown, source: string): Layer[] {
  const list = Array.isArray(config) ? config : isRecord(config) && Array.isArray(config.layers) ? config.layers : undefined;
  if (!list) throw new HeadswapError(`${source}: a model config has no layers list`);
  return list.map((l) => parseLayer(l, source));
}

function walk(layers: readonly Layer[], source: string, visit: (l: Layer) => void): void {
  for (const l of layers) {
    visit(l);
    if (MODEL_CLASSES.has(l.className)) walk(modelLayers(l.config, source), source, visit);
  }
}

function pair(v: unknown, what: string, dflt?: [number, number]): [number, number] {
  if (v == null && dflt) return dflt;
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
  throw new HeadswapError(`${what}: expected a number or a pair, got ${JSON.stringify(v)}`);
}

/** Keras ZeroPadding2D/Cropping2D amounts: n, [h, w] or [[top, bottom], [left, right]] → [t, b, l, r]. */
function fourSides(v: unknown, what: string): [number, number, number, number] {
  if (typeof v === 'number') return [v, v, v, v];
  if (Array.isArray(v) && v.length === 2) {
    if (v.every((x) => typeof x === 'number')) return [v[0] as number, v[0] as number, v[1] as number, v[1] as number];
    const [h, w] = v.map((x) => pair(x, what));
    return [h![0], h![1], w![0], w![1]];
  }
  throw new HeadswapError(`${what}: cannot read amounts ${JSON.stringify(v)}`);
}

function findActivation(v: unknown): Activation | undefined {
  // TF.js may write camelCase (hardSigmoid), Keras snake_case.
  const normal = (v == null ? 'linear' : String(v)).replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  return ACTIVATIONS.find((a) => a === normal);
}

function activationName(v: unknown, what: string): Activation {
  const found = findActivation(v);
  if (!found) throw new HeadswapError(`${what}: unsupported activation '${String(v)}'; headswap imports ${ACTIVATIONS.join(', ')}`);
  return found;
}

function padding(v: unknown, what: string): Padding {
  if (v === 'same' || v === 'valid') return v;
  throw new HeadswapError(`${what}: unsupported padding '${String(v)}' (same and valid are)`);
}

function num(v: unknown, dflt: number): number {
  return typeof v === 'number' ? v : dflt;
}

/** Finds a layer's weights by name as TF.js does: `<layer>/<param>`, possibly under a model scope or TF 2.2's cell name. */
class Weights {
  constructor(private readonly all: ReadonlyMap<string, Weight>, private readonly source: string) {}

  find(layer: string, param: string): Weight | undefined {
    const exact = this.all.get(`${layer}/${param}`);
    if (exact) return exact;
    const matches = [...this.all.keys()].filter((k) => k.endsWith(`/${layer}/${param}`) || (k.startsWith(`${layer}/`) && k.endsWith(`/${param}`) && k.split('/').length === 3));
    if (matches.length > 1) throw new HeadswapError(`${this.source}: weights ${matches.join(', ')} all match layer '${layer}' ${param}; cannot tell which is meant`);
    return matches[0] === undefined ? undefined : this.all.get(matches[0]);
  }

  get(layer: string, param: string): Weight {
    const w = this.find(layer, param);
    if (!w) throw new HeadswapError(`${this.source}: layer '${layer}' needs weight '${layer}/${param}', which the weights manifest does not list; the model.json and its weights do not match`);
    return w;
  }

  floats(layer: string, param: string, rank?: number): { data: Float32Array; shape: readonly number[] } {
    return floats(this.get(layer, param), `${this.source}: layer '${layer}'`, rank);
  }

  vector(layer: string, param: string): Float32Array {
    return this.floats(layer, param, 1).data;
  }
}

class LayersConverter {
  private readonly b: GraphBuilder;
  private readonly weights: Weights;
  /** First output of every layer by name, for extra outputs. */
  readonly byLayer = new Map<string, Value>();

  constructor(private readonly source: string, weights: ReadonlyMap<string, Weight>, reserved: ReadonlySet<string>, private readonly options: ConvertOptions) {
    this.b = new GraphBuilder(reserved);
    this.weights = new Weights(weights, source);
  }

  get builder(): GraphBuilder {
    return this.b;
  }

  /** The [N,H,W,C] shape of a model's input, looking into a nested first model if needed. */
  inputShape(model: Layer): { name: string; shape: [number, number, number, number] } {
    const what = `${this.source}: model '${model.name}'`;
    const layers = modelLayers(model.config, this.source);
    let declared: unknown;
    let name = `${model.name}_input`;
    if (model.className === 'Sequential') {
      const first = layers[0];
      if (!first) throw new HeadswapError(`${what} has no layers`);
      if (MODEL_CLASSES.has(first.className) && first.config.batch_input_shape == null && first.config.batch_shape == null) return this.inputShape(first);
      declared = first.config.batch_input_shape ?? first.config.batch_shape;
      if (first.className === 'InputLayer') name = first.name;
    } else {
      const inputs = isRecord(model.config) && Array.isArray(model.config.input_layers) ? model.config.input_layers : [];
      if (inputs.length !== 1) throw new HeadswapError(`${what} has ${inputs.length} inputs; headswap imports single-image models`);
      const ref = inputs[0] as unknown[];
      const input = layers.find((l) => l.name === ref[0]);
      if (!input) throw new HeadswapError(`${what}: input layer '${String(ref[0])}' is missing`);
      // batch_shape: the name Keras 3 writes.
      declared = input.config.batch_input_shape ?? input.config.batch_shape;
      name = input.name;
    }
    if (!Array.isArray(declared)) throw new HeadswapError(`${what}: the input shape is not declared (batch_input_shape)`);
    return { name, shape: resolveInputShape(declared as (number | null)[], this.options, what) };
  }

  /** Runs a (possibly nested) Keras model on `inputs`, or on new graph inputs at the top level. */
  callModel(model: Layer, inputs: Value[] | undefined): Value[] {
    const layers = modelLayers(model.config, this.source);
    if (model.className === 'Sequential') {
      let x: Value;
      if (inputs) {
        if (inputs.length !== 1) throw new HeadswapError(`${this.source}: model '${model.name}' called with ${inputs.length} inputs`);
        x = inputs[0]!;
      } else {
        const { name, shape } = this.inputShape(model);
        x = this.b.input(name, shape);
      }
      for (const layer of layers) {
        if (layer.className === 'InputLayer') continue;
        x = this.apply(layer, [x], layer.name);
      }
      return [x];
    }
    return this.callFunctional(model, layers, inputs);
  }

  private callFunctional(model: Layer, layers: Layer[], inputs: Value[] | undefined): Value[] {
    const config = model.config;
    const refs = (key: string): [string, number, number][] => {
      const list = config[key];
      if (!Array.isArray(list)) throw new HeadswapError(`${this.source}: model '${model.name}' has no ${key}`);
      return list.map((r) => parseInbound([r], model.name, this.source)[0]!);
    };
    const tensors = new Map<string, Value>();
    const key = (l: string, n: number, t: number): string => `${l}\u0000${n}\u0000${t}`;
    const inputRefs = refs('input_layers');
    if (inputs) {
      if (inputs.length !== inputRefs.length) throw new HeadswapError(`${this.source}: model '${model.name}' takes ${inputRefs.length} inputs, called with ${inputs.length}`);
      inputRefs.forEach(([l, n, t], i) => tensors.set(key(l, n, t), inputs[i]!));
    } else {
      const { name, shape } = this.inputShape(model);
      const [l, n, t] = inputRefs[0]!;
      tensors.set(key(l, n, t), this.b.input(name, shape));
    }
    // Keras lists layers in creation order, which is not always an order their inputs exist in.
    const pending = layers.filter((l) => l.className !== 'InputLayer').flatMap((layer) => layer.inbound.map((node, k) => ({ layer, node, k })));
    while (pending.length > 0) {
      const ready = pending.findIndex((p) => p.node.every(([l, n, t]) => tensors.has(key(l, n, t))));
      if (ready < 0) {
        const stuck = pending[0]!;
        throw new HeadswapError(`${this.source}: layer '${stuck.layer.name}' reads ${stuck.node.map(([l]) => `'${l}'`).join(', ')}, which nothing produces; the topology is damaged`);
      }
      const { layer, node, k } = pending.splice(ready, 1)[0]!;
      const ins = node.map(([l, n, t]) => tensors.get(key(l, n, t))!);
      const out = this.apply(layer, ins, k === 0 ? layer.name : this.b.fresh(`${layer.name}/call${k}`));
      tensors.set(key(layer.name, k, 0), out);
    }
    return refs('output_layers').map(([l, n, t]) => {
      const v = tensors.get(key(l, n, t));
      if (!v) throw new HeadswapError(`${this.source}: output layer '${l}' of model '${model.name}' is never computed`);
      return v;
    });
  }

  private apply(layer: Layer, inputs: Value[], out: string): Value {
    let y: Value;
    try {
      y = this.layer(layer, inputs, out);
    } catch (err) {
      // Shape errors from the graph builder do not know the file; name it and the layer.
      if (err instanceof HeadswapError && !err.message.startsWith(this.source)) throw new HeadswapError(`${this.source}: layer '${layer.name}' (${layer.className}): ${err.message}`);
      throw err;
    }
    if (!this.byLayer.has(layer.name)) this.byLayer.set(layer.name, y);
    return y;
  }

  private act(x: Value, activation: unknown, out: string, what: string): Value {
    return this.b.activation(x, activationName(activation, what), out);
  }

  /** `out` for a layer's final tensor; a fresh name when an activation comes after. */
  private pre(activation: unknown, out: string): string {
    return activation == null || activation === 'linear' ? out : this.b.fresh(`${out}/preact`);
  }

  private layer(layer: Layer, inputs: Value[], out: string): Value {
    const c = layer.config;
    const what = `${this.source}: layer '${layer.name}' (${layer.className})`;
    const b = this.b;
    const x = inputs[0];
    if (!x) throw new HeadswapError(`${what} has no input`);
    const one = (): Value => {
      if (inputs.length !== 1) throw new HeadswapError(`${what} takes one input, got ${inputs.length}`);
      return x;
    };
    if (c.data_format != null && c.data_format !== 'channels_last') throw new HeadswapError(`${what}: data_format '${String(c.data_format)}' is not supported (channels_last is)`);
    if (MODEL_CLASSES.has(layer.className)) {
      const outs = this.callModel(layer, inputs);
      if (outs.length !== 1) throw new HeadswapError(`${what}: nested models with ${outs.length} outputs are not supported`);
      return outs[0]!;
    }
    if (IDENTITY_LAYERS.has(layer.className)) return one();
    const w = this.weights;
    switch (layer.className) {
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        const depthwise = layer.className === 'DepthwiseConv2D';
        const kernel = w.floats(layer.name, depthwise ? 'depthwise_kernel' : 'kernel', 4);
        const bias = c.use_bias === false ? undefined : w.vector(layer.name, 'bias');
        const opts = { strides: pair(c.strides, what, [1, 1]), dilations: pair(c.dilation_rate, what, [1, 1]), padding: padding(c.padding, what), groups: num(c.groups, 1), depthwise, ...(bias ? { bias } : {}) };
        return this.act(b.conv(one(), kernel, opts, this.pre(c.activation, out)), c.activation, out, what);
      }
      case 'SeparableConv2D': {
        const dw = w.floats(layer.name, 'depthwise_kernel', 4);
        const pw = w.floats(layer.name, 'pointwise_kernel', 4);
        const bias = c.use_bias === false ? undefined : w.vector(layer.name, 'bias');
        const mid = b.conv(one(), dw, { strides: pair(c.strides, what, [1, 1]), dilations: pair(c.dilation_rate, what, [1, 1]), padding: padding(c.padding, what), depthwise: true }, b.fresh(`${out}/depthwise`));
        const y = b.conv(mid, pw, { strides: [1, 1], dilations: [1, 1], padding: 'valid', ...(bias ? { bias } : {}) }, this.pre(c.activation, out));
        return this.act(y, c.activation, out, what);
      }
      case 'Dense': {
        const kernel = w.floats(layer.name, 'kernel', 2);
        const bias = c.use_bias === false ? undefined : w.vector(layer.name, 'bias');
        return this.act(b.dense(one(), kernel, bias, this.pre(c.activation, out)), c.activation, out, what);
      }
      case 'BatchNormalization': {
        const v = one();
        const axis = Array.isArray(c.axis) && c.axis.length === 1 ? Number(c.axis[0]) : num(c.axis, -1);
        if (axis !== -1 && axis !== v.shape.length - 1) throw new HeadswapError(`${what}: normalizes axis ${axis}; only the channel (last) axis is supported`);
        const channels = v.shape.at(-1)!;
        const ones = new Float32Array(channels).fill(1);
        return b.batchNorm(v, {
          gamma: c.scale === false ? ones : w.vector(layer.name, 'gamma'),
          beta: c.center === false ? new Float32Array(channels) : w.vector(layer.name, 'beta'),
          mean: w.vector(layer.name, 'moving_mean'),
          variance: w.vector(layer.name, 'moving_variance'),
          epsilon: num(c.epsilon, 1e-3),
        }, out);
      }
      case 'Activation':
        return this.act(one(), c.activation, out, what);
      case 'ReLU': {
        const max = c.max_value == null ? undefined : Number(c.max_value);
        const slope = num(c.negative_slope, 0);
        if (num(c.threshold, 0) !== 0) throw new HeadswapError(`${what}: a ReLU threshold other than 0 is not supported`);
        if (slope === 0) return max === undefined ? b.simple('Relu', one(), out) : b.clip(one(), 0, max, out);
        const leaky = b.leakyRelu(one(), slope, max === undefined ? out : b.fresh(`${out}/leaky`));
        return max === undefined ? leaky : b.clip(leaky, -3.4028234663852886e38, max, out);
      }
      case 'LeakyReLU':
        return b.leakyRelu(one(), num(c.alpha, 0.3), out);
      case 'ELU':
        return b.elu(one(), num(c.alpha, 1), out);
      case 'PReLU': {
        const alpha = w.floats(layer.name, 'alpha');
        return b.prelu(one(), b.constant(b.fresh(`${out}/alpha`), alpha.shape, alpha.data), out);
      }
      case 'Softmax': {
        const axis = num(Array.isArray(c.axis) ? c.axis[0] : c.axis, -1);
        if (axis !== -1 && axis !== x.shape.length - 1) throw new HeadswapError(`${what}: softmax over axis ${axis}; only the last axis is supported`);
        return b.softmax(one(), out);
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const size = pair(c.pool_size, what, [2, 2]);
        return b.pool(one(), layer.className === 'MaxPooling2D' ? 'max' : 'avg', size, pair(c.strides, what, size), padding(c.padding, what), out);
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        return b.reduce(layer.className === 'GlobalMaxPooling2D' ? 'max' : 'mean', one(), [1, 2], c.keepdims === true, out);
      case 'ZeroPadding2D': {
        const [t, bo, l, r] = fourSides(c.padding ?? 1, what);
        return b.pad(one(), [[0, 0], [t, bo], [l, r], [0, 0]], 'constant', 0, out);
      }
      case 'Cropping2D':
        return b.crop(one(), fourSides(c.cropping ?? 0, what), out);
      case 'UpSampling2D':
        if (c.interpolation != null && c.interpolation !== 'nearest') throw new HeadswapError(`${what}: interpolation '${String(c.interpolation)}' is not supported (nearest is)`);
        return b.upsample(one(), pair(c.size, what, [2, 2]), out);
      case 'Flatten':
        return b.flatten(one(), out);
      case 'Reshape': {
        const target = c.target_shape;
        if (!Array.isArray(target) || !target.every((d) => typeof d === 'number')) throw new HeadswapError(`${what}: no target_shape`);
        return b.reshapeKeepBatch(one(), target as number[], out);
      }
      case 'Permute': {
        const dims = c.dims;
        if (!Array.isArray(dims) || !dims.every((d) => typeof d === 'number')) throw new HeadswapError(`${what}: no dims`);
        return b.transpose(one(), [0, ...(dims as number[])], out);
      }
      case 'Rescaling': {
        const scale = num(c.scale, 1);
        const offset = num(c.offset, 0);
        const scaled = b.binary('Mul', one(), b.scalar(out, scale), offset === 0 ? out : b.fresh(`${out}/scaled`));
        return offset === 0 ? scaled : b.binary('Add', scaled, b.scalar(out, offset), out);
      }
      case 'Concatenate':
        return b.concat(inputs, num(c.axis, -1), out);
      case 'Add':
      case 'Subtract':
      case 'Multiply':
      case 'Maximum':
      case 'Minimum':
      case 'Average': {
        if (inputs.length < 2 || (layer.className === 'Subtract' && inputs.length !== 2)) throw new HeadswapError(`${what}: needs ${layer.className === 'Subtract' ? 'exactly' : 'at least'} 2 inputs, got ${inputs.length}`);
        const op: BinaryOp = ({ Add: 'Add', Subtract: 'Sub', Multiply: 'Mul', Maximum: 'Max', Minimum: 'Min', Average: 'Add' } as const)[layer.className];
        const last = inputs.length - 1;
        const average = layer.className === 'Average';
        let acc = x;
        inputs.slice(1).forEach((v, i) => {
          acc = b.binary(op, acc, v, i + 1 === last && !average ? out : b.fresh(`${out}/${i}`));
        });
        return average ? b.binary('Mul', acc, b.scalar(out, 1 / inputs.length), out) : acc;
      }
    }
    throw new HeadswapError(`${what}: unsupported layer`);
  }
}

/** Converts a Keras `layers-model` topology with its weights to ONNX. */
export function convertLayersModel(json: ModelJson, weights: ReadonlyMap<string, Weight>, source: string, options: ConvertOptions = {}): Converted {
  const topology = json.modelTopology;
  // Files from the Python converter wrap the model in model_config; TF.js's own saves do not.
  const raw = isRecord(topology.model_config) ? topology.model_config : topology;
  const rootName = isRecord(raw.config) && typeof raw.config.name === 'string' ? raw.config.name : 'model';
  const root = parseLayer({ ...raw, name: rootName }, source);
  if (!MODEL_CLASSES.has(root.className)) throw new HeadswapError(`${source}: top-level class '${root.className}' is not a Keras model (Sequential or Functional)`);
  const unsupported = new Map<string, string[]>();
  const reserved = new Set<string>();
  walk([root], source, (l) => {
    reserved.add(l.name);
    // An unknown activation inside a known layer is listed like an unknown layer.
    const kind = !SUPPORTED.has(l.className) ? l.className : 'activation' in l.config && !findActivation(l.config.activation) ? `${l.className} activation '${String(l.config.activation)}'` : undefined;
    if (kind) unsupported.set(kind, [...(unsupported.get(kind) ?? []), l.name]);
  });
  if (unsupported.size > 0) throw unsupportedError(source, 'layer', unsupported, SUPPORTED_LAYERS.filter((l) => !MODEL_CLASSES.has(l)));
  const conv = new LayersConverter(source, weights, reserved, options);
  const results = conv.callModel(root, undefined);
  const names = root.className === 'Sequential' ? [modelLayers(root.config, source).at(-1)!.name] : (root.config.output_layers as unknown[][]).map((r) => String(r[0]));
  const outputs = results.map((value, i) => ({ name: names[i]!, value }));
  for (const extra of options.extraOutputs ?? []) {
    const value = conv.byLayer.get(extra);
    if (!value) throw new HeadswapError(`${source}: no layer named '${extra}'; layers: ${[...conv.byLayer.keys()].slice(0, 8).join(', ')}, ...`);
    outputs.push({ name: extra, value });
  }
  const model = conv.builder.finish(outputs, { 'headswap.tfjs.format': 'layers-model' });
  return summarize(model);
}
