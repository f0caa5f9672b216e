import sharp from 'sharp';
import { quoteName } from '../dataset/scan.js';
import { describeError } from '../errors.js';
import { sniffFormat, type SniffedFormat } from '../image/sniff.js';
import { RequestError } from './errors.js';

/** The formats `loadRgb` decodes, identified by their first bytes (sniffFormat). */
export type ImageKind = Exclude<SniffedFormat, 'svg'>;

/** Uploads are stored under names the data-set scan takes as images. */
export const EXTENSIONS: Readonly<Record<ImageKind, string>> = { jpeg: '.jpg', png: '.png', gif: '.gif', webp: '.webp', avif: '.avif', tiff: '.tif' };

export function displayName(name: string): string {
  return quoteName(name.length > 100 ? `${name.slice(0, 97)}...` : name);
}

/**
 * Refuses what the classifier cannot take before any decoding: an empty upload (400), a file
 * that is not an image by its content (415), or one whose header declares more pixels than
 * the limit (413). Returns the format.
 */
export async function checkImage(name: string, bytes: Uint8Array, pixelLimit: number): Promise<ImageKind> {
  const shown = displayName(name);
  if (bytes.length === 0) throw new RequestError(400, `${shown}: empty file; send the image's bytes`);
  const kind = sniffFormat(bytes);
  if (!kind || kind === 'svg') throw new RequestError(415, `${shown} is not a photo headswap can read (JPEG, PNG, WebP, GIF, AVIF, TIFF; checked by content, not by name)`);
  let width: number;
  let height: number;
  try {
    // Reads the header only: a decompression bomb is caught here without being decoded.
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    width = meta.width ?? 0;
    height = meta.height ?? 0;
  } catch (err) {
    throw new RequestError(400, `${shown} is not a photo headswap can read: its ${kind.toUpperCase()} data is damaged (${describeError(err)})`);
  }
  if (width * height > pixelLimit) {
    throw new RequestError(413, `${shown}: ${width}x${height} pixels is over the server's limit of ${pixelLimit} pixels; downscale it`);
  }
  return kind;
}
