/**
 * The portable export (`train --portable`) in a runtime independent of onnxruntime: OpenCV 4.6's
 * DNN module (Debian: apt-get install -y python3-opencv), on clothing7's 174 test photos after
 * training on its train/ folder, at the default quality (`auto`: the two bundled networks) and at
 * the mirror-averaging level (`fast`, on MobileNetV2 alone, whose int8 graph carries onnxruntime's
 * own operators, to halve the time). Skipped with the reason when OpenCV is not installed;
 * `npm run bench:portable` prints the same figures for the ensemble at each level, with sizes and speeds.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadClassifier } from '../../src/export/classifier.js';
import { MODEL_FILE } from '../../src/export/metadata.js';
import type { RgbImage } from '../../src/image/types.js';
import { train } from '../../src/pipeline/train.js';
import type { QualityChoice } from '../../src/pipeline/quality.js';
import { packagePath } from '../../src/util/paths.js';
import { agreement, loadImages, opencvMissing, runOpenCv } from '../helpers/opencv.js';

const missing = opencvMissing();
const DATA = packagePath('data', 'clothing7', 'train');
const TEST = packagePath('data', 'clothing7', 'test');
const PHOTOS = readdirSync(TEST).sort().flatMap((c) => readdirSync(join(TEST, c)).sort().map((f) => join(TEST, c, f)));
const LEVELS: readonly QualityChoice[] = ['auto', 'fast'];
/** The backbones of each level's run: the default pair, and the int8 network alone for the mirror. */
const BASES: Readonly<Record<string, string | undefined>> = { auto: undefined, fast: 'mobilenet_v2' };

describe('the portable export in OpenCV 4.6', { skip: missing }, () => {
  let dir: string;
  /** Per level: the default and the portable model folder of one training (same seed, same heads). */
  const folders = new Map<QualityChoice, { fast: string; portable: string }>();
  let images: RgbImage[];
  /** onnxruntime's probabilities from the default export, per level. */
  const reference = new Map<QualityChoice, Float32Array>();
  let classes: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'headswap-opencv-'));
    const cacheDir = join(dir, 'cache');
    for (const quality of LEVELS) {
      const f = { fast: join(dir, `${quality}.model`), portable: join(dir, `${quality}-portable.model`) };
      // The second run of a level reads every feature from the cache: only its head and export run.
      const base = BASES[quality];
      await train({ data: DATA, testDir: TEST, cacheDir, quality, base, out: f.fast, record: false });
      await train({ data: DATA, testDir: TEST, cacheDir, quality, base, out: f.portable, portable: true, record: false });
      folders.set(quality, f);
      const c = await loadClassifier(f.fast);
      images ??= await loadImages(c, PHOTOS);
      classes = c.labels.length;
      reference.set(quality, await c.run(images));
      await c.release();
    }
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('loads each level and gives onnxruntime\'s top-1 on at least 95% of the test photos', { timeout: 300_000 }, async (t) => {
    // Both levels side by side: each OpenCV process is mostly one core.
    const runs = await Promise.all(LEVELS.map((q) => runOpenCv(join(folders.get(q)!.portable, MODEL_FILE), images, 16)));
    LEVELS.forEach((q, i) => {
      const a = agreement(reference.get(q)!, runs[i]!.probabilities, classes);
      t.diagnostic(`${q}: OpenCV ${runs[i]!.version} against onnxruntime's default export: ${JSON.stringify(a)}`);
      assert.equal(a.images, PHOTOS.length);
      assert.ok(a.top1 >= 0.95, `${q}: the same top-1 on ${(100 * a.top1).toFixed(1)}% of the photos`);
      assert.ok(a.maxAbsDiff < 0.5, `${q}: max |diff| ${a.maxAbsDiff}`);
    });
  });

  it('headswap.json says which graph was written', async () => {
    const graphOf = async (folder: string): Promise<unknown> => (JSON.parse(await readFile(join(folder, 'headswap.json'), 'utf8')) as { graph?: unknown }).graph;
    assert.deepEqual(await graphOf(folders.get('auto')!.portable), { portable: true });
    assert.deepEqual(await graphOf(folders.get('auto')!.fast), { portable: false });
  });

  it('the default export is what OpenCV refuses (so --portable is needed)', { timeout: 120_000 }, async () => {
    await assert.rejects(runOpenCv(join(folders.get('auto')!.fast, MODEL_FILE), images.slice(0, 1)), /OpenCV failed/);
  });
});
