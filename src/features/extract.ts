import { readFile } from 'node:fs/promises';
import type { Backbone } from '../backbone/backbone.js';
import { HeadswapError, describeError } from '../errors.js';
import { loadRgb, type LoadOptions } from '../image/preprocess.js';
import type { RgbImage } from '../image/types.js';
import { sha256 } from '../util/fs.js';
import { progressTracker, type ProgressCallback } from '../util/progress.js';
import type { FeatureCache } from './cache.js';

export interface ExtractOptions extends LoadOptions {
  readonly cache?: FeatureCache;
  /** Images per backbone call; 16 is where onnxruntime's per-image time flattens out on CPU. */
  readonly batchSize?: number;
  readonly onProgress?: ProgressCallback;
}

export interface ExtractedFeature {
  readonly path: string;
  /** sha256 of the file's bytes. */
  readonly hash: string;
  readonly vector: Float32Array;
}

export interface ExtractResult {
  readonly features: ExtractedFeature[];
  readonly skipped: { readonly path: string; readonly reason: string }[];
  /** How many vectors came from the cache and how many from the backbone. */
  readonly cached: number;
  readonly computed: number;
  readonly millis: number;
}

interface Pending {
  readonly path: string;
  readonly hash: string;
  readonly image: RgbImage;
}

/**
 * Feature vectors for a list of image files, in the same order (skipped files left out).
 * Files are read, hashed and looked up in the cache batch by batch; only misses are decoded and
 * sent through the backbone, and each batch is written to the cache at once so an interrupted
 * run resumes where it stopped. Decoding of the next batch overlaps the backbone's run.
 */
export async function extractFeatures(backbone: Backbone, paths: readonly string[], options: ExtractOptions = {}): Promise<ExtractResult> {
  const start = performance.now();
  const batchSize = Math.max(1, options.batchSize ?? 16);
  const fingerprint = backbone.fingerprint;
  const byPath = new Map<string, ExtractedFeature>();
  const skipped: { path: string; reason: string }[] = [];
  let cached = 0;
  let computed = 0;
  const report = progressTracker('features', paths.length, options.onProgress);

  const prepare = async (chunk: readonly string[]): Promise<Pending[]> => {
    const read = await Promise.all(
      chunk.map(async (path) => {
        try {
          return { path, bytes: await readFile(path) };
        } catch (err) {
          skipped.push({ path, reason: `cannot read (${describeError(err)})` });
          return undefined;
        }
      }),
    );
    const files = read.filter((f) => f !== undefined).map((f) => ({ ...f, hash: sha256(f.bytes) }));
    const hits = options.cache?.getMany(fingerprint, files.map((f) => f.hash)) ?? new Map<string, Float32Array>();
    const decoded = await Promise.all(
      files.map(async (f) => {
        const hit = hits.get(f.hash);
        if (hit) {
          byPath.set(f.path, { path: f.path, hash: f.hash, vector: hit });
          cached++;
          return undefined;
        }
        try {
          return { path: f.path, hash: f.hash, image: await loadRgb({ name: f.path, data: f.bytes }, backbone.preprocessing, options) };
        } catch (err) {
          if (!(err instanceof HeadswapError)) throw err;
          skipped.push({ path: f.path, reason: err.message.startsWith(f.path) ? err.message.slice(f.path.length + 2) : err.message });
          return undefined;
        }
      }),
    );
    return decoded.filter((d) => d !== undefined);
  };

  const chunks: string[][] = [];
  for (let i = 0; i < paths.length; i += batchSize) chunks.push(paths.slice(i, i + batchSize));
  let next = chunks.length > 0 ? prepare(chunks[0]!) : undefined;
  let done = 0;
  for (let i = 0; i < chunks.length; i++) {
    const pending = await next!;
    next = i + 1 < chunks.length ? prepare(chunks[i + 1]!) : undefined;
    if (pending.length > 0) {
      const { data, dims } = await backbone.features(pending.map((p) => p.image));
      const rows = pending.map((p, j) => ({ path: p.path, hash: p.hash, vector: data.slice(j * dims, (j + 1) * dims) }));
      options.cache?.putMany(rows.map((r) => ({ key: { backbone: fingerprint, image: r.hash }, vector: r.vector })));
      for (const r of rows) byPath.set(r.path, r);
      computed += rows.length;
    }
    done += chunks[i]!.length;
    report(done);
  }
  const features = paths.flatMap((p) => byPath.get(p) ?? []);
  return { features, skipped, cached, computed, millis: performance.now() - start };
}
