import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import envPaths from 'env-paths';
import { HeadswapError, describeError } from '../errors.js';
import { processAlive, tempSibling } from '../util/fs.js';

/**
 * headswap's cache folder and what lives in it, and the one way files get downloaded into it:
 * streamed to a temp file, checked, renamed into place.
 */

export type ProgressFn = (received: number, total: number | undefined) => void;

export interface DownloadOptions {
  /** Refuse the file unless its sha256 is this (64 hex digits). */
  expectedSha256?: string;
  /** Called per received chunk; `total` is undefined when the server sends no usable Content-Length. */
  onProgress?: ProgressFn;
  /** Give up when the server sends nothing for this long (idle, not total: big models take minutes). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** `$HEADSWAP_CACHE`, else the platform's user cache dir (e.g. `~/.cache/headswap`). */
export function cacheDir(): string {
  const fromEnv = process.env.HEADSWAP_CACHE;
  if (fromEnv) return resolvePath(fromEnv);
  return envPaths('headswap', { suffix: '' }).cache;
}

/**
 * `$HEADSWAP_CACHE_MAX_MB`: the size in MB (10^6 bytes) of the cache's SQLite file past which
 * headswap warns (features/cache.ts `cacheSizeWarning`); undefined when unset.
 */
export function cacheMaxMb(): number | undefined {
  const raw = process.env.HEADSWAP_CACHE_MAX_MB;
  if (raw === undefined || raw.trim() === '') return undefined;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb < 0) {
    throw new HeadswapError(`HEADSWAP_CACHE_MAX_MB='${raw}' is not a size in MB; set it to a number such as 500, or unset it`);
  }
  return mb;
}

/** The SQLite file of cached features and the run history, inside the cache folder `root`. */
export function databasePath(root: string = cacheDir()): string {
  return join(root, 'headswap.sqlite');
}

/** Where downloaded and converted models are kept, inside the cache folder `root`. */
export function modelsDir(root: string = cacheDir()): string {
  return join(root, 'models');
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


export function normalizeSha(sha: string | undefined): string | undefined {
  if (sha === undefined) return undefined;
  const lower = sha.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(lower)) throw new HeadswapError(`expected sha256 '${sha}' is not 64 hex digits; give the full sha256 of the model file`);
  return lower;
}

