import { HeadswapError, msg, option } from '../errors.js';
import type { Pooling, RegionGrid } from './edit.js';
import { node, type ModelProto, type NodeProto } from './proto.js';

/** Where a backbone's penultimate features come from. */
export interface FeatureCut {
  /** Name of the tensor in the ONNX graph (`headswap inspect` lists them). */
  readonly tensor: string;
  readonly pooling: Pooling;
  /** Besides the global average of a convolution map, the average of each cell of this grid. */
  readonly regions?: RegionGrid;
}

const CLASSIFIER_OPS = new Set(['Gemm', 'MatMul', 'QLinearMatMul', 'QGemm', 'MatMulInteger']);
const PASS_THROUGH = new Set(['Flatten', 'Reshape', 'Squeeze', 'Dropout', 'Identity', 'QuantizeLinear', 'DequantizeLinear', 'Cast']);
const POOLS = new Set(['GlobalAveragePool', 'QLinearGlobalAveragePool', 'ReduceMean', 'AveragePool']);

/**
 * Finds the usual transfer-learning cut of a classification network: the tensor that feeds its
 * last global pooling before the final classifier (or the classifier's input when there is no
 * pooling). Quantized maps are taken in float: an existing DequantizeLinear is reused, else one
 * is added. Returns undefined when the graph has no recognisable classifier.
 */
export function findPenultimate(model: ModelProto): FeatureCut | undefined {
  const nodes = (model.graph?.node ?? []) as NodeProto[];
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) if (o) producer.set(o, n);
  const classifier = [...nodes].reverse().find((n) => CLASSIFIER_OPS.has(n.opType ?? ''));
  if (!classifier) return undefined;
  let tensor = classifier.input?.[0] ?? '';
  for (;;) {
    const p = producer.get(tensor);
    if (!p) break;
    const op = p.opType ?? '';
    if (POOLS.has(op)) return floatCut(model, p, p.input?.[0] ?? '', 'avg-nchw');
    if (!PASS_THROUGH.has(op)) break;
    tensor = p.input?.[0] ?? '';
  }
  return floatCut(model, producer.get(tensor), tensor, 'none');
}

function floatCut(model: ModelProto, consumer: NodeProto | undefined, tensor: string, pooling: FeatureCut['pooling']): FeatureCut {
  const nodes = model.graph!.node as NodeProto[];
  const producer = nodes.find((n) => n.output?.includes(tensor));
  const quantized = producer?.opType?.startsWith('QLinear') || producer?.opType === 'QuantizeLinear';
  if (!quantized) return { tensor, pooling };
  const dq = nodes.find((n) => n.opType === 'DequantizeLinear' && n.input?.[0] === tensor);
  if (dq?.output?.[0]) return { tensor: dq.output[0], pooling };
  // QLinear ops carry the tensor's scale and zero point as inputs 1 and 2.
  const [scale, zero] = [consumer?.input?.[1], consumer?.input?.[2]];
  if (!scale || !zero) throw new HeadswapError(msg`cannot dequantize tensor '${tensor}'; name a float tensor with ${option('backbone.feature')}`);
  const name = `headswap/dequant/${tensor}`;
  nodes.push(node('DequantizeLinear', [tensor, scale, zero], [name]));
  return { tensor: name, pooling };
}
