import { createHash } from 'node:crypto';
import { readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { HeadswapError, describeError } from '../errors.js';
import type { Preprocessing } from '../image/types.js';
import { encodeModel, readModel } from '../onnx/proto.js';
import { cacheDir as defaultCacheDir, download, modelsDir } from '../runtime/download.js';
import { errnoCode, sha256, sha256File, writeFileAtomic } from '../util/fs.js';
import { summarize } from './tfjs/common.js';
import { PROBABILITIES_KEY, convertTflite, type TfliteConverted } from './tflite/convert.js';
import { parseLabels, readTflite, type TfliteModel } from './tflite/read.js';
import { TensorType } from './tflite/schema/tflite_generated.js';

/**
 * Bump when the importer's output for the same .tflite file changes (a conversion fix), so that
 * ONNX files cached by an older headswap are not reused.
 */
const TFLITE_IMPORTER_VERSION = 1;

export interface TfliteImportOptions {
  /** Root of the cache; the ONNX file goes to `<cacheDir>/models/`. Default: `$HEADSWAP_CACHE` or the user cache. */
  readonly cacheDir?: string;
}

export interface TfliteImportResult {
  /** The cached ONNX file: float32 NHWC input `[N,H,W,3]` in the model's float domain, float outputs. */
  readonly onnxPath: string;
  /** sha256 of the ONNX file. */
  readonly sha256: string;
  /** sha256 of the importer version + the .tflite bytes: the cache key. */
  readonly sourceSha256: string;
  /** sha256 of the .tflite file itself. */
  readonly tfliteSha256: string;
  readonly input: string;
  readonly inputSize: [number, number];
  readonly outputs: string[];
  /** Outputs that already are class probabilities (a softmax's). */
  readonly probabilities: string[];
  /** Class names of the first output: the TFLite metadata's label file, else a labels.txt beside the file. */
  readonly labels?: string[];
  /**
   * How 8-bit pixels become the input, as far as the file says: its input quantization (uint8
   * `q = p`, int8 `q = p - 128`, then `(q - zero) * scale`), else its metadata's normalization,
   * else Teachable Machine's [-1, 1] when a labels.txt in its "0 name" form sits beside it.
   * Undefined when the file says nothing.
   */
  readonly preprocessing?: Partial<Preprocessing>;
}

async function readSource(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new HeadswapError(`${path} not found; give a .tflite file or an http(s) URL of one`);
    throw new HeadswapError(`${path}: cannot read (${describeError(err)}); check its permissions`, { cause: err });
  }
}

/**
 * Class names from a labels.txt beside the model (Teachable Machine exports one, each line
 * "<index> <name>"); `indexed` says it had that form, whose numbers are dropped.
 */
async function labelsBeside(path: string): Promise<{ labels: string[]; indexed: boolean } | undefined> {
  const text = await readFile(join(dirname(path), 'labels.txt'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const lines = parseLabels(text);
  const indexed = lines.length > 0 && lines.every((l, i) => l.startsWith(`${i} `));
  return { labels: indexed ? lines.map((l) => l.slice(l.indexOf(' ') + 1)) : lines, indexed };
}

function triple(values: readonly number[]): [number, number, number] {
  return [values[0]!, values[1] ?? values[0]!, values[2] ?? values[0]!];
}

function inputPreprocessing(model: TfliteModel, teachable: boolean): Partial<Preprocessing> | undefined {
  const t = model.tensors[model.inputs[0]!]!;
  const q = t.quantization;
  if (q && (t.type === TensorType.UINT8 || t.type === TensorType.INT8)) {
    const s = q.scale[0]!;
    // The quantized value is the pixel byte (uint8) or the byte shifted to int8.
    const zero = (q.zeroPoint[0] ?? 0) + (t.type === TensorType.INT8 ? 128 : 0);
    return { scale: s, mean: [zero * s, zero * s, zero * s], std: [1, 1, 1] };
  }
  if (model.normalization) return { scale: 1, mean: triple(model.normalization.mean), std: triple(model.normalization.std) };
  // Teachable Machine's float models take (p - 127.5) / 127.5 of the centered square.
  if (teachable) return { scale: 1 / 127.5, mean: [1, 1, 1], std: [1, 1, 1], cropRatio: 1 };
  return undefined;
}

/**
 * Converts a TensorFlow Lite model (.tflite path, or http(s) URL of one) to ONNX once: cached as
 * `<cacheDir>/models/tflite-<sha256>.onnx` by the file's content, written to a temp file and
 * renamed, and reused when present. A URL's file is kept as `<cacheDir>/models/tflite-url-<sha256
 * of URL>.tflite` (removed again when it is not a model headswap can import).
 */
export async function importTflite(source: string, options: TfliteImportOptions = {}): Promise<TfliteImportResult> {
  const root = options.cacheDir ?? defaultCacheDir();
  if (/^https?:\/\//i.test(source)) {
    const path = join(modelsDir(root), `tflite-url-${sha256(source)}.tflite`);
    if (!(await stat(path).then((s) => s.isFile(), () => false))) await download(source, path);
    try {
      return await importBytes(await readSource(path), source, undefined, options);
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    }
  }
  const path = resolve(source);
  return importBytes(await readSource(path), path, path, options);
}

async function importBytes(bytes: Uint8Array, source: string, path: string | undefined, options: TfliteImportOptions): Promise<TfliteImportResult> {
  const model = readTflite(bytes, source);
  const tfliteSha256 = sha256(bytes);
  const key = createHash('sha256').update(`headswap-tflite-import-${TFLITE_IMPORTER_VERSION}\n`).update(bytes).digest('hex');
  const onnxPath = join(modelsDir(options.cacheDir), `tflite-${key}.onnx`);
  let converted: TfliteConverted;
  let onnxSha: string;
  if (await stat(onnxPath).then((s) => s.isFile(), () => false)) {
    // Only ever renamed into place complete, so a present file is trusted.
    const onnx = await readModel(onnxPath);
    const probabilities = JSON.parse(onnx.metadataProps.find((p) => p.key === PROBABILITIES_KEY)?.value ?? '[]') as string[];
    converted = { ...summarize(onnx), probabilities };
    onnxSha = await sha256File(onnxPath);
  } else {
    converted = convertTflite(model);
    const encoded = encodeModel(converted.model);
    try {
      await writeFileAtomic(onnxPath, encoded);
    } catch (err) {
      throw new HeadswapError(`cannot write ${onnxPath}: ${describeError(err)}; free disk space or set HEADSWAP_CACHE to a writable directory`, { cause: err });
    }
    onnxSha = sha256(encoded);
  }
  const beside = model.labels || !path ? undefined : await labelsBeside(path);
  const labels = model.labels ?? beside?.labels;
  // Labels that do not fit the first output belong to something else.
  const classes = converted.model.graph?.output?.[0]?.type?.tensorType?.shape?.dim?.at(-1)?.dimValue;
  const fits = labels && classes != null && Number(classes) === labels.length;
  const preprocessing = inputPreprocessing(model, beside?.indexed === true && fits === true);
  return {
    onnxPath,
    sha256: onnxSha,
    sourceSha256: key,
    tfliteSha256,
    input: converted.input,
    inputSize: converted.inputSize,
    outputs: converted.outputs,
    probabilities: converted.probabilities,
    ...(fits ? { labels } : {}),
    ...(preprocessing ? { preprocessing } : {}),
  };
}
