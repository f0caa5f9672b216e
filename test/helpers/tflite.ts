import * as flatbuffers from 'flatbuffers';
import { zipSync } from 'fflate';
import { AssociatedFileT, AssociatedFileType, ModelMetadataT, NormalizationOptionsT, ProcessUnitOptions, ProcessUnitT, SubGraphMetadataT, TensorMetadataT } from '../../src/import/tflite/schema/metadata_generated.js';
import {
  Buffer as TfliteBuffer,
  BufferT,
  BuiltinOperator,
  BuiltinOptions,
  MetadataT,
  Model,
  ModelT,
  OperatorCodeT,
  OperatorT,
  QuantizationParametersT,
  SubGraphT,
  TensorT,
  type TensorType,
} from '../../src/import/tflite/schema/tflite_generated.js';

/** Small .tflite files built with the generated FlatBuffer builders (the object API). */

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly type: TensorType;
  /** A constant's values, little-endian as the file stores them. */
  readonly data?: ArrayBufferView;
  readonly quant?: { readonly scale: readonly number[]; readonly zeroPoint: readonly number[]; readonly axis?: number };
}

type Options = NonNullable<OperatorT['builtinOptions']>;

/**
 * Empty buffers must leave out their data vector: TFLite reads an empty vector as a constant
 * of 0 bytes (the object API would write one).
 */
class LeanBuffer extends BufferT {
  override pack(builder: flatbuffers.Builder): flatbuffers.Offset {
    return this.data.length > 0 ? super.pack(builder) : TfliteBuffer.createBuffer(builder, 0, this.offset, this.size);
  }
}

function finish(model: ModelT): Uint8Array {
  model.buffers = model.buffers.map((b) => Object.assign(new LeanBuffer(), b));
  const builder = new flatbuffers.Builder(1 << 16);
  builder.finish(model.pack(builder), 'TFL3');
  return builder.asUint8Array();
}

/** A one-subgraph model assembled tensor by tensor and op by op. */
export class TfliteGraph {
  readonly tensors: TensorSpec[] = [];
  private readonly ops: { code: BuiltinOperator; custom?: string; inputs: number[]; outputs: number[]; type: BuiltinOptions; options: Options | null }[] = [];

  tensor(spec: TensorSpec): number {
    this.tensors.push(spec);
    return this.tensors.length - 1;
  }

  op(code: BuiltinOperator, inputs: number[], outputs: number[], options?: [BuiltinOptions, Options], custom?: string): void {
    this.ops.push({ code, inputs, outputs, type: options?.[0] ?? BuiltinOptions.NONE, options: options?.[1] ?? null, ...(custom ? { custom } : {}) });
  }

  /** The model's bytes; `metadata` becomes its TFLITE_METADATA buffer. */
  bytes(inputs: number[], outputs: number[], metadata?: Uint8Array): Uint8Array {
    const codes: OperatorCodeT[] = [];
    const codeIndex = (code: BuiltinOperator, custom?: string): number => {
      let i = codes.findIndex((c) => c.builtinCode === code && (c.customCode ?? undefined) === custom);
      if (i < 0) i = codes.push(new OperatorCodeT(Math.min(code, BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES), custom ?? null, 1, code)) - 1;
      return i;
    };
    // Buffer 0 is the empty one computed tensors point to.
    const buffers = [new BufferT()];
    const tensors = this.tensors.map((t) => {
      const q = t.quant ? new QuantizationParametersT([], [], [...t.quant.scale], t.quant.zeroPoint.map(BigInt), undefined, null, t.quant.axis ?? 0) : null;
      let buffer = 0;
      if (t.data) buffer = buffers.push(new BufferT(Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)))) - 1;
      return new TensorT([...t.shape], t.type, buffer, t.name, q);
    });
    const operators = this.ops.map((o) => new OperatorT(codeIndex(o.code, o.custom), o.inputs, o.outputs, o.type, o.options));
    const meta = metadata ? [new MetadataT('TFLITE_METADATA', buffers.push(new BufferT(Array.from(metadata))) - 1)] : [];
    return finish(new ModelT(3, codes, [new SubGraphT(tensors, inputs, outputs, operators, 'main')], 'headswap test', buffers, [], meta));
  }
}

/** A TFLite metadata FlatBuffer naming a label file for the first output, and the input's normalization. */
export function metadataBytes(labelFile: string, normalization?: { mean: number[]; std: number[] }): Uint8Array {
  const input = new TensorMetadataT('image', null, normalization ? [new ProcessUnitT(ProcessUnitOptions.NormalizationOptions, new NormalizationOptionsT(normalization.mean, normalization.std))] : []);
  const output = new TensorMetadataT('probability', null, [], [new AssociatedFileT(labelFile, 'labels', AssociatedFileType.TENSOR_AXIS_LABELS)]);
  const builder = new flatbuffers.Builder(1024);
  builder.finish(new ModelMetadataT('test classifier', null, null, [new SubGraphMetadataT(null, null, [input], [output])]).pack(builder), 'M001');
  return builder.asUint8Array();
}

/** Appends the files as a zip, as TFLite's metadata writer packs a model's associated files. */
export function withZip(model: Uint8Array, files: Record<string, string>): Uint8Array {
  const zip = zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, new TextEncoder().encode(v)])));
  return Buffer.concat([model, zip]);
}

/** A copy of a model changed through the object API (e.g. more subgraph outputs, shapes filled in). */
export function rewriteTflite(bytes: Uint8Array, edit: (model: ModelT) => void): Uint8Array {
  const model = Model.getRootAsModel(new flatbuffers.ByteBuffer(bytes)).unpack();
  edit(model);
  return finish(model);
}
