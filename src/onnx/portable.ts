import { HeadswapError, msg, option } from '../errors.js';
import { graphOf } from './edit.js';
import { DataType, dataTypeName, floatTensor, node, type ModelProto, type NodeProto, type TensorProto } from './proto.js';

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

/** Element values of an initializer of a numeric type, as numbers. */
function values(t: TensorProto): Float64Array {
  const n = (t.dims ?? []).reduce((a, b) => a * Number(b), 1);
  const raw = t.rawData && t.rawData.byteLength > 0 ? t.rawData : undefined;
  const type = t.dataType ?? 0;
  if (raw) {
    // A copy, aligned: a decoded rawData may be a view into a larger, unaligned buffer.
    const copy = Uint8Array.from(raw).buffer;
    const view =
      type === DataType.FLOAT ? new Float32Array(copy)
      : type === DataType.UINT8 ? new Uint8Array(copy)
      : type === DataType.INT8 ? new Int8Array(copy)
      : type === DataType.INT32 ? new Int32Array(copy)
      : type === DataType.INT64 ? Float64Array.from(new BigInt64Array(copy), Number)
      : undefined;
    if (!view) throw new HeadswapError(`initializer '${t.name}' is ${dataTypeName(type)}; a portable export handles float, 8-bit and 32/64-bit integer weights`);
    return Float64Array.from(view);
  }
  // Typed fields: 8- and 32-bit integers live in int32Data (ONNX packs the small types there).
  const field = type === DataType.FLOAT ? t.floatData : type === DataType.INT64 ? t.int64Data : t.int32Data;
  const out = Float64Array.from((field ?? []).map(Number));
  if (out.length !== n) throw new HeadswapError(`initializer '${t.name}' holds ${out.length} values for ${n} elements`);
  return out;
}

/** An integer tensor's float value, `scale * (q - zeroPoint)`, per tensor or per channel along `axis`. */
function dequantize(q: TensorProto, scale: TensorProto, zeroPoint: TensorProto | undefined, axis: number): Float32Array {
  const data = values(q);
  const s = values(scale);
  const z = zeroPoint ? values(zeroPoint) : new Float64Array(s.length);
  const dims = (q.dims ?? []).map(Number);
  if (s.length === 1) return Float32Array.from(data, (v) => s[0]! * (v - z[0]!));
  const a = axis < 0 ? axis + dims.length : axis;
  const inner = dims.slice(a + 1).reduce((x, y) => x * y, 1);
  if (dims[a] !== s.length) throw new HeadswapError(`'${q.name}' has ${dims[a]} channels along axis ${a} but ${s.length} scales`);
  return Float32Array.from(data, (v, i) => {
    const c = Math.floor(i / inner) % s.length;
    return s[c]! * (v - z[c]!);
  });
}

function intAttr(n: NodeProto, name: string, fallback: number): number {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a?.i == null ? fallback : Number(a.i);
}

/**
 * Rewrites the model in place into standard ONNX operators and float weights (see the file's
 * comment). Throws a one-line error naming the operator when a node has no standard equivalent
 * here.
 */
export function makePortable(model: ModelProto): void {
  const g = graphOf(model);
  const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
  const init = (name: string | undefined): TensorProto | undefined => (name ? inits.get(name) : undefined);
  const need = (n: NodeProto, i: number): TensorProto => {
    const t = init(n.input?.[i]);
    if (!t) throw new HeadswapError(`${n.opType} node '${n.name}' reads its weights or quantization from '${n.input?.[i]}', which is computed, not stored; a portable export needs them stored`);
    return t;
  };
  const added: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  for (const n of g.node) {
    const inp = n.input ?? [];
    const out = n.output ?? [];
    const base = out[0] ?? n.name ?? 'node';
    if (n.opType === 'DequantizeLinear' && isDefault(n.domain) && init(inp[0])) {
      // A stored integer tensor (weights, bias): store its float value instead.
      const t = dequantize(need(n, 0), need(n, 1), init(inp[2]), intAttr(n, 'axis', 1));
      added.push(floatTensor(out[0]!, (need(n, 0).dims ?? []).map(Number), t));
    } else if (n.opType === 'QLinearConv' && isDefault(n.domain)) {
      const w = need(n, 3);
      const wScale = need(n, 4);
      const weights = dequantize(w, wScale, init(inp[5]), 0);
      added.push(floatTensor(`${base}/portable/weights`, (w.dims ?? []).map(Number), weights));
      const convInputs = [`${base}/portable/x`, `${base}/portable/weights`];
      if (inp[8]) {
        // The int32 bias is quantized with scale x_scale * w_scale[channel] and zero point 0.
        const xScale = values(need(n, 1))[0]!;
        const ws = values(wScale);
        const b = values(need(n, 8));
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
