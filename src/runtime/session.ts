import os from 'node:os';
import ort from 'onnxruntime-node';
import { HeadswapError, describeError } from '../errors.js';
import { packBatch } from '../image/preprocess.js';
import type { RgbImage } from '../image/types.js';

/**
 * The one door to onnxruntime: no other file under src/ imports onnxruntime-node, so session
 * settings (which the head's bit-reproducibility and the exported model bytes rest on), load
 * errors and the batching of images live here once.
 */

export type Session = ort.InferenceSession;
export type SessionOptions = ort.InferenceSession.SessionOptions;
export type Tensor = ort.Tensor;
export type TensorType = ort.Tensor.Type;
/** The typed array behind a tensor of this element type (Float32Array for 'float32', ...). */
export type TensorData<T extends TensorType> = ort.Tensor.DataTypeMap[T];
export type Feeds = Record<string, Tensor>;

/**
 * headswap's settings for every session. One inter-op thread and sequential execution: parallel
 * branches would add nothing on these graphs and make timing noisier. `x64quantprecision`: on x86
 * CPUs without VNNI, onnxruntime's int8 kernels add pairs of products in saturating int16
 * (13% of the bundled MobileNetV2's first-layer outputs off by up to 19 steps, pooled features by
 * up to 2.0), so results depended on the CPU and differed from onnxruntime-web's and other
 * runtimes'; with it, those CPUs use exact kernels (1.6x slower there; a no-op elsewhere).
 */
export function sessionOptions(threads?: number): SessionOptions {
  return {
    intraOpNumThreads: threads ?? os.availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { x64quantprecision: '1' } },
  };
}

export interface CreateSessionOptions {
  /** Intra-op threads; default all cores. */
  readonly threads?: number;
  /**
   * False turns graph optimizations off, so every tensor the graph names is computed as named
   * (not fused away) and can be made an output.
   */
  readonly optimize?: boolean;
  /**
   * The user-facing message when onnxruntime refuses the model, given its reason (first line).
   * Omitted for graphs headswap builds itself: their failure is a bug and keeps its own error.
   */
  readonly loadError?: (reason: string) => string;
}

/** A session for a model given as ONNX bytes or a file path. */
export async function createSession(model: Uint8Array | string, options: CreateSessionOptions = {}): Promise<Session> {
  const settings = sessionOptions(options.threads);
  if (options.optimize === false) settings.graphOptimizationLevel = 'disabled';
  try {
    // Separate calls: InferenceSession.create's overloads take a path or bytes, not the union.
    return await (typeof model === 'string' ? ort.InferenceSession.create(model, settings) : ort.InferenceSession.create(model, settings));
  } catch (err) {
    if (!options.loadError) throw err;
    throw new HeadswapError(options.loadError(describeError(err)));
  }
}

/** Creates a session, hands it to `use` and releases it however `use` ends. */
export async function withSession<T>(model: Uint8Array | string, options: CreateSessionOptions, use: (session: Session) => Promise<T>): Promise<T> {
  const session = await createSession(model, options);
  try {
    return await use(session);
  } finally {
    await session.release();
  }
}

/** A CPU tensor over `data` (not copied). */
export function tensor<T extends TensorType>(type: T, data: TensorData<T>, dims: readonly number[]): Tensor {
  return new ort.Tensor(type, data, dims);
}

export interface ImageRun {
  /** The graph's uint8 `[N, H, W, 3]` input. */
  readonly input: string;
  /** Its float32 `[N, D]` output. */
  readonly output: string;
  /** Height and width the images already have. */
  readonly size: readonly [number, number];
  /** Most images per run; default all in one. Graphs exported with batch 1 need 1. */
  readonly maxBatch?: number;
}

/**
 * Runs resized 8-bit RGB images through a session in batches of `maxBatch` and joins the
 * `[n, D]` outputs into one `[images.length, D]` array (the session's own buffer when one run did it).
 */
export async function runImages(session: Session, images: readonly RgbImage[], io: ImageRun): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const [h, w] = io.size;
  const step = io.maxBatch ?? Infinity;
  const parts: Float32Array[] = [];
  let width = 0;
  for (let i = 0; i < images.length; i += step) {
    const batch = images.slice(i, i + step);
    const out = (await session.run({ [io.input]: tensor('uint8', packBatch(batch), [batch.length, h, w, 3]) }))[io.output]!;
    parts.push(out.data as Float32Array);
    width = Number(out.dims[1]);
  }
  if (parts.length === 1) return { data: parts[0]!, dims: [images.length, width] };
  const data = new Float32Array(images.length * width);
  let offset = 0;
  for (const p of parts) {
    data.set(p, offset);
    offset += p.length;
  }
  return { data, dims: [images.length, width] };
}
