import { HeadswapError, msg, option } from '../errors.js';
import { graphOf } from './edit.js';
import { floatTensor, intAttribute, node, type ModelProto, type NodeProto, type TensorProto } from './proto.js';
import { decodeTensor, dequantize, type ConstTensor } from './tensors.js';

/**
 * A graph other ONNX runtimes accept: onnxruntime's own operators (com.microsoft QLinearAdd and
 * the like) replaced by standard ones, integer weights turned into float initializers, and only
 * the opset domains the nodes use declared. Quantized activations stay quantized, as standard
 * QuantizeLinear -> DequantizeLinear pairs around float operators: a runtime then rounds every
 * activation to the same 8-bit grid onnxruntime's integer kernels use, in float arithmetic, with
 * no integer kernels of its own (OpenCV 4.6 cannot dequantize constants; OpenCV 5's integer
 * convolutions round differently).
 */

const isDefault = (domain: string | null | undefined): boolean => !domain || domain === 'ai.onnx';

/**
 * Rewrites the model in place into standard ONNX operators and float weights (see the file's
 * comment). Throws a one-line error naming the operator when a node has no standard equivalent
 * here.
 */
export function makePortable(model: ModelProto): void {
  const g = graphOf(model);
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const init = (name: string | undefined): TensorProto | undefined => (name ? inits.get(name) : undefined);
  const need = (n: NodeProto, i: number): ConstTensor => {
    const t = init(n.input?.[i]);
    if (!t) throw new HeadswapError(`${n.opType} node '${n.name}' reads its weights or quantization from '${n.input?.[i]}', which is computed, not stored; a portable export needs them stored`);
    return decodeTensor(t);
  };
  const optional = (name: string | undefined): ConstTensor | undefined => {
    const t = init(name);
    return t && decodeTensor(t);
  };
  const added: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  for (const n of g.node) {
    const inp = n.input ?? [];
    const out = n.output ?? [];
    const base = out[0] ?? n.name ?? 'node';
    if (n.opType === 'DequantizeLinear' && isDefault(n.domain) && init(inp[0])) {
      // A stored integer tensor (weights, bias): store its float value instead.
      const q = need(n, 0);
      added.push(floatTensor(out[0]!, [...q.dims], dequantize(q, need(n, 1), optional(inp[2]), intAttribute(n, 'axis') ?? 1)));
    } else if (n.opType === 'QLinearConv' && isDefault(n.domain)) {
      const w = need(n, 3);
      const wScale = need(n, 4);
      added.push(floatTensor(`${base}/portable/weights`, [...w.dims], dequantize(w, wScale, optional(inp[5]), 0)));
      const convInputs = [`${base}/portable/x`, `${base}/portable/weights`];
      if (inp[8]) {
        // The int32 bias is quantized with scale x_scale * w_scale[channel] and zero point 0.
        const xScale = need(n, 1).data[0]!;
        const ws = wScale.data;
        const b = need(n, 8).data;
        added.push(floatTensor(`${base}/portable/bias`, [b.length], Float32Array.from(b, (v, i) => v * xScale * ws[ws.length === 1 ? 0 : i]!)));
        convInputs.push(`${base}/portable/bias`);
      }
      nodes.push(
        node('DequantizeLinear', [inp[0]!, inp[1]!, inp[2]!], [`${base}/portable/x`]),
        node('Conv', convInputs, [`${base}/portable/y`], n.attribute ?? []),
        node('QuantizeLinear', [`${base}/portable/y`, inp[6]!, inp[7]!], [out[0]!]),
      );
    } else if (n.opType === 'QLinearAdd' && n.domain === 'com.microsoft') {
      nodes.push(
        node('DequantizeLinear', [inp[0]!, inp[1]!, inp[2]!], [`${base}/portable/a`]),
        node('DequantizeLinear', [inp[3]!, inp[4]!, inp[5]!], [`${base}/portable/b`]),
        node('Add', [`${base}/portable/a`, `${base}/portable/b`], [`${base}/portable/y`]),
        node('QuantizeLinear', [`${base}/portable/y`, inp[6]!, inp[7]!], [out[0]!]),
      );
    } else if (!isDefault(n.domain)) {
      throw new HeadswapError(msg`the network uses operator ${n.domain}.${n.opType}, which the portable export has no standard ONNX equivalent for; train without ${option('portable')}`);
    } else {
      nodes.push(n);
    }
  }
  g.node = nodes;
  const used = new Set(nodes.flatMap((n) => n.input ?? []));
  g.initializer = [...(g.initializer ?? []).filter((t) => used.has(t.name ?? '')), ...added.filter((t) => used.has(t.name ?? ''))];
  g.input = (g.input ?? []).filter((i) => !inits.has(i.name ?? '') || used.has(i.name ?? ''));
  pruneOpsets(model);
}

/** Declares only the opset domains the graph's nodes use (the default domain always). */
export function pruneOpsets(model: ModelProto): void {
  const used = new Set(graphOf(model).node.map((n) => (isDefault(n.domain) ? '' : n.domain!)));
  model.opsetImport = model.opsetImport.filter((o) => isDefault(o.domain) || used.has(o.domain!));
}
