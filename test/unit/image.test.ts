import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { after, describe, it } from 'node:test';
import sharp from 'sharp';
import { IMAGENET_CROP_224 } from '../../src/backbone/zoo.js';
import { flagOf } from '../../src/cli/flags.js';
import { HeadswapError } from '../../src/errors.js';
import { checkImage, decodePixels, loadRgb, packBatch } from '../../src/image/preprocess.js';
import { flattenOnWhite, modelInput, placement, resizeRgb } from '../../src/image/resize.js';
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

  it('reads a JPEG missing only its end marker, and still refuses one cut inside its scans', async () => {
    const jpeg = await sharp(SHOE_1).jpeg({ quality: 90 }).toBuffer();
    const whole = await loadRgb({ name: 'whole.jpg', data: jpeg }, IMAGENET_CROP_224);
    const noEnd = await loadRgb({ name: 'no-end.jpg', data: jpeg.subarray(0, jpeg.length - 2) }, IMAGENET_CROP_224);
    assert.deepEqual(noEnd.data, whole.data);
    await assert.rejects(loadRgb({ name: 'cut.jpg', data: jpeg.subarray(0, Math.floor(jpeg.length * 0.9)) }, IMAGENET_CROP_224), /^HeadswapError: cut\.jpg: cannot decode image/);
  });

  it('refuses by pixel count from the header, and the limit is adjustable, named as the caller sets it', async () => {
    const err = await loadRgb(SHOE_1, IMAGENET_CROP_224, { pixelLimit: 1000 }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof HeadswapError);
    assert.match(err.message, /120x160 pixels is over the limit of 1000 pixels; downscale it or raise pixelLimit$/);
    assert.match(err.spell(flagOf), /raise --pixel-limit$/);
  });

  it('packs images into one NHWC batch', async () => {
    const a = await loadRgb(SHOE_1, IMAGENET_CROP_224);
    const b = await loadRgb(SHOE_1, IMAGENET_CROP_224, { flip: true });
    const batch = packBatch([a, b]);
    assert.equal(batch.length, 2 * a.data.length);
    assert.deepEqual(batch.subarray(a.data.length), b.data);
  });
});

/**
 * An independent reading of the filter in float arithmetic: Lanczos-3 (sinc(x)·sinc(x/3), half-width
 * 3·max(1, scale) around each output centre), weights normalized, no fixed point, each pass clamped
 * to 0-255 but not rounded.
 */
function referenceResize(src: Uint8Array, w: number, h: number, ow: number, oh: number): Float64Array {
  const sinc = (x: number): number => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
  const weights = (n: number, m: number): { lo: number; w: number[] }[] =>
    Array.from({ length: m }, (_, i) => {
      const scale = n / m;
      const fs = Math.max(1, scale);
      const center = (i + 0.5) * scale;
      const taps: number[] = [];
      const lo = Math.max(0, Math.floor(center - 3 * fs + 0.5));
      for (let j = lo; j < Math.min(n, Math.floor(center + 3 * fs + 0.5)); j++) {
        const x = Math.abs((j + 0.5 - center) / fs);
        taps.push(x < 3 ? sinc(x) * sinc(x / 3) : 0);
      }
      const total = taps.reduce((a, b) => a + b, 0);
      return { lo, w: taps.map((t) => t / total) };
    });
  const clamp = (v: number): number => Math.min(255, Math.max(0, v));
  const wx = weights(w, ow);
  const wy = weights(h, oh);
  const tmp = new Float64Array(h * ow * 3);
  for (let y = 0; y < h; y++) for (let i = 0; i < ow; i++) for (let c = 0; c < 3; c++) tmp[(y * ow + i) * 3 + c] = clamp(wx[i]!.w.reduce((s, k, t) => s + k * src[(y * w + wx[i]!.lo + t) * 3 + c]!, 0));
  const out = new Float64Array(oh * ow * 3);
  for (let j = 0; j < oh; j++) for (let i = 0; i < ow * 3; i++) out[j * ow * 3 + i] = clamp(wy[j]!.w.reduce((s, k, t) => s + k * tmp[(wy[j]!.lo + t) * ow * 3 + i]!, 0));
  return out;
}

describe('the shared resize (src/image/resize.ts)', () => {
  let photo: { width: number; height: number; rgb: Uint8Array };
  it('decodes a real photo at its own size', async () => {
    const decoded = await decodePixels(await checkImage(SHOE_1));
    assert.deepEqual([decoded.width, decoded.height, decoded.channels], [120, 160, 3]);
    photo = { width: decoded.width, height: decoded.height, rgb: flattenOnWhite(decoded) };
  });

  it('is the identity at the same size', () => {
    assert.deepEqual(resizeRgb(photo.rgb, photo.width, photo.height, photo.width, photo.height), photo.rgb);
  });

  it('keeps a flat colour exactly, shrinking or enlarging', () => {
    const flat = new Uint8Array(37 * 23 * 3).map((_, i) => [201, 7, 130][i % 3]!);
    for (const [ow, oh] of [[5, 3], [224, 301], [37, 1], [100, 23]] as const) {
      const out = resizeRgb(flat, 37, 23, ow, oh);
      assert.ok(out.every((v, i) => v === [201, 7, 130][i % 3]), `${ow}x${oh}`);
    }
  });

  it('is the float filter to within rounding, on a real photo and on noise, both directions', () => {
    let seed = 7;
    const noise = new Uint8Array(97 * 61 * 3).map(() => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
    const cases = [
      { src: photo.rgb, w: 120, h: 160, ow: 256, oh: 341 },
      { src: photo.rgb, w: 120, h: 160, ow: 41, oh: 29 },
      { src: noise, w: 97, h: 61, ow: 13, oh: 200 },
    ];
    for (const { src, w, h, ow, oh } of cases) {
      const out = resizeRgb(src, w, h, ow, oh);
      const ref = referenceResize(src, w, h, ow, oh);
      // Two roundings (after each pass) and 22-bit weights: at most 1 level from the exact value, apart from the double rounding.
      const worst = out.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i]!)), 0);
      assert.ok(worst <= 1.5, `${w}x${h} -> ${ow}x${oh}: ${worst}`);
    }
  });

  it('averages when it shrinks (antialiased), where point sampling would miss thin lines', () => {
    // One white column in four: shrunk 4x, every output is about a quarter white.
    const w = 64;
    const h = 8;
    const lines = new Uint8Array(w * h * 3).map((_, i) => (Math.floor(i / 3) % w) % 4 === 0 ? 255 : 0);
    const out = resizeRgb(lines, w, h, w / 4, h);
    // Away from the left and right edges, where the filter (3 outputs to each side) is cut off.
    const column = (i: number): number => Math.floor(i / 3) % (w / 4);
    const inner = Array.from(out).filter((_, i) => column(i) >= 3 && column(i) < w / 4 - 3);
    assert.equal(inner.length, h * (w / 4 - 6) * 3);
    assert.ok(inner.every((v) => Math.abs(v - 255 / 4) <= 1), `${inner.filter((v) => Math.abs(v - 255 / 4) > 1).slice(0, 6)}`);
  });

  it('computes only the crop window, with the same bytes as resizing the whole photo and cutting', () => {
    const place = placement(120, 160, IMAGENET_CROP_224);
    assert.deepEqual(place.resized, [256, 341]);
    const { left, top, width, height } = place.window;
    const whole = resizeRgb(photo.rgb, 120, 160, 256, 341);
    const cut = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) cut.set(whole.subarray(((top + y) * 256 + left) * 3, ((top + y) * 256 + left + width) * 3), y * width * 3);
    assert.deepEqual(resizeRgb(photo.rgb, 120, 160, 256, 341, place.window), cut);
    assert.deepEqual(modelInput({ width: 120, height: 160, channels: 3, data: photo.rgb }, IMAGENET_CROP_224), cut);
  });

  it('letterboxes (pad) on black and squashes to the exact size', () => {
    const pad = modelInput({ width: 120, height: 160, channels: 3, data: photo.rgb }, { ...IMAGENET_CROP_224, resize: 'pad' });
    const place = placement(120, 160, { ...IMAGENET_CROP_224, resize: 'pad' });
    assert.deepEqual(place.resized, [168, 224]);
    assert.deepEqual(place.offset, [28, 0]);
    for (const x of [0, 27, 196, 223]) assert.deepEqual([...pad.subarray((100 * 224 + x) * 3, (100 * 224 + x) * 3 + 3)], [0, 0, 0], `column ${x}`);
    assert.ok(pad.subarray((100 * 224 + 28) * 3, (100 * 224 + 196) * 3).some((v) => v > 0), 'the photo between the bars');
    const squash = modelInput({ width: 120, height: 160, channels: 3, data: photo.rgb }, { ...IMAGENET_CROP_224, resize: 'squash' });
    assert.deepEqual(squash, resizeRgb(photo.rgb, 120, 160, 224, 224));
  });

  it('flattens transparency onto white as round(c * a / 255) + 255 - a', () => {
    const rgba = Uint8Array.from([10, 20, 30, 0, 10, 20, 30, 255, 0, 255, 100, 128, 200, 1, 77, 51]);
    const rgb = flattenOnWhite({ width: 4, height: 1, channels: 4, data: rgba });
    for (let p = 0; p < 4; p++) {
      const a = rgba[p * 4 + 3]!;
      for (let c = 0; c < 3; c++) assert.equal(rgb[p * 3 + c], Math.round((rgba[p * 4 + c]! * a) / 255) + 255 - a, `pixel ${p} channel ${c}`);
    }
    assert.deepEqual([...rgb.subarray(0, 6)], [255, 255, 255, 10, 20, 30]);
  });

  it('is what loadRgb gives, from the decoded photo; flip mirrors it', async () => {
    const decoded = { width: 120, height: 160, channels: 3 as const, data: photo.rgb };
    assert.deepEqual((await loadRgb(SHOE_1, IMAGENET_CROP_224)).data, modelInput(decoded, IMAGENET_CROP_224));
    assert.deepEqual((await loadRgb(SHOE_1, IMAGENET_CROP_224, { flip: true })).data, modelInput(decoded, IMAGENET_CROP_224, true));
  });

  it('stays close to libvips\' own Lanczos-3 resize on a real photo (the same picture, another implementation)', async () => {
    const vips = await sharp(Buffer.from(photo.rgb), { raw: { width: 120, height: 160, channels: 3 } }).resize(60, 80, { kernel: 'lanczos3' }).raw().toBuffer();
    const mine = resizeRgb(photo.rgb, 120, 160, 60, 80);
    assert.ok(meanAbsDiff(mine, new Uint8Array(vips)) < 3, `mean difference ${meanAbsDiff(mine, new Uint8Array(vips))}`);
  });
});
