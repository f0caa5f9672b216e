/**
 * The portable export (`train --portable`) against the default one: trains on clothing7's train/
 * (scored on its test/) at each quality level, writes both exports of the same heads, and prints
 * JSON: file sizes; agreement with onnxruntime's default export (same top-1, max and mean
 * |Δp| over the 174 test photos) of OpenCV 4.6 on the portable graph (Debian's python3-opencv,
 * skipped with the reason when missing) and of onnxruntime on it; onnxruntime ms/image of both
 * graphs at batch 1 and 16, the two measured in turn, medians of ROUNDS rounds.
 *   npm run bench:portable [-- LEVELS [ROUNDS]]     (default auto,fast,balanced and 7)
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClassifier, type Classifier } from '../src/export/classifier.js';
import { MODEL_FILE } from '../src/export/metadata.js';
import type { RgbImage } from '../src/image/types.js';
import { train } from '../src/pipeline/train.js';
import type { QualityChoice } from '../src/pipeline/quality.js';
import { packagePath } from '../src/util/paths.js';
import { agreement, loadImages, opencvMissing, runOpenCv } from '../test/helpers/opencv.js';

const levels = (process.argv[2] ?? 'auto,fast,balanced').split(',') as QualityChoice[];
const rounds = Number(process.argv[3] ?? 7);
const data = packagePath('data', 'clothing7', 'train');
const testDir = packagePath('data', 'clothing7', 'test');
const photos = readdirSync(testDir).sort().flatMap((c) => readdirSync(join(testDir, c)).sort().map((f) => join(testDir, c, f)));
const missing = opencvMissing();

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** ms/image of each classifier on `batch` images, measured in turn within every round (one warm-up run each). */
async function speeds(classifiers: readonly Classifier[], images: readonly RgbImage[], batch: number): Promise<number[]> {
  const input = images.slice(0, batch);
  for (const c of classifiers) await c.run(input);
  const times = classifiers.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of classifiers.entries()) {
      const t = performance.now();
      await c.run(input);
      times[i]!.push((performance.now() - t) / batch);
    }
  }
  return times.map((t) => +median(t).toFixed(2));
}

const dir = await mkdtemp(join(tmpdir(), 'headswap-bench-portable-'));
const results = [];
try {
  const cacheDir = join(dir, 'cache');
  for (const quality of levels) {
    const [fastDir, portableDir] = [join(dir, `${quality}.model`), join(dir, `${quality}-portable.model`)];
    const trained = await train({ data, testDir, cacheDir, quality, out: fastDir, record: false });
    await train({ data, testDir, cacheDir, quality, out: portableDir, portable: true, record: false });
    const [fast, portable] = [await loadClassifier(fastDir), await loadClassifier(portableDir)];
    const images = await loadImages(fast, photos);
    const classes = fast.labels.length;
    const reference = await fast.run(images);
    const onnxruntime = agreement(reference, await portable.run(images), classes);
    const cv = missing ? undefined : await runOpenCv(join(portableDir, MODEL_FILE), images, 16);
    const [b1, b16] = [await speeds([fast, portable], images, 1), await speeds([fast, portable], images, 16)];
    await fast.release();
    await portable.release();
    results.push({
      quality,
      backbones: (trained.members ?? [trained]).map((m) => m.backbone.id),
      top1OnTest: +trained.evaluation.top1.toFixed(4),
      bytes: { default: (await stat(join(fastDir, MODEL_FILE))).size, portable: (await stat(join(portableDir, MODEL_FILE))).size },
      opencv: cv ? { version: cv.version, ...agreement(reference, cv.probabilities, classes), msPerImageBatch16: +cv.msPerImage.toFixed(1) } : { skipped: missing },
      onnxruntimeOnPortable: onnxruntime,
      onnxruntimeMsPerImage: { batch1: { default: b1[0], portable: b1[1] }, batch16: { default: b16[0], portable: b16[1] } },
    });
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(JSON.stringify({ machine: { cores: availableParallelism(), node: process.version }, photos: photos.length, rounds, levels: results }, null, 2));
