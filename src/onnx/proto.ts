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

// headswap's own view of the ONNX IR, the fields it reads and writes. The published .d.ts files
// must not reach onnx-proto's types: they name a global `Long` that a strict consumer
// (skipLibCheck: false) cannot resolve. int64 fields are numbers here (see above).
export interface OperatorSetIdProto { domain?: string | null; version?: number | null }
export interface StringStringEntryProto { key?: string | null; value?: string | null }
export interface DimensionProto { dimValue?: number | null; dimParam?: string | null; denotation?: string | null }
export interface TypeProto {
  tensorType?: { elemType?: number | null; shape?: { dim?: DimensionProto[] | null } | null } | null;
  denotation?: string | null;
}
export interface TensorProto {
  name?: string | null;
  dims?: number[] | null;
  dataType?: number | null;
  rawData?: Uint8Array | null;
  floatData?: number[] | null;
  int32Data?: number[] | null;
  int64Data?: number[] | null;
  doubleData?: number[] | null;
  stringData?: Uint8Array[] | null;
  externalData?: StringStringEntryProto[] | null;
  dataLocation?: number | null;
  docString?: string | null;
}
export interface ValueInfoProto { name?: string | null; type?: TypeProto | null; docString?: string | null }
export interface AttributeProto {
  name?: string | null;
  type?: number | null;
  f?: number | null;
  i?: number | null;
  s?: Uint8Array | null;
  t?: TensorProto | null;
  g?: GraphProto | null;
  floats?: number[] | null;
  ints?: number[] | null;
  strings?: Uint8Array[] | null;
  tensors?: TensorProto[] | null;
  graphs?: GraphProto[] | null;
  docString?: string | null;
}
export interface NodeProto {
  input?: string[] | null;
  output?: string[] | null;
  name?: string | null;
  opType?: string | null;
  domain?: string | null;
  attribute?: AttributeProto[] | null;
  docString?: string | null;
}
export interface GraphProto {
  node?: NodeProto[] | null;
  name?: string | null;
  initializer?: TensorProto[] | null;
  input?: ValueInfoProto[] | null;
  output?: ValueInfoProto[] | null;
  valueInfo?: ValueInfoProto[] | null;
  docString?: string | null;
}
/** An ONNX model in memory, as decoded (repeated fields are always arrays). */
export interface ModelProto {
  irVersion?: number | null;
  opsetImport: OperatorSetIdProto[];
  producerName?: string | null;
  producerVersion?: string | null;
  domain?: string | null;
  modelVersion?: number | null;
  docString?: string | null;
  graph?: GraphProto | null;
  metadataProps: StringStringEntryProto[];
}

export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8,
  BOOL: 9, FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
} as const;
/** The element type's name in the ONNX spec (FLOAT, INT64, ...), or the number when unknown. */
export function dataTypeName(type: number): string {
  return Object.entries(DataType).find(([, v]) => v === type)?.[0] ?? String(type);
}

export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

type ProtoModelInput = Parameters<typeof onnxProto.onnx.ModelProto.create>[0];

/** A model message from plain fields (missing repeated fields become empty arrays). */
export function createModel(fields: Omit<ModelProto, 'metadataProps'> & { metadataProps?: StringStringEntryProto[] }): ModelProto {
  return onnxProto.onnx.ModelProto.create(fields as unknown as ProtoModelInput) as unknown as ModelProto;
}

/** Parses ONNX bytes; anything that is not a model with a graph is a one-line error naming `name`. */
export function decodeModel(bytes: Uint8Array, name: string): ModelProto {
  let model: ModelProto;
  try {
    model = onnxProto.onnx.ModelProto.decode(bytes) as unknown as ModelProto;
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
  return onnxProto.onnx.ModelProto.encode(model as unknown as ProtoModelInput & object).finish();
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
  int: (name: string, i: number): AttributeProto => ({ name, type: AttributeType.INT, i }),
  float: (name: string, f: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f }),
  ints: (name: string, ints: number[]): AttributeProto => ({ name, type: AttributeType.INTS, ints }),
};

/** A node's integer attribute, or undefined when it has none of that name. */
export function intAttribute(n: NodeProto, name: string): number | undefined {
  const i = n.attribute?.find((a) => a.name === name)?.i;
  return i == null ? undefined : Number(i);
}

/** A node's list-of-integers attribute, or undefined when it has none of that name. */
export function intsAttribute(n: NodeProto, name: string): number[] | undefined {
  return n.attribute?.find((a) => a.name === name)?.ints?.map(Number);
}

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
