import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import onnxProto from 'onnx-proto';
import { HeadswapError, describeError } from '../errors.js';

// onnx-proto's protobufjs decodes int64 fields (dims, int attributes) as Long objects whenever a
// `long` package happens to be resolvable from it, which depends on how npm laid out the install.
// headswap reads them as numbers (exact below 2^53, ample for ONNX shapes), so fix it here once.
const protobuf = createRequire(createRequire(import.meta.url).resolve('onnx-proto'))('protobufjs/minimal') as { util: { Long?: unknown }; configure(): void };
protobuf.util.Long = undefined;
protobuf.configure();

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;

export const DataType = onnxProto.onnx.TensorProto.DataType;
const AttrType = onnxProto.onnx.AttributeProto.AttributeType;

/** Parses ONNX bytes; anything that is not a model with a graph is a one-line error naming `name`. */
export function decodeModel(bytes: Uint8Array, name: string): ModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new HeadswapError(`${name}: not an ONNX model (${describeError(err)}); check the file or download it again`);
  }
  if (!model.graph || model.graph.node == null || model.graph.node.length === 0) {
    throw new HeadswapError(`${name}: not an ONNX model (no graph inside); check the file or download it again`);
  }
  return model;
}

export async function readModel(path: string): Promise<ModelProto> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new HeadswapError(`${path}: cannot read model file (${describeError(err)})`);
  }
  return decodeModel(bytes, path);
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Version of the default ("ai.onnx") opset the model imports. */
export function defaultOpset(model: ModelProto): number {
  const entry = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  return entry?.version == null ? 1 : Number(entry.version);
}

export function node(opType: string, inputs: string[], outputs: string[], attrs: AttributeProto[] = [], name?: string): NodeProto {
  return { opType, input: inputs, output: outputs, attribute: attrs, name: name ?? `headswap/${outputs[0]}` };
}

export const attr = {
  int: (name: string, i: number): AttributeProto => ({ name, type: AttrType.INT, i }),
  float: (name: string, f: number): AttributeProto => ({ name, type: AttrType.FLOAT, f }),
  ints: (name: string, ints: number[]): AttributeProto => ({ name, type: AttrType.INTS, ints }),
};

/** A float32 initializer with the given dims. */
export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  const data = Float32Array.from(values);
  return { name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(data.buffer) };
}

export function int64Tensor(name: string, dims: number[], values: number[]): TensorProto {
  const data = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { name, dims, dataType: DataType.INT64, rawData: new Uint8Array(data.buffer) };
}

/** A tensor type description; string dims are symbolic (`dimParam`); no dims = shape left to inference. */
export function valueInfo(name: string, elemType: number, dims?: (number | string)[]): ValueInfoProto {
  const shape = dims && { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType: shape ? { elemType, shape } : { elemType } } };
}
