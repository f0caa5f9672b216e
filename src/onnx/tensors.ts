import { HeadswapError } from '../errors.js';
import { DataType, dataTypeName, type ModelProto, type NodeProto, type TensorProto } from './proto.js';

/** A constant tensor of a model, its values widened to float32 (row-major). */
export interface ConstTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** Little-endian readers of `raw_data`, by ONNX element type. */
const RAW: Partial<Record<number, { bytes: number; read: (v: DataView, offset: number) => number }>> = {
  [DataType.FLOAT]: { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  [DataType.DOUBLE]: { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  [DataType.UINT8]: { bytes: 1, read: (v, o) => v.getUint8(o) },
  [DataType.INT8]: { bytes: 1, read: (v, o) => v.getInt8(o) },
  [DataType.UINT16]: { bytes: 2, read: (v, o) => v.getUint16(o, true) },
  [DataType.INT16]: { bytes: 2, read: (v, o) => v.getInt16(o, true) },
  [DataType.INT32]: { bytes: 4, read: (v, o) => v.getInt32(o, true) },
  [DataType.INT64]: { bytes: 8, read: (v, o) => Number(v.getBigInt64(o, true)) },
};

/**
 * Decodes a TensorProto held in the model (initializer or Constant): `raw_data`, or the typed
 * field the ONNX spec assigns to its element type (all 8/16/32-bit integers live in `int32_data`).
 */
export function decodeTensor(t: TensorProto): ConstTensor {
  const name = t.name ?? '';
  const dims = (t.dims ?? []).map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  const type = t.dataType ?? 0;
  const raw = RAW[type];
  if (!raw) throw new HeadswapError(`tensor '${name}': element type ${dataTypeName(type)} is not supported here (float, double and integer tensors are)`);
  let values: ArrayLike<number>;
  if (t.rawData && t.rawData.length > 0) {
    const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    values = Array.from({ length: t.rawData.byteLength / raw.bytes }, (_, i) => raw.read(view, i * raw.bytes));
  } else if (type === DataType.FLOAT) {
    values = t.floatData ?? [];
  } else if (type === DataType.DOUBLE) {
    values = t.doubleData ?? [];
  } else if (type === DataType.INT64) {
    values = (t.int64Data ?? []).map(Number);
  } else {
    values = t.int32Data ?? [];
  }
  if (values.length !== count) {
    const where = t.dataLocation === 1 ? ' (stored as external data, which headswap does not read)' : '';
    throw new HeadswapError(`tensor '${name}': has ${values.length} values for shape [${dims.join(',')}]${where}`);
  }
  return { name, dims, data: Float32Array.from(values) };
}

/** Every constant tensor of the graph by name: initializers and the outputs of Constant nodes. */
export function constantTensors(model: ModelProto): Map<string, TensorProto> {
  const g = model.graph;
  const out = new Map<string, TensorProto>();
  for (const t of g?.initializer ?? []) if (t.name) out.set(t.name, t);
  for (const n of g?.node ?? []) {
    const value = n.opType === 'Constant' ? n.attribute?.find((a) => a.name === 'value')?.t : undefined;
    const name = n.output?.[0];
    if (value && name) out.set(name, { ...value, name });
  }
  return out;
}

/**
 * `(q - zeroPoint) * scale`, per tensor (scalar scale) or per channel along `axis` (scale of
 * length dims[axis]; negative counts from the end), as DequantizeLinear and the QLinear ops define it.
 */
export function dequantize(q: ConstTensor, scale: ConstTensor, zeroPoint: ConstTensor | undefined, axisGiven: number): Float32Array {
  const axis = axisGiven < 0 ? axisGiven + q.dims.length : axisGiven;
  const channels = scale.data.length;
  const per = channels > 1;
  if (per && q.dims[axis] !== channels) {
    throw new HeadswapError(`tensor '${q.name}': ${channels} scales do not match its dimension ${axis} of size ${q.dims[axis]}`);
  }
  // Elements of one channel along `axis` repeat every `inner` values.
  const inner = q.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(q.data.length);
  for (let i = 0; i < out.length; i++) {
    const c = per ? Math.floor(i / inner) % channels : 0;
    out[i] = (q.data[i]! - (zeroPoint?.data[c] ?? 0)) * scale.data[c]!;
  }
  return out;
}

/** Nodes in an order where every node comes after the producers of its inputs (stored order is not always so). */
export function topologicalOrder(model: ModelProto): NodeProto[] {
  const nodes = model.graph?.node ?? [];
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) if (o) producer.set(o, n);
  // Kahn's algorithm; inputs no node produces (graph inputs, initializers) are available from the start.
  const missing = new Map<NodeProto, number>();
  const consumers = new Map<NodeProto, NodeProto[]>();
  for (const n of nodes) {
    const from = new Set((n.input ?? []).map((x) => producer.get(x)).filter((p): p is NodeProto => p !== undefined && p !== n));
    missing.set(n, from.size);
    for (const p of from) {
      const list = consumers.get(p);
      if (list) list.push(n);
      else consumers.set(p, [n]);
    }
  }
  const queue = nodes.filter((n) => missing.get(n) === 0);
  const order: NodeProto[] = [];
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i]!;
    order.push(n);
    for (const c of consumers.get(n) ?? []) {
      const left = missing.get(c)! - 1;
      missing.set(c, left);
      if (left === 0) queue.push(c);
    }
  }
  // A cycle (an invalid graph): keep its nodes last rather than lose them.
  return order.length === nodes.length ? order : [...order, ...nodes.filter((n) => !order.includes(n))];
}
