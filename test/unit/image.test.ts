import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { after, describe, it } from 'node:test';
import sharp from 'sharp';
import { IMAGENET_CROP_224 } from '../../src/backbone/zoo.js';
import { HeadswapError } from '../../src/errors.js';
import { loadRgb, packBatch } from '../../src/image/preprocess.js';
import type { Preprocessing } from '../../src/image/types.js';
import { SHOE_1, writeBrokenFiles } from '../helpers/images.js';

const dir = mkdtempSync(`${tmpdir()}/headswap-image-`);
after(() => rm(dir, { recursive: true, force: true }));

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

describe('loadRgb', () => {
  it('resizes a real photo to the backbone size as 8-bit RGB', async () => {
    const img = await loadRgb(SHOE_1, IMAGENET_CROP_224);
    assert.equal(img.width, 224);
    assert.equal(img.height, 224);
    assert.equal(img.data.length, 224 * 224 * 3);
    const distinct = new Set(img.data);
    assert.ok(distinct.size > 50, 'a photo, not a flat fill');
  });

  it('reads every common format to nearly the same pixels', async () => {
    const reference = await loadRgb(SHOE_1, IMAGENET_CROP_224);
    const src = sharp(SHOE_1);
    const variants: Record<string, Buffer> = {
      png: await src.clone().png().toBuffer(),
      webp: await src.clone().webp({ quality: 95 }).toBuffer(),
      gif: await src.clone().gif().toBuffer(),
      avif: await src.clone().avif({ quality: 90 }).toBuffer(),
      tiff: await src.clone().tiff().toBuffer(),
    };
    for (const [format, data] of Object.entries(variants)) {
      const img = await loadRgb({ name: `x.${format}`, data }, IMAGENET_CROP_224);
      assert.equal(img.data.length, reference.data.length, format);
      // Lossy re-encoding and GIF's palette change pixels a little, never the picture.
      assert.ok(meanAbsDiff(img.data, reference.data) < 12, `${format} differs by ${meanAbsDiff(img.data, reference.data)}`);
    }
  });

  it('turns grey, alpha, 16-bit and CMYK images into 3-channel RGB', async () => {
    const src = sharp(SHOE_1);
    const cases: Record<string, Buffer> = {
      grey: await src.clone().greyscale().png().toBuffer(),
      greyAlpha: await src.clone().greyscale().ensureAlpha(0.5).png().toBuffer(),
      rgba: await src.clone().ensureAlpha(0.3).png().toBuffer(),
      rgb16: await src.clone().toColourspace('rgb16').png().toBuffer(),
      cmyk: await src.clone().toColourspace('cmyk').jpeg().toBuffer(),
    };
    for (const [kind, data] of Object.entries(cases)) {
      const meta = await sharp(data).metadata();
      const img = await loadRgb({ name: kind, data }, IMAGENET_CROP_224);
      assert.equal(img.data.length, 224 * 224 * 3, `${kind} (${meta.channels} channels, ${meta.depth}, ${meta.space})`);
    }
  });

  it('applies the EXIF orientation before cropping', async () => {
    const upright = await sharp(SHOE_1).rotate(90).jpeg({ quality: 100 }).toBuffer();
    // The same pixels stored sideways with orientation 6 ("rotate 90 clockwise to view").
    const tagged = await sharp(SHOE_1).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    const a = await loadRgb({ name: 'upright', data: upright }, IMAGENET_CROP_224);
    const b = await loadRgb({ name: 'tagged', data: tagged }, IMAGENET_CROP_224);
    const unrotated = await loadRgb({ name: 'plain', data: await sharp(SHOE_1).jpeg({ quality: 100 }).toBuffer() }, IMAGENET_CROP_224);
    assert.ok(meanAbsDiff(a.data, b.data) < 3, `oriented ${meanAbsDiff(a.data, b.data)}`);
    assert.ok(meanAbsDiff(unrotated.data, b.data) > 10, 'orientation changed the picture');
  });

  it('honours each resize policy and flip', async () => {
    const policies: Preprocessing['resize'][] = ['crop', 'squash', 'pad'];
    const out = await Promise.all(policies.map((resize) => loadRgb(SHOE_1, { ...IMAGENET_CROP_224, size: [96, 128], resize })));
    for (const img of out) assert.equal(img.data.length, 96 * 128 * 3);
    assert.ok(meanAbsDiff(out[0]!.data, out[1]!.data) > 5, 'crop and squash differ');
    // A 120x160 photo letterboxed into 128x96 leaves black bars left and right.
    assert.equal(out[2]!.data[0], 0);
    const flipped = await loadRgb(SHOE_1, IMAGENET_CROP_224, { flip: true });
    const plain = await loadRgb(SHOE_1, IMAGENET_CROP_224);
    const row = 100 * 224 * 3;
    assert.deepEqual([...flipped.data.subarray(row, row + 3)], [...plain.data.subarray(row + 223 * 3, row + 224 * 3)]);
  });

  it('rejects broken files with one line naming the file', async () => {
    const broken = await writeBrokenFiles(dir);
    const expected: Record<string, RegExp> = { empty: /empty file/, truncated: /cannot decode/, text: /not a readable image/, bomb: /20000x20000 pixels is over the limit/ };
    for (const [kind, path] of Object.entries(broken)) {
      await assert.rejects(loadRgb(path, IMAGENET_CROP_224), (err: unknown) => {
        assert.ok(err instanceof HeadswapError, kind);
        assert.ok(err.message.startsWith(path), err.message);
        assert.match(err.message, expected[kind]!);
        assert.ok(!err.message.includes('\n'));
        return true;
      });
    }
    await assert.rejects(loadRgb(`${dir}/missing.jpg`, IMAGENET_CROP_224), /missing\.jpg: cannot read/);
  });

  it('refuses by pixel count from the header, and the limit is adjustable', async () => {
    await assert.rejects(loadRgb(SHOE_1, IMAGENET_CROP_224, { pixelLimit: 1000 }), /120x160 pixels is over the limit of 1000/);
  });

  it('packs images into one NHWC batch', async () => {
    const a = await loadRgb(SHOE_1, IMAGENET_CROP_224);
    const b = await loadRgb(SHOE_1, IMAGENET_CROP_224, { flip: true });
    const batch = packBatch([a, b]);
    assert.equal(batch.length, 2 * a.data.length);
    assert.deepEqual(batch.subarray(a.data.length), b.data);
  });
});
