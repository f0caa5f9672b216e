import { readFile } from 'node:fs/promises';
import type { Backbone } from '../backbone/backbone.js';
import { HeadswapError, describeError } from '../errors.js';
import { loadRgb, resizedPixels, type LoadOptions } from '../image/preprocess.js';
import type { Preprocessing, RgbImage } from '../image/types.js';
import { sha256 } from '../util/fs.js';
import { roundToHalf } from '../util/half.js';
import { progressTracker, type ProgressCallback } from '../util/progress.js';
import { loadAugmented, type AugmentSpec } from '../image/augment.js';
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
  /**
   * The backbone's vector rounded to float16 precision (roundToHalf; values float16 cannot hold
   * stay as computed), so a vector read back from the cache has the very bits of a fresh one.
   */
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

/**
 * One way of turning a photo into the backbone's input pixels. `id` is the feature cache's
 * variant: together with the image bytes it must fully determine the pixels.
 */
export interface View {
  readonly id: string;
  render(input: { readonly name: string; readonly data: Uint8Array; readonly hash: string }, pre: Preprocessing, options: LoadOptions): Promise<RgbImage>;
}

/** The photo as the backbone's own preprocessing sees it (cache variant ''). */
export const PLAIN_VIEW: View = { id: '', render: (input, pre, options) => loadRgb(input, pre, options) };

export interface ViewFeature extends ExtractedFeature {
  /** The view's id (the cache variant). */
  readonly variant: string;
}

export interface ViewsResult extends Omit<ExtractResult, 'features'> {
  /** One entry per readable (path, view), path-major: every view of paths[0], then of paths[1], ... */
  readonly features: ViewFeature[];
}

interface Job {
  readonly path: string;
  readonly view: View;
}

/**
 * Feature vectors of every view of every path, each through the backbone once and cached under
 * (backbone, image sha256, view id). Files are read, hashed and looked up in the cache batch by
 * batch; only misses are decoded, and each batch is written to the cache at once so an
 * interrupted run resumes where it stopped. Decoding of the next batch overlaps the backbone's
 * run. A file that cannot be read or decoded for one view is skipped for all of them, so every
 * kept path has the full set.
 */
export async function extractViews(
  backbone: Backbone,
  paths: readonly string[],
  views: readonly View[],
  options: ExtractOptions & { readonly step?: string } = {},
): Promise<ViewsResult> {
  return (await extractViewsOf([backbone], paths, views, options))[0]!;
}

/**
 * extractViews for several backbones at once (an ensemble), one result per backbone: each file is
 * read and hashed once, each view decoded once for all the backbones that take the same pixels
 * and miss it in the cache, and a file one backbone cannot use is skipped for all of them.
 */
export async function extractViewsOf(
  backbones: readonly Backbone[],
  paths: readonly string[],
  views: readonly View[],
  options: ExtractOptions & { readonly step?: string } = {},
): Promise<ViewsResult[]> {
  const start = performance.now();
  if (new Set(views.map((v) => v.id)).size !== views.length) throw new HeadswapError('views must have distinct ids');
  const batchSize = Math.max(1, options.batchSize ?? 16);
  const members = backbones.map((backbone) => ({ backbone, fingerprint: backbone.fingerprint, pixels: resizedPixels(backbone.preprocessing), found: new Map<string, ViewFeature>(), cached: 0, computed: 0 }));
  type Member = (typeof members)[number];
  const key = (path: string, variant: string): string => `${variant}\n${path}`;
  const skipped = new Map<string, string>();
  const jobs: Job[] = paths.flatMap((path) => views.map((view) => ({ path, view })));
  const report = progressTracker(options.step ?? 'features', jobs.length, options.onProgress);
  // Readable names for `headswap cache`.
  if (options.cache && jobs.length > 0) for (const m of members) options.cache.nameBackbone(m.fingerprint, m.backbone.id, m.backbone.source.origin);

  /** Per backbone, the decoded images of the chunk's cache misses. */
  const prepare = async (chunk: readonly Job[]): Promise<Map<Member, { job: Job; hash: string; image: RgbImage }[]>> => {
    const files = new Map<string, Promise<{ bytes: Buffer; hash: string } | undefined>>();
    for (const { path } of chunk) {
      if (files.has(path) || skipped.has(path)) continue;
      files.set(
        path,
        readFile(path).then(
          (bytes) => ({ bytes, hash: sha256(bytes) }),
          (err: unknown) => {
            skipped.set(path, `cannot read (${describeError(err)})`);
            return undefined;
          },
        ),
      );
    }
    const read = new Map<string, { bytes: Buffer; hash: string }>();
    for (const [path, p] of files) {
      const f = await p;
      if (f) read.set(path, f);
    }
    // One cache lookup per backbone and view present in the chunk.
    const hits = new Map<Member, Map<string, Float32Array>>(members.map((m) => [m, new Map()]));
    if (options.cache) {
      for (const view of new Set(chunk.map((j) => j.view))) {
        const hashes = chunk.filter((j) => j.view === view && read.has(j.path)).map((j) => read.get(j.path)!.hash);
        // Rounded too: a float32 row cached before vectors were rounded then reads as a fresh one would (float16 rows are unchanged).
        for (const m of members) for (const [hash, v] of options.cache.getMany(m.fingerprint, hashes, view.id)) hits.get(m)!.set(key(hash, view.id), roundToHalf(v, v));
      }
    }
    const decodedJobs = await Promise.all(
      chunk.map(async (job) => {
        const images = new Map<Member, { job: Job; hash: string; image: RgbImage }>();
        const f = read.get(job.path);
        if (!f) return images;
        const missing: Member[] = [];
        for (const m of members) {
          const hit = hits.get(m)!.get(key(f.hash, job.view.id));
          if (!hit) missing.push(m);
          else {
            m.found.set(key(job.path, job.view.id), { path: job.path, hash: f.hash, variant: job.view.id, vector: hit });
            m.cached++;
          }
        }
        const decoded = new Map<string, RgbImage>();
        for (const m of missing) {
          try {
            let image = decoded.get(m.pixels);
            if (!image) decoded.set(m.pixels, (image = await job.view.render({ name: job.path, data: f.bytes, hash: f.hash }, m.backbone.preprocessing, options)));
            images.set(m, { job, hash: f.hash, image });
          } catch (err) {
            if (!(err instanceof HeadswapError)) throw err;
            skipped.set(job.path, err.message.startsWith(job.path) ? err.message.slice(job.path.length + 2) : err.message);
            return new Map<Member, { job: Job; hash: string; image: RgbImage }>();
          }
        }
        return images;
      }),
    );
    // In chunk order, whatever order the decodes finished in.
    return new Map(members.map((m) => [m, decodedJobs.flatMap((d) => d.get(m) ?? [])]));
  };

  const chunks: Job[][] = [];
  for (let i = 0; i < jobs.length; i += batchSize) chunks.push(jobs.slice(i, i + batchSize));
  let next = chunks.length > 0 ? prepare(chunks[0]!) : undefined;
  let done = 0;
  for (let i = 0; i < chunks.length; i++) {
    const pending = await next!;
    next = i + 1 < chunks.length ? prepare(chunks[i + 1]!) : undefined;
    try {
      for (const m of members) {
        const batch = pending.get(m)!;
        if (batch.length === 0) continue;
        const { data, dims } = await m.backbone.features(batch.map((p) => p.image));
        // Rounded to float16 before anyone sees it: the cache stores these exactly, in half the bytes.
        const rows = batch.map((p, j) => ({ path: p.job.path, hash: p.hash, variant: p.job.view.id, vector: roundToHalf(data.subarray(j * dims, (j + 1) * dims)) }));
        options.cache?.putMany(rows.map((r) => ({ key: { backbone: m.fingerprint, image: r.hash, variant: r.variant }, vector: r.vector })));
        for (const r of rows) m.found.set(key(r.path, r.variant), r);
        m.computed += rows.length;
      }
    } catch (err) {
      // Settle the read-ahead before the caller closes the cache it reads, or its rejection crashes the process.
      await next?.catch(() => undefined);
      throw err;
    }
    done += chunks[i]!.length;
    report(done);
  }
  const kept = paths.filter((p) => !skipped.has(p));
  const skips = [...skipped].map(([path, reason]) => ({ path, reason }));
  const millis = performance.now() - start;
  return members.map((m) => ({ features: kept.flatMap((p) => views.flatMap((v) => m.found.get(key(p, v.id)) ?? [])), skipped: skips, cached: m.cached, computed: m.computed, millis }));
}

/** Feature vectors for a list of image files, in the same order (skipped files left out): extractViews with the plain view. */
export async function extractFeatures(backbone: Backbone, paths: readonly string[], options: ExtractOptions = {}): Promise<ExtractResult> {
  const result = await extractViews(backbone, paths, [PLAIN_VIEW], options);
  return { ...result, features: result.features.map(({ path, hash, vector }) => ({ path, hash, vector })) };
}

/** An augmentation spec as a view extractViews can run and cache. */
export function augmentView(spec: AugmentSpec): View {
  return { id: spec.id, render: (input, pre, options) => loadAugmented(input, pre, spec, options) };
}

/**
 * Feature vectors of augmented views: every spec applied to every path, each view through the
 * backbone once and cached under (backbone, image sha256, spec.id), so a second run, or a head
 * retrained with other settings, reads them back instead of running the backbone again.
 * Features are path-major (every spec of paths[0], then of paths[1], ...), with `variant` = spec.id.
 */
export async function extractAugmented(backbone: Backbone, paths: readonly string[], specs: readonly AugmentSpec[], options: ExtractOptions = {}): Promise<ViewsResult> {
  return extractViews(backbone, paths, specs.map(augmentView), { ...options, step: 'augment' });
}
