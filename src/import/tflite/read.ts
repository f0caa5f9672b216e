import * as flatbuffers from 'flatbuffers';
import { unzipSync } from 'fflate';
import { HeadswapError, describeError } from '../../errors.js';
import { AssociatedFileType, ModelMetadata, NormalizationOptions, ProcessUnitOptions } from './schema/metadata_generated.js';
import {
  ActivationFunctionType,
  AddOptions,
  BuiltinOperator,
  BuiltinOptions,
  ConcatenationOptions,
  Conv2DOptions,
  DepthwiseConv2DOptions,
  FullyConnectedOptions,
  FullyConnectedOptionsWeightsFormat,
  Model,
  MulOptions,
  Padding,
  Pool2DOptions,
  QuantizationDetails,
  ReducerOptions,
  ReshapeOptions,
  SoftmaxOptions,
  SqueezeOptions,
  SubOptions,
  TensorType,
  type Operator,
  type Tensor,
} from './schema/tflite_generated.js';

/**
 * A TensorFlow Lite model read into plain objects: the first subgraph's tensors and operators,
 * and what its TFLite metadata says about labels and input normalization. Every byte the
 * FlatBuffer points to is checked to lie inside the file while it is read, so conversion never
 * meets a damaged structure.
 */
export interface TfliteModel {
  /** The file or URL, for messages. */
  readonly source: string;
  readonly tensors: readonly TfliteTensor[];
  readonly operators: readonly TfliteOperator[];
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  /** The classifier's labels from the TFLite metadata (a TENSOR_AXIS_LABELS file of the first output). */
  readonly labels?: string[];
  /** The first input's normalization from the TFLite metadata: `(x - mean) / std` per channel. */
  readonly normalization?: { readonly mean: number[]; readonly std: number[] };
}

export interface TfliteTensor {
  readonly index: number;
  readonly name: string;
  /** As stored; computed tensors may have none (`[]`), which conversion does not rely on. */
  readonly shape: readonly number[];
  readonly type: TensorType;
  /** Little-endian contents of a constant; undefined for computed tensors. */
  readonly data?: Uint8Array;
  readonly quantization?: TfliteQuantization;
  readonly sparse: boolean;
}

/** `float = scale * (q - zeroPoint)`, one value per tensor or per index of `axis`. */
export interface TfliteQuantization {
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array;
  readonly axis: number;
  /** Custom quantization (QuantizationDetails), which headswap does not convert. */
  readonly custom: boolean;
}

export interface TfliteOperator {
  readonly index: number;
  /** BuiltinOperator value. */
  readonly code: BuiltinOperator;
  /** 'CONV_2D', or "CUSTOM 'name'" for a custom operator. */
  readonly name: string;
  /** Tensor indices; -1 for an optional input left out. */
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly options: OperatorOptions;
}

/** The builtin options headswap converts, by what they mean (each operator has some of them). */
export interface OperatorOptions {
  readonly padding?: 'same' | 'valid';
  /** [height, width]. */
  readonly strides?: [number, number];
  readonly dilations?: [number, number];
  readonly filter?: [number, number];
  readonly activation?: ActivationFunctionType;
  readonly axis?: number;
  readonly keepDims?: boolean;
  readonly newShape?: number[];
  readonly squeezeDims?: number[];
  readonly beta?: number;
  readonly keepNumDims?: boolean;
  readonly shuffledWeights?: boolean;
}

const TFLITE_IDENTIFIER = 'TFL3';
/** The Metadata entry that holds the TFLite metadata FlatBuffer (schema identifier "M001"). */
const METADATA_NAME = 'TFLITE_METADATA';

/** Thrown by CheckedByteBuffer; turned into one "truncated or damaged" line by `readTflite`. */
class OutOfBounds extends RangeError {}

/**
 * flatbuffers' ByteBuffer reads past its end as zeros (the JavaScript runtime has no verifier),
 * so a truncated file would convert into nonsense: this one throws instead. Every scalar read
 * goes through these three methods, strings through `__string`; typed-array views of vectors
 * throw a RangeError of their own, since the bytes own their ArrayBuffer.
 */
class CheckedByteBuffer extends flatbuffers.ByteBuffer {
  private check(offset: number, size: number): void {
    if (!(offset >= 0 && offset + size <= this.capacity())) throw new OutOfBounds(`offset ${offset} is outside the ${this.capacity()} bytes`);
  }

  override readUint8(offset: number): number {
    this.check(offset, 1);
    return super.readUint8(offset);
  }

  override readUint16(offset: number): number {
    this.check(offset, 2);
    return super.readUint16(offset);
  }

  override readInt32(offset: number): number {
    this.check(offset, 4);
    return super.readInt32(offset);
  }

  override __string(offset: number, encoding?: flatbuffers.Encoding): string | Uint8Array {
    const start = offset + this.readInt32(offset);
    this.check(start + 4, this.readInt32(start));
    return super.__string(offset, encoding);
  }
}

/** The operators whose options headswap reads, with the union member each must carry. */
const OPTIONS: Partial<Record<BuiltinOperator, BuiltinOptions>> = {
  [BuiltinOperator.CONV_2D]: BuiltinOptions.Conv2DOptions,
  [BuiltinOperator.DEPTHWISE_CONV_2D]: BuiltinOptions.DepthwiseConv2DOptions,
  [BuiltinOperator.AVERAGE_POOL_2D]: BuiltinOptions.Pool2DOptions,
  [BuiltinOperator.MAX_POOL_2D]: BuiltinOptions.Pool2DOptions,
  [BuiltinOperator.FULLY_CONNECTED]: BuiltinOptions.FullyConnectedOptions,
  [BuiltinOperator.SOFTMAX]: BuiltinOptions.SoftmaxOptions,
  [BuiltinOperator.CONCATENATION]: BuiltinOptions.ConcatenationOptions,
  [BuiltinOperator.ADD]: BuiltinOptions.AddOptions,
  [BuiltinOperator.SUB]: BuiltinOptions.SubOptions,
  [BuiltinOperator.MUL]: BuiltinOptions.MulOptions,
  [BuiltinOperator.RESHAPE]: BuiltinOptions.ReshapeOptions,
  [BuiltinOperator.MEAN]: BuiltinOptions.ReducerOptions,
  [BuiltinOperator.SQUEEZE]: BuiltinOptions.SqueezeOptions,
};

/** Ops whose options cannot be left out: TFLite has no defaults for their strides and sizes. */
const NEEDS_OPTIONS = new Set([BuiltinOperator.CONV_2D, BuiltinOperator.DEPTHWISE_CONV_2D, BuiltinOperator.AVERAGE_POOL_2D, BuiltinOperator.MAX_POOL_2D]);

function padding(p: Padding): 'same' | 'valid' {
  return p === Padding.VALID ? 'valid' : 'same';
}

/** One operator's options; an absent table means the schema's defaults. */
function readOptions(op: Operator, code: BuiltinOperator, what: string): OperatorOptions {
  const expected = OPTIONS[code];
  const type = op.builtinOptionsType();
  if (expected === undefined) return {};
  if (type === BuiltinOptions.NONE) {
    if (NEEDS_OPTIONS.has(code)) throw new HeadswapError(`${what} has no options; the file is damaged`);
    if (code === BuiltinOperator.SOFTMAX) return { beta: 1 };
    return {};
  }
  if (type !== expected) throw new HeadswapError(`${what} carries ${BuiltinOptions[type] ?? `options type ${type}`}, not ${BuiltinOptions[expected]}; the file is damaged`);
  switch (expected) {
    case BuiltinOptions.Conv2DOptions: {
      const o = op.builtinOptions(new Conv2DOptions()) as Conv2DOptions;
      return { padding: padding(o.padding()), strides: [o.strideH(), o.strideW()], dilations: [o.dilationHFactor(), o.dilationWFactor()], activation: o.fusedActivationFunction() };
    }
    case BuiltinOptions.DepthwiseConv2DOptions: {
      const o = op.builtinOptions(new DepthwiseConv2DOptions()) as DepthwiseConv2DOptions;
      return { padding: padding(o.padding()), strides: [o.strideH(), o.strideW()], dilations: [o.dilationHFactor(), o.dilationWFactor()], activation: o.fusedActivationFunction() };
    }
    case BuiltinOptions.Pool2DOptions: {
      const o = op.builtinOptions(new Pool2DOptions()) as Pool2DOptions;
      return { padding: padding(o.padding()), strides: [o.strideH(), o.strideW()], filter: [o.filterHeight(), o.filterWidth()], activation: o.fusedActivationFunction() };
    }
    case BuiltinOptions.FullyConnectedOptions: {
      const o = op.builtinOptions(new FullyConnectedOptions()) as FullyConnectedOptions;
      return { activation: o.fusedActivationFunction(), keepNumDims: o.keepNumDims(), shuffledWeights: o.weightsFormat() !== FullyConnectedOptionsWeightsFormat.DEFAULT };
    }
    case BuiltinOptions.SoftmaxOptions:
      return { beta: (op.builtinOptions(new SoftmaxOptions()) as SoftmaxOptions).beta() };
    case BuiltinOptions.ConcatenationOptions: {
      const o = op.builtinOptions(new ConcatenationOptions()) as ConcatenationOptions;
      return { axis: o.axis(), activation: o.fusedActivationFunction() };
    }
    case BuiltinOptions.ReshapeOptions: {
      const shape = (op.builtinOptions(new ReshapeOptions()) as ReshapeOptions).newShapeArray();
      return shape ? { newShape: [...shape] } : {};
    }
    case BuiltinOptions.ReducerOptions:
      return { keepDims: (op.builtinOptions(new ReducerOptions()) as ReducerOptions).keepDims() };
    case BuiltinOptions.SqueezeOptions:
      return { squeezeDims: [...((op.builtinOptions(new SqueezeOptions()) as SqueezeOptions).squeezeDimsArray() ?? [])] };
    case BuiltinOptions.AddOptions:
      return { activation: (op.builtinOptions(new AddOptions()) as AddOptions).fusedActivationFunction() };
    case BuiltinOptions.SubOptions:
      return { activation: (op.builtinOptions(new SubOptions()) as SubOptions).fusedActivationFunction() };
    case BuiltinOptions.MulOptions:
      return { activation: (op.builtinOptions(new MulOptions()) as MulOptions).fusedActivationFunction() };
  }
  return {};
}

function readQuantization(t: Tensor): TfliteQuantization | undefined {
  const q = t.quantization();
  const scale = q?.scaleArray();
  if (!q || !scale || scale.length === 0) return undefined;
  const zeroPoint = Int32Array.from({ length: q.zeroPointLength() }, (_, i) => Number(q.zeroPoint(i) ?? 0));
  return { scale: Float32Array.from(scale), zeroPoint, axis: q.quantizedDimension(), custom: q.detailsType() !== QuantizationDetails.NONE };
}

/** A tensor's constant bytes: inside the FlatBuffer, or after it at offset/size (models over 2 GB). */
function tensorData(model: Model, bytes: Uint8Array, index: number): Uint8Array | undefined {
  const buffer = model.buffers(index);
  if (!buffer) return undefined;
  const offset = Number(buffer.offset());
  if (offset > 1) {
    const end = offset + Number(buffer.size());
    if (end > bytes.length) throw new OutOfBounds(`buffer ${index} ends at byte ${end}`);
    return bytes.subarray(offset, end);
  }
  const data = buffer.dataArray();
  return data && data.length > 0 ? data : undefined;
}

/**
 * The files zipped onto the end of a model (its metadata's associated files), by name. The zip's
 * offsets may count from the start of the zip rather than of the file; its end record says where
 * it starts either way.
 */
function appendedFiles(bytes: Uint8Array, wanted: ReadonlySet<string>): Record<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let end = bytes.length - 22; end >= Math.max(0, bytes.length - 22 - 0xffff); end--) {
    if (view.getUint32(end, true) !== 0x06054b50) continue;
    const start = end - view.getUint32(end + 12, true) - view.getUint32(end + 16, true);
    if (start < 0) return {};
    try {
      return unzipSync(bytes.subarray(start), { filter: (f) => wanted.has(f.name) });
    } catch {
      return {};
    }
  }
  return {};
}

/** One label per line; trailing blank lines dropped. */
export function parseLabels(text: string): string[] {
  return text.replace(/\s+$/, '').split(/\r?\n/).map((l) => l.trim());
}

/** Labels and input normalization from the TFLite metadata, when the model carries them. */
function readMetadata(model: Model, bytes: Uint8Array): Pick<TfliteModel, 'labels' | 'normalization'> {
  let buffer: number | undefined;
  for (let i = 0; i < model.metadataLength(); i++) if (model.metadata(i)?.name() === METADATA_NAME) buffer = model.metadata(i)!.buffer();
  const data = buffer === undefined ? undefined : tensorData(model, bytes, buffer);
  if (!data) return {};
  const bb = new CheckedByteBuffer(data.slice());
  if (!ModelMetadata.bufferHasIdentifier(bb)) return {};
  const graph = ModelMetadata.getRootAsModelMetadata(bb).subgraphMetadata(0);
  const out: { labels?: string[]; normalization?: { mean: number[]; std: number[] } } = {};
  const input = graph?.inputTensorMetadata(0);
  for (let i = 0; i < (input?.processUnitsLength() ?? 0); i++) {
    const unit = input!.processUnits(i)!;
    if (unit.optionsType() !== ProcessUnitOptions.NormalizationOptions) continue;
    const n = unit.options(new NormalizationOptions()) as NormalizationOptions;
    const mean = [...(n.meanArray() ?? [])];
    const std = [...(n.stdArray() ?? [])];
    if ((mean.length === 1 || mean.length === 3) && (std.length === 1 || std.length === 3)) out.normalization = { mean, std };
  }
  const output = graph?.outputTensorMetadata(0);
  for (let i = 0; i < (output?.associatedFilesLength() ?? 0); i++) {
    const file = output!.associatedFiles(i)!;
    const name = file.name();
    if (file.type() !== AssociatedFileType.TENSOR_AXIS_LABELS || !name) continue;
    // The first label file is the default one (others are translations, told apart by locale).
    const text = appendedFiles(bytes, new Set([name]))[name];
    if (text) out.labels = parseLabels(new TextDecoder().decode(text));
    break;
  }
  return out;
}

/**
 * Reads a .tflite file's bytes. One line naming `source` for what is not a TFLite model: too
 * short, no "TFL3" identifier, a structure pointing past the end (a truncated download), or no
 * subgraph.
 */
export function readTflite(bytes: Uint8Array, source: string): TfliteModel {
  // A copy that owns its ArrayBuffer, so typed-array views of vectors stay inside the file.
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
  if (own.length < 8) throw new HeadswapError(`${source}: ${own.length} bytes, too short for a TensorFlow Lite model; check the file or download it again`);
  const bb = new CheckedByteBuffer(own);
  if (!Model.bufferHasIdentifier(bb)) {
    throw new HeadswapError(`${source}: not a TensorFlow Lite model (no "${TFLITE_IDENTIFIER}" FlatBuffer identifier); give a .tflite file`);
  }
  try {
    const model = Model.getRootAsModel(bb);
    const graph = model.subgraphs(0);
    if (!graph) throw new HeadswapError(`${source}: the model has no subgraph; the file is damaged`);
    const tensors = Array.from({ length: graph.tensorsLength() }, (_, index): TfliteTensor => {
      const t = graph.tensors(index)!;
      const data = tensorData(model, own, t.buffer());
      const quantization = readQuantization(t);
      return { index, name: t.name() ?? '', shape: [...(t.shapeArray() ?? [])], type: t.type(), ...(data ? { data } : {}), ...(quantization ? { quantization } : {}), sparse: t.sparsity() !== null };
    });
    const operators = Array.from({ length: graph.operatorsLength() }, (_, index): TfliteOperator => {
      const op = graph.operators(index)!;
      const opcode = model.operatorCodes(op.opcodeIndex());
      if (!opcode) throw new HeadswapError(`${source}: operator ${index} has opcode ${op.opcodeIndex()}, which the model does not list; the file is damaged`);
      // Codes above 127 live in builtin_code; older files only fill the byte-sized field.
      const code: BuiltinOperator = Math.max(opcode.builtinCode(), opcode.deprecatedBuiltinCode());
      const name = code === BuiltinOperator.CUSTOM ? `CUSTOM '${opcode.customCode() ?? ''}'` : (BuiltinOperator[code] ?? `operator code ${code}`);
      const inputs = [...(op.inputsArray() ?? [])];
      const outputs = [...(op.outputsArray() ?? [])];
      for (const t of [...inputs, ...outputs]) {
        if (t < -1 || t >= tensors.length) throw new HeadswapError(`${source}: operator ${index} (${name}) refers to tensor ${t} of ${tensors.length}; the file is damaged`);
      }
      return { index, code, name, inputs, outputs, options: readOptions(op, code, `${source}: operator ${index} (${name})`) };
    });
    return {
      source,
      tensors,
      operators,
      inputs: [...(graph.inputsArray() ?? [])],
      outputs: [...(graph.outputsArray() ?? [])],
      ...readMetadata(model, own),
    };
  } catch (err) {
    if (err instanceof HeadswapError) throw err;
    // OutOfBounds, or a typed-array view past the end or misaligned.
    if (err instanceof RangeError) throw new HeadswapError(`${source}: truncated or damaged (${describeError(err)}); download or copy the file again`);
    throw err;
  }
}
