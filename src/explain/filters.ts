import { HeadswapError } from '../errors.js';
import type { RgbImage } from '../image/types.js';
import { intAttribute, intsAttribute, type ModelProto, type NodeProto } from '../onnx/proto.js';
import { constantTensors, decodeTensor, dequantize, topologicalOrder, type ConstTensor } from '../onnx/tensors.js';

/** The network's first convolution with its weights in float. */
export interface FirstConvolution {
  readonly node: string;
  readonly op: 'Conv' | 'QLinearConv';
  /** Tensor the convolution reads (the network input, or its quantized copy). */
  readonly input: string;
  readonly output: string;
  /** Name of the weight tensor in the model (quantized for QLinearConv). */
  readonly weightTensor: string;
  readonly quantized: boolean;
  /** `[filters, inputChannels, kernelHeight, kernelWidth]`, ONNX's weight layout. */
  readonly dims: readonly [number, number, number, number];
  /** Dequantized weights, row-major in `dims`. */
  readonly weights: Float32Array;
  readonly strides: readonly [number, number];
}

/** The convolution ops whose weights headswap can read. */
export const CONVOLUTIONS: ReadonlySet<string> = new Set(['Conv', 'QLinearConv']);

/**
 * Finds the first Conv or QLinearConv from the input and reads its filters: constant float
 * weights, int8/uint8 weights with their (per-tensor or per-filter) scale and zero point, or
 * float weights computed by a DequantizeLinear of constants (QDQ-quantized models).
 */
export function firstConvolution(model: ModelProto, name: string): FirstConvolution {
  const order = topologicalOrder(model);
  const conv = order.find((n) => CONVOLUTIONS.has(n.opType ?? ''));
  if (!conv) throw new HeadswapError(`${name}: the model has no convolution (Conv or QLinearConv); explain needs a convolutional network such as mobilenet_v2`);
  const op = conv.opType as FirstConvolution['op'];
  const inputs = conv.input ?? [];
  const consts = constantTensors(model);
  const get = (t: string | undefined): ConstTensor | undefined => {
    const proto = t ? consts.get(t) : undefined;
    return proto && decodeTensor(proto);
  };
  const label = `${name}: first convolution '${conv.name || conv.output?.[0]}'`;
  let weights: Float32Array;
  let dims: readonly number[];
  let quantized = true;
  const weightTensor = inputs[op === 'Conv' ? 1 : 3] ?? '';
  if (op === 'QLinearConv') {
    const [w, scale] = [get(inputs[3]), get(inputs[4])];
    if (!w || !scale) throw new HeadswapError(`${label}: its weights or their scale are not constants of the model`);
    // QLinearConv's weight scale is per tensor or per output channel (axis 0).
    weights = dequantize(w, scale, get(inputs[5]), 0);
    dims = w.dims;
  } else {
    const w = get(weightTensor);
    const dq = w ? undefined : order.find((n) => n.opType === 'DequantizeLinear' && n.output?.[0] === weightTensor);
    const [q, scale] = [get(dq?.input?.[0]), get(dq?.input?.[1])];
    if (w) {
      weights = w.data;
      dims = w.dims;
      quantized = false;
    } else if (dq && q && scale) {
      // DequantizeLinear's per-channel axis defaults to 1 and may count from the end.
      const axis = intAttribute(dq, 'axis') ?? 1;
      weights = dequantize(q, scale, get(dq.input?.[2]), axis < 0 ? axis + q.dims.length : axis);
      dims = q.dims;
    } else {
      throw new HeadswapError(`${label}: its weights are computed at run time, not stored in the model`);
    }
  }
  if (dims.length !== 4) throw new HeadswapError(`${label}: weights of shape [${dims.join(',')}] are not 2-D filters`);
  const strides = intsAttribute(conv, 'strides') ?? [1, 1];
  return {
    node: conv.name ?? '',
    op,
    input: inputs[0] ?? '',
    output: conv.output?.[0] ?? '',
    weightTensor,
    quantized,
    dims: [dims[0]!, dims[1]!, dims[2]!, dims[3]!],
    weights,
    strides: [strides[0] ?? 1, strides[1] ?? 1],
  };
}

const GAP = 2;
const BACKGROUND = 24;

/**
 * Draws every filter as a colour tile (RGB from the 3 input channels; grey from their mean
 * for other channel counts), in a grid about twice as wide as high. Zero weight is mid-grey and
 * each filter is stretched to its own largest weight, so weak filters still show their pattern;
 * but never by more than 10x the strongest filter's stretch, so near-dead filters (quantized to a
 * few levels) stay flat grey instead of turning into amplified noise.
 */
export function filterGrid(conv: FirstConvolution, maxHeight: number): RgbImage {
  const [count, channels, kh, kw] = conv.dims;
  const cols = Math.min(count, Math.ceil(Math.sqrt(2 * count)));
  const rows = Math.ceil(count / cols);
  // Each weight becomes a square of whole pixels (nearest neighbour), as large as the height allows.
  const scale = Math.max(1, Math.floor((maxHeight - (rows + 1) * GAP) / rows / kh));
  const [th, tw] = [kh * scale, kw * scale];
  const width = cols * tw + (cols + 1) * GAP;
  const height = rows * th + (rows + 1) * GAP;
  const data = new Uint8Array(width * height * 3).fill(BACKGROUND);
  const per = channels * kh * kw;
  const peaks = Array.from({ length: count }, (_, f) => conv.weights.subarray(f * per, (f + 1) * per).reduce((m, w) => Math.max(m, Math.abs(w)), 0));
  const floor = 0.1 * Math.max(...peaks);
  for (let f = 0; f < count; f++) {
    const stretch = 127.5 / (Math.max(peaks[f]!, floor) || 1);
    const level = (w: number): number => Math.round(127.5 + w * stretch);
    const x0 = GAP + (f % cols) * (tw + GAP);
    const y0 = GAP + Math.floor(f / cols) * (th + GAP);
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const k = Math.floor(y / scale) * kw + Math.floor(x / scale);
        const at = ((y0 + y) * width + x0 + x) * 3;
        for (let c = 0; c < 3; c++) {
          let w = 0;
          if (channels === 3) w = conv.weights[f * per + c * kh * kw + k]!;
          else for (let i = 0; i < channels; i++) w += conv.weights[f * per + i * kh * kw + k]! / channels;
          data[at + c] = level(w);
        }
      }
    }
  }
  return { width, height, data };
}
