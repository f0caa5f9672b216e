/**
 * Speed of each offline backbone on this machine. Prints JSON:
 * ms/image at batch 1 and 16 (median of repeated runs after warm-up), images/s, the
 * decode+resize cost per image, and end-to-end (decode + preprocess + backbone) images/s over
 * the 324 clothing7 photos.
 *   npm run bench:backbones
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Backbone } from '../src/backbone/backbone.js';
import { ZOO } from '../src/backbone/zoo.js';
import { extractFeatures } from '../src/features/extract.js';
import { loadRgb } from '../src/image/preprocess.js';
import type { RgbImage } from '../src/image/types.js';
import { packagePath } from '../src/util/paths.js';

const ROOT = packagePath('data', 'clothing7');
const files = ['train', 'test'].flatMap((split) =>
  readdirSync(join(ROOT, split)).flatMap((c) => readdirSync(join(ROOT, split, c)).map((f) => join(ROOT, split, c, f))),
);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timeBatches(backbone: Backbone, images: RgbImage[], batch: number, repeats: number): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t = performance.now();
    for (let i = 0; i < images.length; i += batch) await backbone.features(images.slice(i, i + batch));
    times.push((performance.now() - t) / images.length);
  }
  return median(times);
}

const results = [];
for (const entry of ZOO.filter((e) => e.bundled)) {
  const backbone = await Backbone.load(entry.id);
  const sample = files.slice(0, 64);
  const t0 = performance.now();
  const images = await Promise.all(sample.map((f) => loadRgb(f, backbone.preprocessing)));
  const decodeMs = (performance.now() - t0) / sample.length;
  await backbone.features(images.slice(0, 16)); // warm-up: session creation and first-run allocations
  const batch1 = await timeBatches(backbone, images.slice(0, 32), 1, 5);
  const batch16 = await timeBatches(backbone, images, 16, 5);
  const e2e = await extractFeatures(backbone, files, { batchSize: 16 });
  results.push({
    backbone: entry.id,
    msPerImageBatch1: +batch1.toFixed(2),
    msPerImageBatch16: +batch16.toFixed(2),
    imagesPerSecondBatch16: +(1000 / batch16).toFixed(0),
    decodeResizeMsPerImage: +decodeMs.toFixed(2),
    endToEnd: { images: e2e.features.length, seconds: +(e2e.millis / 1000).toFixed(2), imagesPerSecond: +(e2e.features.length / (e2e.millis / 1000)).toFixed(0) },
  });
  await backbone.release();
}
console.log(JSON.stringify({ machine: { cores: (await import('node:os')).availableParallelism(), node: process.version }, results }, null, 2));
