import { createHash } from 'node:crypto';
import { createWriteStream, type Stats } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import envPaths from 'env-paths';

import { HeadswapError, describeError } from '../errors.js';
import { processAlive, sha256, sha256File, tempSibling } from '../util/fs.js';
import { packagePath } from '../util/paths.js';
import { importTfjs } from '../import/import-tfjs.js';
import type { ZooEntry } from './types.js';
import { findEntry, getEntry } from './zoo.js';

export interface ResolvedSource {
  /** Absolute path of the local ONNX file. */
  path: string;
  sha256: string;
  kind: 'zoo-bundled' | 'zoo-download' | 'file' | 'url' | 'tfjs';
  entry?: ZooEntry;
  /** Zoo id, path or URL as the user gave it. */
  origin: string;
  /** For a TF.js model converted to ONNX: its output tensors and the labels.txt beside it. */
  tfjs?: { outputs: string[]; labels?: string[] };
}

export type ProgressFn = (received: number, total: number | undefined) => void;

export interface DownloadOptions {
  /** Refuse the file unless its sha256 is this (64 hex digits). */
  expectedSha256?: string;
  /** Called per received chunk; `total` is undefined when the server sends no usable Content-Length. */
  onProgress?: ProgressFn;
  /** Give up when the server sends nothing for this long (idle, not total: big models take minutes). */
  timeoutMs?: number;
}

export interface ResolveOptions extends DownloadOptions {
  /** Root of the download cache; models go to `<cacheDir>/models`. Default: `cacheDir()`. */
  cacheDir?: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** `$HEADSWAP_CACHE`, else the platform's user cache dir (e.g. `~/.cache/headswap`). */
export function cacheDir(): string {
  const fromEnv = process.env.HEADSWAP_CACHE;
  if (fromEnv) return resolvePath(fromEnv);
  return envPaths('headswap', { suffix: '' }).cache;
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
  if (/^https?:\/\//i.test(source)) return resolveUrl(source, options);
  if (/^file:\/\//i.test(source)) return resolveFile(fileURLToPath(source), source, expected, options);
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(source)) {
    throw new HeadswapError(`unsupported URL '${source}'; give an http(s) URL, a .onnx file path or a zoo id`);
  }
  return resolveFile(source, source, expected, options);
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
    return { path, sha256: actual, kind: 'zoo-bundled', entry, origin: entry.id };
  }
  // An ONNX download is only ever trusted by its pinned hash.
  if (!entry.sha256) throw new HeadswapError(`zoo entry ${entry.id} has no sha256 for its ONNX file; pin one`);
  const expected = normalizeSha(entry.sha256) as string;
  // Named by content and only ever renamed into place after verification, so an existing file is trusted.
  const path = join(options.cacheDir ?? cacheDir(), 'models', `${expected}.onnx`);
  if (!(await isFile(path))) {
    await download(entry.url, path, { ...downloadOptions(options), expectedSha256: expected });
  }
  return { path, sha256: expected, kind: 'zoo-download', entry, origin: entry.id };
}

async function resolveUrl(url: string, options: ResolveOptions): Promise<ResolvedSource> {
  const expected = normalizeSha(options.expectedSha256);
  const path = join(options.cacheDir ?? cacheDir(), 'models', `url-${sha256(url)}.onnx`);
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
  const imported = await importTfjs(source, { cacheDir: options.cacheDir ?? cacheDir() });
  return {
    path: imported.onnxPath,
    sha256: imported.sha256,
    kind: 'tfjs',
    origin: source,
    tfjs: { outputs: imported.outputs, ...(imported.labels ? { labels: imported.labels } : {}) },
  };
}

async function resolveFile(given: string, origin: string, expected: string | undefined, options: ResolveOptions = {}): Promise<ResolvedSource> {
  const path = resolvePath(given);
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
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
  if (!/\.onnx$/i.test(path)) {
    throw new HeadswapError(`${path} is not an .onnx file; headswap runs ONNX models: export or convert the model to ONNX (e.g. torch.onnx.export, tf2onnx)`);
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

/**
 * Downloads `url` to `dest` and returns its sha256. The body streams into a unique temp file next to
 * `dest` and is renamed into place only when complete and verified, so readers (and other processes
 * downloading the same file) never see a partial file. Every failure is one HeadswapError line.
 */
export async function download(url: string, dest: string, options: DownloadOptions = {}): Promise<string> {
  const expected = normalizeSha(options.expectedSha256);
  const dir = dirname(dest);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw cacheWriteError(dir, err);
  }
  await sweepStaleTemps(dir);
  const tmp = tempSibling(dest);
  try {
    const actual = await fetchToFile(url, tmp, options);
    if (expected && actual !== expected) {
      throw new HeadswapError(`sha256 mismatch for ${url}: got ${actual}, expected ${expected}; the file on the server changed or is corrupt`);
    }
    await rename(tmp, dest);
    return actual;
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof HeadswapError) throw err;
    throw isFsError(err) ? cacheWriteError(dir, err) : new HeadswapError(`download of ${url} failed: ${describeError(err)}; retry`, { cause: err });
  }
}

/** Streams the response body into `tmp`, hashing on the way; returns the sha256. */
async function fetchToFile(url: string, tmp: string, options: DownloadOptions): Promise<string> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const controller = new AbortController();
  // An idle timer, refreshed per chunk: AbortSignal.timeout would also kill slow-but-alive downloads.
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let received = 0;
  let total: number | undefined;
  const stalled = () =>
    new HeadswapError(`download of ${url} timed out: no data for ${timeoutMs / 1000} s after ${received} bytes; check your connection and retry`);
  try {
    let res: Response;
    try {
      res = await fetch(url, { signal: controller.signal, redirect: 'follow' });
    } catch (err) {
      if (controller.signal.aborted) throw stalled();
      throw new HeadswapError(`cannot reach ${url}: ${networkReason(err)}; check the URL and your network connection, or download the file yourself and give its path`, { cause: err });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new HeadswapError(`download of ${url} failed: HTTP ${res.status} ${res.statusText}; ${httpFix(res.status)}`);
    }
    if (!res.body) throw new HeadswapError(`download of ${url} failed: the server sent no body; check the URL`);
    // fetch decompresses, so a Content-Length of an encoded body says nothing about the bytes we see.
    const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
    const length = Number(res.headers.get('content-length') ?? NaN);
    total = !encoded && Number.isSafeInteger(length) ? length : undefined;
    const hash = createHash('sha256');
    try {
      await pipeline(
        Readable.fromWeb(res.body as NodeReadableStream<Uint8Array>),
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            timer.refresh();
            hash.update(chunk);
            received += chunk.length;
            options.onProgress?.(received, total);
            yield chunk;
          }
        },
        createWriteStream(tmp, { flags: 'wx' }),
      );
    } catch (err) {
      if (isFsError(err)) throw err;
      if (controller.signal.aborted) throw stalled();
      throw new HeadswapError(`download of ${url} was cut off after ${received} of ${total ?? 'unknown'} bytes (${networkReason(err)}); retry`, { cause: err });
    }
    if (total !== undefined && received !== total) {
      throw new HeadswapError(`download of ${url} was cut off after ${received} of ${total} bytes; retry`);
    }
    return hash.digest('hex');
  } finally {
    clearTimeout(timer);
  }
}

function httpFix(status: number): string {
  if (status === 401 || status === 403) return 'the file is not public or the URL is wrong; check the URL';
  if (status === 404 || status === 410) return 'check the URL (the file may have moved)';
  if (status === 429 || status >= 500) return 'the server is failing or busy; retry later';
  return 'check the URL';
}

/** undici hides the useful part ("connect ECONNREFUSED 127.0.0.1:1") in `cause`. */
function networkReason(err: unknown): string {
  let reason = describeError(err);
  for (let e: unknown = err; e instanceof Error; e = e.cause) reason = describeError(e);
  return reason;
}

function isFsError(err: unknown): boolean {
  return typeof (err as NodeJS.ErrnoException | undefined)?.path === 'string';
}

function cacheWriteError(dir: string, err: unknown): HeadswapError {
  return new HeadswapError(`cannot write the model cache ${dir}: ${describeError(err)}; free disk space or set HEADSWAP_CACHE to a writable directory`, { cause: err });
}

/**
 * Deletes temp files left by downloads whose process died (Ctrl-C or kill skip our cleanup).
 * Relies on tempSibling's `.<name>.tmp-<pid>-<hex>` naming; live processes' temps are left alone.
 */
async function sweepStaleTemps(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(
    names.map(async (name) => {
      const pid = /^\..+\.tmp-(\d+)-[0-9a-f]+$/.exec(name)?.[1];
      if (pid !== undefined && !processAlive(Number(pid))) await rm(join(dir, name), { force: true });
    }),
  );
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

function normalizeSha(sha: string | undefined): string | undefined {
  if (sha === undefined) return undefined;
  const lower = sha.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(lower)) throw new HeadswapError(`expected sha256 '${sha}' is not 64 hex digits; give the full sha256 of the model file`);
  return lower;
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
