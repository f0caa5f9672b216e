import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { HeadswapError, describeError, describeFsError, msg, option } from '../errors.js';
import { modelInput, type DecodedPixels } from './resize.js';
import { sniffFormat } from './sniff.js';
import type { Preprocessing, RgbImage } from './types.js';

/** Images above this many pixels are refused before decoding (a 20000x20000 "pixel bomb" is 400 MP). */
export const DEFAULT_PIXEL_LIMIT = 100_000_000;

export interface LoadOptions {
  /** Largest width*height accepted; refused from the header alone. */
  readonly pixelLimit?: number;
  /** Mirror left-right after resizing (augmentation / test-time augmentation). */
  readonly flip?: boolean;
}

/** JPEG's end-of-image marker. */
const JPEG_END = Buffer.from([0xff, 0xd9]);

/** Where an image comes from: a path (named in errors) or bytes with a name for errors. */
export type ImageInput = string | { readonly name: string; readonly data: Uint8Array };

function inputName(input: ImageInput): string {
  return typeof input === 'string' ? input : input.name;
}

/** The formats sharp may decode for headswap (its `metadata().format` names; AVIF is 'heif'). */
const DECODABLE = new Set(['jpeg', 'png', 'gif', 'webp', 'tiff', 'heif']);

/** Refuses bytes the decoder must not see: empty, SVG (it can load files and URLs), or no known image format. */
export function assertImageBytes(name: string, source: Uint8Array): void {
  if (source.length === 0) throw new HeadswapError(`${name}: empty file (0 bytes); remove it`);
  const sniffed = sniffFormat(source);
  if (sniffed === 'svg') {
    throw new HeadswapError(`${name}: not a readable image (SVG vector graphics are not read: they can load other files and URLs); convert it to PNG`);
  }
  if (!sniffed) {
    throw new HeadswapError(`${name}: not a readable image (its content is not JPEG, PNG, WebP, GIF, AVIF or TIFF, whatever its name); remove it or convert it to JPEG/PNG`);
  }
}

/**
 * Reads a whole regular file. Opened non-blocking and checked with fstat first, so a FIFO or a
 * device named like an image (e.g. /dev/zero) is refused at once instead of blocking or never ending.
 */
async function readRegularFile(path: string): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new HeadswapError(`${path}: cannot read (${describeFsError(err)}); check the path and its permissions`);
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw new HeadswapError(`${path}: is a folder, not an image file`);
    if (!info.isFile()) throw new HeadswapError(`${path}: not a regular file (a pipe, socket or device); give an image file`);
    return await handle.readFile();
  } catch (err) {
    if (err instanceof HeadswapError) throw err;
    throw new HeadswapError(`${path}: cannot read (${describeFsError(err)}); check the path and its permissions`);
  } finally {
    await handle.close();
  }
}

/** An image whose bytes and header passed every check before decoding: its bytes and its upright size. */
export interface CheckedImage {
  readonly name: string;
  readonly source: Buffer;
  /** Width and height after EXIF orientation. */
  readonly width: number;
  readonly height: number;
  readonly limitInputPixels: number;
}

/**
 * Reads an image and checks it from its first bytes and header alone: a format headswap decodes,
 * and no more pixels than the limit (a 20000x20000 "pixel bomb" is refused before decoding).
 */
export async function checkImage(input: ImageInput, options: Pick<LoadOptions, 'pixelLimit'> = {}): Promise<CheckedImage> {
  const name = inputName(input);
  const limitInputPixels = options.pixelLimit ?? DEFAULT_PIXEL_LIMIT;
  const source = typeof input === 'string' ? await readRegularFile(input) : Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength);
  assertImageBytes(name, source);
  let meta: Metadata;
  try {
    meta = await sharp(source, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new HeadswapError(`${name}: not a readable image (${describeError(err)}); remove it or convert it to JPEG/PNG`);
  }
  if (!DECODABLE.has(meta.format)) {
    throw new HeadswapError(`${name}: not a readable image (${meta.format} content); remove it or convert it to JPEG/PNG`);
  }
  const w0 = meta.width ?? 0;
  const h0 = meta.height ?? 0;
  if (w0 * h0 > limitInputPixels) {
    throw new HeadswapError(msg`${name}: ${w0}x${h0} pixels is over the limit of ${limitInputPixels} pixels; downscale it or raise ${option('pixelLimit')}`);
  }
  // EXIF orientations 5-8 swap width and height.
  const rotated = (meta.orientation ?? 1) >= 5;
  return { name, source, width: rotated ? h0 : w0, height: rotated ? w0 : h0, limitInputPixels };
}

/**
 * Decodes a checked image to 8-bit sRGB of exactly `size` ([height, width]) in one sharp
 * pipeline: EXIF orientation applied, grey/CMYK/16-bit/alpha made 8-bit sRGB (alpha flattened
 * onto white), then `shape` (the caller's crop, resize, flip or colour steps). Only the
 * training-time random crops use it (augment.ts): no other runtime has to reproduce their pixels,
 * while every input a model sees in use goes through loadRgb.
 */
export async function decodeRgb(image: CheckedImage, size: readonly [number, number], shape: (img: Sharp) => Sharp): Promise<RgbImage> {
  const [height, width] = size;
  try {
    const img = shape(
      sharp(image.source, { limitInputPixels: image.limitInputPixels, failOn: 'error', pages: 1, ignoreIcc: true })
        .autoOrient()
        .flatten({ background: { r: 255, g: 255, b: 255 } })
        .toColourspace('srgb'),
    );
    const { data, info } = await img.removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== width || info.height !== height) {
      throw new Error(`decoded to ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x3`);
    }
    return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (err) {
    if (err instanceof HeadswapError) throw err;
    throw new HeadswapError(`${image.name}: cannot decode image (${describeError(err)}); remove it or re-save it`);
  }
}

/**
 * Decodes a checked image to upright 8-bit RGB at its own size: EXIF orientation applied,
 * grey/CMYK/16-bit made 8-bit sRGB, transparency kept (straight alpha) for modelInput to flatten.
 * An embedded ICC profile is ignored (the values are taken as sRGB), as the page does
 * (`colorSpaceConversion: 'none'`) and Pillow does by default: colour engines round differently
 * (lcms2 against skcms: 1 level on 1-2% of a Display P3 photo's bytes, which moved a probability by
 * 0.03), and training and use then see the same colours. Decoding is sharp's; everything after it
 * is src/image/resize.ts, shared with the page.
 */
export async function decodePixels(image: CheckedImage): Promise<DecodedPixels> {
  // A JPEG whose scans are whole but whose end marker is missing (a transfer cut at the last 2
  // bytes) is a usable photo: libjpeg fails it only when it reads to the very end, which a full-size
  // decode does. The marker is put back, and any warning then (scan data cut short) still refuses it.
  const source = image.source;
  const noEnd = sniffFormat(source) === 'jpeg' && !(source[source.length - 2] === 0xff && source[source.length - 1] === 0xd9);
  try {
    const { data, info } = await sharp(noEnd ? Buffer.concat([source, JPEG_END]) : source, { limitInputPixels: image.limitInputPixels, failOn: noEnd ? 'warning' : 'error', pages: 1, ignoreIcc: true })
      .autoOrient()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 && info.channels !== 4) throw new Error(`decoded to ${info.channels} channels, expected RGB or RGBA`);
    return { width: info.width, height: info.height, channels: info.channels, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  } catch (err) {
    if (err instanceof HeadswapError) throw err;
    throw new HeadswapError(`${image.name}: cannot decode image (${describeError(err)}); remove it or re-save it`);
  }
}

/**
 * Decodes any common image (JPEG, PNG, WebP, GIF first frame, AVIF, TIFF), applies EXIF
 * orientation, turns grey/CMYK/16-bit/alpha into 8-bit sRGB (alpha flattened onto white),
 * and resizes it by the backbone's policy to exactly its input size, with the resize the page
 * and Python use too (modelInput), so every runtime feeds the exported graph the same bytes.
 */
export async function loadRgb(input: ImageInput, pre: Preprocessing, options: LoadOptions = {}): Promise<RgbImage> {
  const pixels = await decodePixels(await checkImage(input, options));
  const [height, width] = pre.size;
  return { width, height, data: modelInput(pixels, pre, options.flip) };
}

/**
 * The pixels a preprocessing gives a graph, as a short text ("224x224 crop 0.875"): networks with
 * equal texts take the same resized image (scale, mean and std happen inside their graphs).
 */
export function resizedPixels(pre: Preprocessing): string {
  return `${pre.size.join('x')} ${pre.resize}${pre.resize === 'crop' ? ` ${pre.cropRatio}` : ''}`;
}

/** Packs resized images into one uint8 NHWC batch (the input of every headswap ONNX graph). */
export function packBatch(images: readonly RgbImage[]): Uint8Array {
  const first = images[0];
  if (!first) return new Uint8Array(0);
  const per = first.data.length;
  const out = new Uint8Array(per * images.length);
  images.forEach((im, i) => out.set(im.data, i * per));
  return out;
}
