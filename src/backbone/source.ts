import { existsSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HeadswapError, describeError } from '../errors.js';
import type { Preprocessing } from '../image/types.js';
import { importTfjs } from '../import/import-tfjs.js';
import { importTflite } from '../import/import-tflite.js';
import { tfjsDownloadFolder } from '../import/tfjs/read.js';
import { cacheDir, download, modelsDir, normalizeSha, type DownloadOptions } from '../runtime/download.js';
import { errnoCode, sha256, sha256File } from '../util/fs.js';
import { packagePath } from '../util/paths.js';
import type { ZooEntry } from './types.js';
import { findEntry, getEntry } from './zoo.js';

export interface ResolvedSource {
  /** Absolute path of the local ONNX file. */
  path: string;
  sha256: string;
  kind: 'zoo-bundled' | 'zoo-download' | 'file' | 'url' | 'tfjs' | 'tflite';
  entry?: ZooEntry;
  /** Zoo id, path or URL as the user gave it. */
  origin: string;
  /** For a TF.js model converted to ONNX: its output tensors and the labels.txt beside it. */
  tfjs?: { outputs: string[]; labels?: string[] };
  /**
   * For a TFLite model converted to ONNX: its outputs (and which already are probabilities), the
   * labels from its metadata or a labels.txt beside it, the pixel scaling its file states, and
   * the sha256 of the .tflite file.
   */
  tflite?: { outputs: string[]; probabilities: string[]; labels?: string[]; preprocessing?: Partial<Preprocessing>; sha256: string };
}

export interface ResolveOptions extends DownloadOptions {
  /** Root of the download cache; models go to `<cacheDir>/models`. Default: `cacheDir()` (runtime/download.ts). */
  cacheDir?: string;
}

/**
 * Turns what the user typed (zoo id, http(s) URL or file path) into a local ONNX file,
 * downloading into the cache when needed.
 */
export async function resolveSource(source: string, options: ResolveOptions = {}): Promise<ResolvedSource> {
  const expected = normalizeSha(options.expectedSha256);
  // A bare word cannot be a useful path (it would fail the .onnx check), so treat it as a mistyped id.
  const looksLikeId = !/[\\/.]/.test(source);
  const entry = findEntry(source) ?? (looksLikeId ? getEntry(source) : undefined);
  if (entry) {
    // Checked before resolving so a conflicting pin does not cost a download.
    if (entry.sha256) checkExpected(entry.id, entry.sha256, expected);
    return resolveEntry(entry, options);
  }
  if (/^https?:\/\/[^?#]*\.json([?#].*)?$/i.test(source)) return resolveTfjs(source, options);
  if (/^https?:\/\/[^?#]*\.tflite([?#].*)?$/i.test(source)) return resolveTflite(source, source, options);
  if (/^https?:\/\//i.test(source)) return resolveUrl(source, options);
  if (/^file:\/\//i.test(source)) return resolveFile(fileURLToPath(source), source, expected, options);
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(source)) {
    throw new HeadswapError(`unsupported URL '${source}'; give an http(s) URL, a .onnx or .tflite file path or a zoo id`);
  }
  return resolveFile(source, source, expected, options);
}

/** Whether a zoo entry runs without a download: bundled, or already in the cache folder `root`. */
export function availableOffline(entry: ZooEntry, root?: string): boolean {
  if (entry.bundled) return true;
  if (entry.format === 'tfjs') return existsSync(tfjsDownloadFolder(entry.url, root ?? cacheDir()));
  return existsSync(join(modelsDir(root), `${entry.sha256}.${entry.format}`));
}

/** Resolves one zoo entry: its bundled file, or its download in the cache. Exported so tests can inject entries. */
export async function resolveEntry(entry: ZooEntry, options: ResolveOptions = {}): Promise<ResolvedSource> {
  if (entry.format === 'tfjs') return { ...(await resolveTfjs(entry.url, options)), entry, origin: entry.id };
  if (entry.bundled) {
    const path = packagePath(entry.bundled);
    const actual = await bundledSha(path);
    if (actual !== entry.sha256) {
      throw new HeadswapError(`bundled model ${path} is corrupt (sha256 ${actual}, expected ${entry.sha256}); reinstall headswap`);
    }
    // A bundled .tflite ships as itself and is converted on first use (the converted graph is cached).
    if (entry.format === 'tflite') return { ...(await resolveTflite(path, entry.id, options)), entry };
    return { path, sha256: actual, kind: 'zoo-bundled', entry, origin: entry.id };
  }
  // A download is only ever trusted by its pinned hash.
  if (!entry.sha256) throw new HeadswapError(`zoo entry ${entry.id} has no sha256 for its ${entry.format === 'tflite' ? '.tflite' : 'ONNX'} file; pin one`);
  const expected = normalizeSha(entry.sha256) as string;
  // Named by content and only ever renamed into place after verification, so an existing file is trusted.
  const path = join(modelsDir(options.cacheDir), `${expected}.${entry.format}`);
  if (!(await isFile(path))) {
    await download(entry.url, path, { ...downloadOptions(options), expectedSha256: expected });
  }
  if (entry.format === 'tflite') return { ...(await resolveTflite(path, entry.id, options)), entry };
  return { path, sha256: expected, kind: 'zoo-download', entry, origin: entry.id };
}

async function resolveUrl(url: string, options: ResolveOptions): Promise<ResolvedSource> {
  const expected = normalizeSha(options.expectedSha256);
  const path = join(modelsDir(options.cacheDir), `url-${sha256(url)}.onnx`);
  if (await isFile(path)) {
    const actual = await sha256File(path);
    // A cached copy that differs from the pin is stale (the pin changed): fetch again rather than refuse.
    if (!expected || actual === expected) return { path, sha256: actual, kind: 'url', origin: url };
  }
  const actual = await download(url, path, { ...downloadOptions(options), expectedSha256: expected });
  return { path, sha256: actual, kind: 'url', origin: url };
}

/** A TF.js model (folder, model.json or its URL), converted once to ONNX and cached by content. */
async function resolveTfjs(source: string, options: ResolveOptions): Promise<ResolvedSource> {
  const imported = await importTfjs(source, { cacheDir: options.cacheDir });
  return {
    path: imported.onnxPath,
    sha256: imported.sha256,
    kind: 'tfjs',
    origin: source,
    tfjs: { outputs: imported.outputs, ...(imported.labels ? { labels: imported.labels } : {}) },
  };
}

/** A TFLite model (file or URL), converted once to ONNX and cached by content; `sha256` is the converted graph's. */
async function resolveTflite(source: string, origin: string, options: ResolveOptions): Promise<ResolvedSource> {
  const imported = await importTflite(source, { cacheDir: options.cacheDir });
  return {
    path: imported.onnxPath,
    sha256: imported.sha256,
    kind: 'tflite',
    origin,
    tflite: {
      outputs: imported.outputs,
      probabilities: imported.probabilities,
      ...(imported.labels ? { labels: imported.labels } : {}),
      ...(imported.preprocessing ? { preprocessing: imported.preprocessing } : {}),
      sha256: imported.tfliteSha256,
    },
  };
}

async function resolveFile(given: string, origin: string, expected: string | undefined, options: ResolveOptions = {}): Promise<ResolvedSource> {
  const path = resolvePath(given);
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new HeadswapError(`model file ${path} not found; check the path, or give a zoo id ('headswap backbones' lists them) or an http(s) URL`);
    }
    throw new HeadswapError(`cannot read model file ${path}: ${describeError(err)}; check its permissions`, { cause: err });
  }
  if (stats.isDirectory()) {
    if (await isFile(join(path, 'model.json'))) return resolveTfjs(path, { cacheDir: options.cacheDir });
    throw new HeadswapError(`${path} is a directory; give the path of the .onnx model file itself (or of a TF.js model folder with model.json)`);
  }
  if (!stats.isFile()) throw new HeadswapError(`${path} is not a regular file; give the path of a .onnx model file`);
  if (/\.json$/i.test(path)) return resolveTfjs(path, { cacheDir: options.cacheDir });
  if (/\.tflite$/i.test(path)) {
    // A pin names the .tflite file the user has, checked before any conversion.
    if (expected) checkExpected(path, await sha256File(path), expected);
    return resolveTflite(path, origin, options);
  }
  if (!/\.onnx$/i.test(path)) {
    throw new HeadswapError(`${path} is not an .onnx file; headswap runs ONNX models (and converts .tflite and TF.js ones): export or convert the model to ONNX (e.g. torch.onnx.export, tf2onnx)`);
  }
  let actual: string;
  try {
    actual = await sha256File(path);
  } catch (err) {
    throw new HeadswapError(`cannot read model file ${path}: ${describeError(err)}; check its permissions`, { cause: err });
  }
  checkExpected(path, actual, expected);
  return { path, sha256: actual, kind: 'file', origin };
}

/** Bundled files never change while we run, so each is hashed at most once per process. */
const bundledHashes = new Map<string, Promise<string>>();

function bundledSha(path: string): Promise<string> {
  let hash = bundledHashes.get(path);
  if (!hash) {
    hash = sha256File(path).catch((err: unknown) => {
      throw new HeadswapError(`bundled model ${path} is unreadable (${describeError(err)}); reinstall headswap`, { cause: err });
    });
    bundledHashes.set(path, hash);
  }
  return hash;
}

function checkExpected(what: string, actual: string, expected: string | undefined): void {
  if (expected && actual !== expected) {
    throw new HeadswapError(`sha256 mismatch for ${what}: got ${actual}, expected ${expected}; check that this is the intended model`);
  }
}

function downloadOptions(options: ResolveOptions): DownloadOptions {
  return { onProgress: options.onProgress, timeoutMs: options.timeoutMs };
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}
