import { HeadswapError } from '../errors.js';
import type { Preprocessing } from '../image/types.js';
import {
  DataType,
  attr,
  defaultOpset,
  floatTensor,
  int64Tensor,
  node,
  decodeModel,
  encodeModel,
  valueInfo,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from './proto.js';

/** Name of the uint8 NHWC image input of every graph headswap builds. */
export const PIXELS = 'pixels';
/** Output names of the graphs headswap builds. */
export const FEATURES = 'features';
export const PROBABILITIES = 'probabilities';

/** The model's graph, checked to have nodes. */
export function graphOf(model: ModelProto): GraphProto & { node: NodeProto[] } {
  const g = model.graph;
  if (!g?.node) throw new HeadswapError('ONNX model has no graph');
  return g as GraphProto & { node: NodeProto[] };
}

/** A deep copy, so edits never touch a cached base model. */
export function cloneModel(model: ModelProto): ModelProto {
  return decodeModel(encodeModel(model), 'model');
}

/** The graph inputs that are real inputs (older exporters also list initializers as inputs). */
export function realInputs(model: ModelProto): string[] {
  const g = graphOf(model);
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  return (g.input ?? []).map((i) => i.name ?? '').filter((n) => n && !inits.has(n));
}

/** Every tensor name some node produces or the graph provides. */
export function tensorNames(model: ModelProto): Set<string> {
  const g = graphOf(model);
  const names = new Set<string>(realInputs(model));
  for (const n of g.node) for (const o of n.output ?? []) if (o) names.add(o);
  return names;
}

/**
 * Replaces the model's image input by a uint8 `[N,H,W,3]` input named `pixels`, followed by the
 * backbone's preprocessing as graph nodes (cast, layout, scale, mean, std). Every consumer of the
 * graph — headswap in Node, onnxruntime-web, Python — then only has to resize the image.
 */
export function addPixelsPrefix(model: ModelProto, pre: Preprocessing): void {
  const g = graphOf(model);
  const inputs = realInputs(model);
  if (inputs.length !== 1) {
    throw new HeadswapError(`model has ${inputs.length} inputs (${inputs.join(', ')}); an image backbone has exactly one`);
  }
  const original = inputs[0]!;
  const [h, w] = pre.size;
  // Shaped [3, 1, 1] or [3] (a scalar when the channels agree), not [1, 3, 1, 1]: the same
  // broadcast, and OpenCV broadcasts a leading 1 wrongly at batch > 1 and per-channel constants
  // only along axis 1.
  const channels = (name: string, v: readonly number[]): TensorProto =>
    v.every((x) => x === v[0]) ? floatTensor(name, [], [v[0]!]) : floatTensor(name, pre.layout === 'NCHW' ? [3, 1, 1] : [3], v);
  const p = 'headswap/pre/';
  const nodes: NodeProto[] = [node('Cast', [PIXELS], [`${p}float`], [attr.int('to', DataType.FLOAT)])];
  let x = `${p}float`;
  if (pre.layout === 'NCHW') {
    nodes.push(node('Transpose', [x], [`${p}nchw`], [attr.ints('perm', [0, 3, 1, 2])]));
    x = `${p}nchw`;
  }
  nodes.push(node('Mul', [x, `${p}scale`], [`${p}scaled`]));
  nodes.push(node('Sub', [`${p}scaled`, `${p}mean`], [`${p}centered`]));
  nodes.push(node('Div', [`${p}centered`, `${p}std`], [original]));
  g.initializer = [
    ...(g.initializer ?? []),
    floatTensor(`${p}scale`, [], [pre.scale]),
    channels(`${p}mean`, pre.mean),
    channels(`${p}std`, pre.std),
  ];
  g.node = [...nodes, ...g.node];
  g.input = [valueInfo(PIXELS, DataType.UINT8, ['batch', h, w, 3]), ...(g.input ?? []).filter((i) => i.name !== original)];
}

/** How a feature tensor becomes one vector per image. */
export type Pooling = 'avg-nchw' | 'avg-nhwc' | 'first-token' | 'none';

/** A rows x cols grid of overlapping windows over a convolution map (see `regionWindows`). */
export interface RegionGrid {
  readonly rows: number;
  readonly cols: number;
}

/** Region pooling of a map whose spatial size is known. */
export interface Regions extends RegionGrid {
  readonly height: number;
  readonly width: number;
}

/**
 * Window and stride that cover `size` cells with `n` windows of equal width, neighbours
 * overlapping by at most one cell where the size does not divide (7 in 3: cells 0-2, 2-4, 4-6).
 */
export function regionWindows(size: number, n: number): { kernel: number; stride: number } {
  if (n === 1) return { kernel: size, stride: 1 };
  const stride = Math.floor(size / n);
  return { kernel: size - (n - 1) * stride, stride };
}

/**
 * Adds `[N, D]` output `name` computed from intermediate tensor `tensor`: global average pooling
 * for convolution maps, the first (CLS) token for transformer sequences, or a flatten. With
 * `regions`, a convolution map also gives the average of each grid cell after the global one
 * (channel-major: channel c, cell r*cols+k at C + c*rows*cols + r*cols + k), so a linear head
 * can tell where on the photo a pattern is (a neckline at the top, a hem at the bottom).
 */
export function addFeatureOutput(model: ModelProto, tensor: string, pooling: Pooling, name: string, regions?: Regions): void {
  const g = graphOf(model);
  if (!tensorNames(model).has(tensor)) {
    throw new HeadswapError(`tensor '${tensor}' is not in the model; list its tensors with 'headswap inspect'`);
  }
  const p = `headswap/feat/${name}/`;
  const nodes: NodeProto[] = [];
  let x = tensor;
  if (pooling === 'avg-nhwc') {
    nodes.push(node('Transpose', [x], [`${p}nchw`], [attr.ints('perm', [0, 3, 1, 2])]));
    x = `${p}nchw`;
  }
  const map = x;
  if (pooling === 'avg-nchw' || pooling === 'avg-nhwc') {
    nodes.push(node('GlobalAveragePool', [x], [`${p}pooled`]));
    x = `${p}pooled`;
  } else if (pooling === 'first-token') {
    g.initializer = [...(g.initializer ?? []), int64Tensor(`${p}zero`, [], [0])];
    nodes.push(node('Gather', [x, `${p}zero`], [`${p}token`], [attr.int('axis', 1)]));
    x = `${p}token`;
  }
  if (regions && pooling !== 'first-token' && pooling !== 'none') {
    const r = regionWindows(regions.height, regions.rows);
    const c = regionWindows(regions.width, regions.cols);
    nodes.push(
      node('Flatten', [x], [`${p}global`], [attr.int('axis', 1)]),
      node('AveragePool', [map], [`${p}cells`], [attr.ints('kernel_shape', [r.kernel, c.kernel]), attr.ints('strides', [r.stride, c.stride])]),
      node('Flatten', [`${p}cells`], [`${p}regions`], [attr.int('axis', 1)]),
      node('Concat', [`${p}global`, `${p}regions`], [name], [attr.int('axis', 1)]),
    );
  } else {
    nodes.push(node('Flatten', [x], [name], [attr.int('axis', 1)]));
  }
  g.node.push(...nodes);
  g.output = [...(g.output ?? []), valueInfo(name, DataType.FLOAT, ['batch', 'features'])];
}

/** Makes `outputs` the graph's only outputs and drops every node and initializer they do not need. */
export function keepOutputs(model: ModelProto, outputs: string[]): void {
  const g = graphOf(model);
  const known = new Map((g.output ?? []).map((o) => [o.name, o]));
  const needed = new Set(outputs);
  const kept = new Set<NodeProto>();
  // Nodes may be stored out of topological order (the bundled int8 model is): sweep until stable.
  for (let grew = true; grew; ) {
    grew = false;
    for (const n of g.node) {
      if (kept.has(n) || !(n.output ?? []).some((o) => needed.has(o))) continue;
      kept.add(n);
      for (const inp of n.input ?? []) if (inp) needed.add(inp);
      grew = true;
    }
  }
  const order = new Map(g.node.map((n, i) => [n, i]));
  g.node = [...kept].sort((a, b) => order.get(a)! - order.get(b)!);
  g.initializer = (g.initializer ?? []).filter((t) => needed.has(t.name ?? ''));
  g.input = (g.input ?? []).filter((i) => needed.has(i.name ?? ''));
  g.valueInfo = (g.valueInfo ?? []).filter((v) => needed.has(v.name ?? ''));
  g.output = outputs.map((o) => known.get(o) ?? valueInfo(o, DataType.FLOAT));
}
