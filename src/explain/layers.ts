import type { Backbone } from '../backbone/backbone.js';
import { HeadswapError } from '../errors.js';
import type { RgbImage } from '../image/types.js';
import { PIXELS } from '../onnx/edit.js';
import { encodeModel, type NodeProto } from '../onnx/proto.js';
import { tensor, withSession, type Tensor } from '../runtime/session.js';
import { CONVOLUTIONS } from './filters.js';
import { constantTensors, decodeTensor, dequantize, topologicalOrder, type ConstTensor } from '../onnx/tensors.js';

/** The talk slide's captions, early to late. */
export const DEPTH_TITLES = ['light and dark', 'edges', 'shapes', 'object parts'] as const;

/** An intermediate feature map chosen to show one depth of the network. */
export interface MapLayer {
  /** 1 to 4, early to late. */
  readonly depth: number;
  readonly title: string;
  /** The tensor in the model (quantized for int8 models). */
  readonly tensor: string;
  /** The op that computes it. */
  readonly op: string;
  /** Its shape for one image, as the model computes it. */
  readonly dims: readonly number[];
  readonly layout: 'NCHW' | 'NHWC';
  /** Map height and width. */
  readonly size: readonly [number, number];
  readonly channels: number;
  /** Input pixels per map cell. */
  readonly stride: number;
  /** An int8/uint8 tensor, read as `(q - zeroPoint) * scale`. */
  readonly dequantized: boolean;
}

/** One depth's activations for one image, float, in the layer's layout. */
export interface LayerActivations {
  readonly layer: MapLayer;
  readonly data: Float32Array;
}

/** Every tensor one run of the network computed on the image, and the graph it ran. */
export interface NetworkRun {
  readonly name: string;
  /** The pixels graph's nodes in topological order. */
  readonly order: readonly NodeProto[];
  readonly tensors: ReadonlyMap<string, Tensor>;
  /** Float scale and zero point of each quantized tensor that has them. */
  readonly quantization: ReadonlyMap<string, { scale: ConstTensor; zeroPoint: ConstTensor | undefined }>;
  readonly size: readonly [number, number];
  readonly layout: 'NCHW' | 'NHWC';
}

/**
 * Scale and zero point of quantized tensors, from the nodes that read them: DequantizeLinear and
 * every QLinear op take each quantized input followed by its scale and zero point.
 */
function quantizationParams(order: readonly NodeProto[], consts: ReadonlyMap<string, ConstTensor>): NetworkRun['quantization'] {
  const out = new Map<string, { scale: ConstTensor; zeroPoint: ConstTensor | undefined }>();
  for (const n of order) {
    const op = n.opType ?? '';
    if (op !== 'DequantizeLinear' && !op.startsWith('QLinear')) continue;
    const inputs = n.input ?? [];
    inputs.forEach((t, i) => {
      const scale = consts.get(inputs[i + 1] ?? '');
      if (t && !consts.has(t) && scale && !out.has(t)) out.set(t, { scale, zeroPoint: consts.get(inputs[i + 2] ?? '') });
    });
  }
  return out;
}

/**
 * Runs the backbone once on the image with every intermediate tensor as an output (graph
 * optimizations off, so each tensor is the one the exported graph names): its shapes choose the
 * layers, its values are the activations.
 */
export async function runNetwork(backbone: Backbone, image: RgbImage, threads?: number): Promise<NetworkRun> {
  const model = backbone.pixelsModel();
  const name = backbone.source.origin;
  const order = topologicalOrder(model);
  const consts = new Map([...constantTensors(model)].filter(([, t]) => (t.dims ?? []).length <= 1).map(([k, t]) => [k, decodeTensor(t)]));
  // Outputs without a type: onnxruntime takes each tensor's own (uint8 for quantized maps).
  model.graph!.output = order.flatMap((n) => n.output ?? []).filter((o) => o && !consts.has(o)).map((o) => ({ name: o }));
  const loadError = (reason: string): string => `${name}: onnxruntime cannot load the model with every tensor as an output (${reason})`;
  return withSession(encodeModel(model), { threads, optimize: false, loadError }, async (session) => {
    const [h, w] = backbone.preprocessing.size;
    const result = await session.run({ [PIXELS]: tensor('uint8', image.data, [1, h, w, 3]) });
    return {
      name,
      order,
      tensors: new Map(Object.entries(result)),
      quantization: quantizationParams(order, consts),
      size: backbone.preprocessing.size,
      layout: backbone.preprocessing.layout,
    };
  });
}

/** Which input stride a map of `h` x `w` cells has for an input of `size`, if any (ceil or floor division). */
function strideOf(h: number, w: number, size: readonly [number, number]): number | undefined {
  if (h < 2 || w < 2) return undefined;
  const s = Math.round(size[0] / h);
  const fits = (n: number, cells: number): boolean => Math.ceil(n / s) === cells || Math.floor(n / s) === cells;
  return s >= 1 && fits(size[0], h) && fits(size[1], w) ? s : undefined;
}

type Candidate = Omit<MapLayer, 'depth' | 'title'>;

function candidate(run: NetworkRun, tensor: string, op: string): Candidate | undefined {
  const t = run.tensors.get(tensor);
  const dims = (t?.dims ?? []).map(Number);
  if (!t || dims.length !== 4 || dims[0] !== 1) return undefined;
  const dequantized = t.type === 'uint8' || t.type === 'int8';
  if (dequantized ? !run.quantization.has(tensor) : t.type !== 'float32') return undefined;
  // Maps usually keep the input's layout; the other one is tried for graphs that transpose inside.
  const layouts = run.layout === 'NCHW' ? (['NCHW', 'NHWC'] as const) : (['NHWC', 'NCHW'] as const);
  for (const layout of layouts) {
    const [h, w, channels] = layout === 'NCHW' ? [dims[2]!, dims[3]!, dims[1]!] : [dims[1]!, dims[2]!, dims[3]!];
    const stride = strideOf(h, w, run.size);
    if (stride !== undefined && channels >= 2) return { tensor, op, dims, layout, size: [h, w], channels, stride, dequantized };
  }
  return undefined;
}

/**
 * Picks four feature maps from early to late. Depth 1 is the first layer's output: the last map
 * at the first convolution's stride computed before the second convolution (so after its
 * activation: light and dark). The other spatial maps are grouped by stride and each group is
 * represented by its deepest map (the end of a stage, usually after its activation); depths 2-4
 * are the finest such stride, the second coarsest and the coarsest (4, 16 and 32 on ImageNet
 * CNNs: edges and textures, shapes, object parts).
 */
export function chooseLayers(run: NetworkRun, firstConvOutput: string): MapLayer[] {
  const start = run.order.findIndex((n) => n.output?.includes(firstConvOutput));
  let first: Candidate | undefined;
  let convolutions = 0;
  const byStride = new Map<number, Candidate>();
  for (const n of run.order.slice(Math.max(0, start))) {
    if (CONVOLUTIONS.has(n.opType ?? '')) convolutions++;
    for (const o of n.output ?? []) {
      const c = candidate(run, o, n.opType ?? '');
      if (!c) continue;
      if (convolutions === 1 && (!first || c.stride === first.stride)) first = c;
      // Later in topological order overwrites: the deepest map of each stride wins.
      byStride.set(c.stride, c);
    }
  }
  const strides = [...byStride.keys()].filter((s) => first && s > first.stride).sort((a, b) => a - b);
  if (!first || strides.length < 3) {
    const found = [...byStride.values()].map((c) => c.size.join('x')).join(', ') || 'none';
    throw new HeadswapError(
      `${run.name}: explain needs convolutional feature maps at 4 resolutions, this model has them at ${byStride.size} (${found}); use a CNN backbone such as mobilenet_v2 or resnet50`,
    );
  }
  const picked = [first, ...[strides[0]!, ...strides.slice(-2)].map((s) => byStride.get(s)!)];
  return picked.map((c, i) => ({ ...c, depth: i + 1, title: DEPTH_TITLES[i]! }));
}

/** The chosen maps' values in float. */
export function activations(run: NetworkRun, layers: readonly MapLayer[]): LayerActivations[] {
  return layers.map((layer) => {
    const t = run.tensors.get(layer.tensor)!;
    if (!layer.dequantized) return { layer, data: t.data as Float32Array };
    const q = run.quantization.get(layer.tensor)!;
    const values: ConstTensor = { name: layer.tensor, dims: layer.dims, data: Float32Array.from(t.data as Uint8Array | Int8Array) };
    return { layer, data: dequantize(values, q.scale, q.zeroPoint, 1) };
  });
}

/** Channel `c` of a map in either layout, as a row-major height x width plane. */
export function channelPlane(a: LayerActivations, c: number): Float32Array {
  const { size, channels, layout } = a.layer;
  const cells = size[0] * size[1];
  if (layout === 'NCHW') return a.data.slice(c * cells, (c + 1) * cells);
  const plane = new Float32Array(cells);
  for (let i = 0; i < cells; i++) plane[i] = a.data[i * channels + c]!;
  return plane;
}

/** The `k` channels with the highest mean activation over the map, strongest first (ties: lower index first). */
export function strongestChannels(a: LayerActivations, k: number): { index: number; mean: number }[] {
  const { size, channels, layout } = a.layer;
  const cells = size[0] * size[1];
  const sums = new Float64Array(channels);
  for (let i = 0; i < a.data.length; i++) {
    sums[layout === 'NCHW' ? Math.floor(i / cells) : i % channels]! += a.data[i]!;
  }
  return Array.from(sums, (s, index) => ({ index, mean: s / cells }))
    .sort((x, y) => y.mean - x.mean || x.index - y.index)
    .slice(0, k);
}
