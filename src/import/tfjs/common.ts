import { HeadswapError, msg, option } from '../../errors.js';
import type { ModelProto } from '../../onnx/proto.js';
import type { Weight } from './manifest.js';

export interface ConvertOptions {
  /** Input height and width when the model leaves them open (`[null, null, null, 3]`). */
  readonly inputSize?: readonly [number, number];
  /** Intermediate tensors (layer names / graph node names) to expose as extra outputs, in TF layout. */
  readonly extraOutputs?: readonly string[];
}

export interface Converted {
  readonly model: ModelProto;
  /** The single NHWC float input. */
  readonly input: string;
  readonly inputSize: [number, number];
  /** Output names: the model's own, then the extra ones. */
  readonly outputs: string[];
}

/** A fixed input size: the model's own, else the caller's; SAME padding is computed from it. */
export function resolveInputShape(shape: readonly (number | null)[], options: ConvertOptions, what: string): [number, number, number, number] {
  if (shape.length !== 4) throw new HeadswapError(`${what}: input has shape [${shape.map(String).join(',')}]; headswap imports image models with an [N,H,W,C] input`);
  const [, h, w, c] = shape;
  const given = options.inputSize;
  if (given && h != null && h > 0 && w != null && w > 0 && (given[0] !== h || given[1] !== w)) {
    throw new HeadswapError(`${what}: the model's input is ${h}x${w}, not ${given[0]}x${given[1]}`);
  }
  const height = h != null && h > 0 ? h : given?.[0];
  const width = w != null && w > 0 ? w : given?.[1];
  if (!height || !width) throw new HeadswapError(msg`${what}: the model's input size is open ([${shape.map(String).join(',')}]); give the input size, e.g. ${option('inputSize', [224, 224])}`);
  if (c == null || c <= 0) throw new HeadswapError(`${what}: the model's input has an unknown number of channels`);
  return [-1, height, width, c];
}

/** A weight that must be float, with a shape check. */
export function floats(w: Weight, what: string, rank?: number): { data: Float32Array; shape: readonly number[] } {
  if (!(w.data instanceof Float32Array)) throw new HeadswapError(`${what}: weight '${w.name}' is ${w.dtype}, expected float32`);
  if (rank !== undefined && w.shape.length !== rank) throw new HeadswapError(`${what}: weight '${w.name}' has shape [${w.shape.join(',')}], expected rank ${rank}`);
  return { data: w.data, shape: w.shape };
}

/** One line listing everything unsupported, each with how often and where it first occurs. */
export function unsupportedError(source: string, kind: string, found: ReadonlyMap<string, string[]>, supported: readonly string[]): HeadswapError {
  const list = [...found].map(([op, where]) => `${op} (${where.length}x, e.g. '${where[0]}')`).join(', ');
  return new HeadswapError(`${source}: unsupported ${kind}${found.size > 1 ? 's' : ''}: ${list}; headswap imports ${supported.join(', ')}`);
}

/** Input name and size and output names of a finished model. */
export function summarize(model: ModelProto): Converted {
  const input = model.graph!.input![0]!;
  const dims = input.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue ?? -1));
  return { model, input: input.name!, inputSize: [dims[1]!, dims[2]!], outputs: (model.graph!.output ?? []).map((o) => o.name!) };
}
