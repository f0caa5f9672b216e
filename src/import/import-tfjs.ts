import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheDir as defaultCacheDir, modelsDir } from '../runtime/download.js';
import { HeadswapError, describeError } from '../errors.js';
import { encodeModel, readModel } from '../onnx/proto.js';
import { sha256, sha256File, writeFileAtomic } from '../util/fs.js';
import { summarize } from './tfjs/common.js';
import { convertTfjs } from './tfjs/convert.js';
import { checkShards, type TfjsArtifacts } from './tfjs/manifest.js';
import { fetchTfjs, readTfjsFolder } from './tfjs/read.js';

/**
 * Bump when the importer's output for the same TF.js files changes (a conversion fix), so that
 * ONNX files cached by an older headswap are not reused.
 */
const IMPORTER_VERSION = 1;

export interface ImportOptions {
  /** Root of the cache; the ONNX file goes to `<cacheDir>/models/`. Default: `$HEADSWAP_CACHE` or the user cache. */
  readonly cacheDir?: string;
  /** Input height and width, for models whose input size is open. */
  readonly inputSize?: readonly [number, number];
}

export interface ImportResult {
  /** The cached ONNX file: float32 NHWC input `[N,H,W,C]` in the model's own value range, TF-layout outputs. */
  readonly onnxPath: string;
  /** sha256 of the ONNX file. */
  readonly sha256: string;
  /** sha256 of model.json + shards (+ importer version and input size): the cache key. */
  readonly sourceSha256: string;
  readonly format: 'layers-model' | 'graph-model';
  readonly input: string;
  readonly inputSize: [number, number];
  /** From labels.txt beside model.json (or a Teachable Machine metadata.json). */
  readonly labels?: string[];
  readonly outputs: string[];
}

/**
 * Converts a TF.js model (folder, model.json path, nsfwjs model folder, or http(s) URL of a
 * model.json) to ONNX once: cached as `<cacheDir>/models/tfjs-<sha256>.onnx`, written to a temp
 * file and renamed, and reused when present.
 */
export async function importTfjs(source: string, options: ImportOptions = {}): Promise<ImportResult> {
  const root = options.cacheDir ?? defaultCacheDir();
  const artifacts = /^https?:\/\//i.test(source) ? await fetchTfjs(source, root) : await readTfjsFolder(source);
  return importArtifacts(artifacts, options);
}

/** `importTfjs` for a model already in memory (e.g. from `readNsfwjsFolder`). */
export async function importArtifacts(artifacts: TfjsArtifacts, options: ImportOptions = {}): Promise<ImportResult> {
  checkShards(artifacts);
  const key = sourceKey(artifacts, options.inputSize);
  const onnxPath = join(modelsDir(options.cacheDir), `tfjs-${key}.onnx`);
  const base = { sourceSha256: key, format: artifacts.modelJson.format, ...(artifacts.labels ? { labels: [...artifacts.labels] } : {}) };
  if (await stat(onnxPath).then((s) => s.isFile(), () => false)) {
    // Only ever renamed into place complete, so a present file is trusted.
    const { input, inputSize, outputs } = summarize(await readModel(onnxPath));
    return { ...base, onnxPath, sha256: await sha256File(onnxPath), input, inputSize, outputs };
  }
  const { model, input, inputSize, outputs } = convertTfjs(artifacts, options.inputSize ? { inputSize: options.inputSize } : {});
  const bytes = encodeModel(model);
  try {
    await writeFileAtomic(onnxPath, bytes);
  } catch (err) {
    throw new HeadswapError(`cannot write ${onnxPath}: ${describeError(err)}; free disk space or set HEADSWAP_CACHE to a writable directory`, { cause: err });
  }
  return { ...base, onnxPath, sha256: sha256(bytes), input, inputSize, outputs };
}

function sourceKey(a: TfjsArtifacts, inputSize: readonly [number, number] | undefined): string {
  const hash = createHash('sha256');
  hash.update(`headswap-tfjs-import-${IMPORTER_VERSION}\n${inputSize ? inputSize.join('x') : ''}\n`);
  hash.update(a.modelJsonBytes);
  for (const group of a.modelJson.weightsManifest) for (const p of group.paths) hash.update(a.shards.get(p)!);
  return hash.digest('hex');
}
