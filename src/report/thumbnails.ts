import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { describeError } from '../errors.js';
import { DEFAULT_PIXEL_LIMIT } from '../image/preprocess.js';
import { errnoCode } from '../util/fs.js';

export type Thumbnail =
  | { readonly ok: true; readonly src: string; readonly width: number; readonly height: number }
  | { readonly ok: false; readonly reason: string };

/** Bounds memory: each job holds one whole photo file in memory while sharp decodes it. */
const CONCURRENCY = 8;
const JPEG_QUALITY = 72;

function reasonOf(err: unknown): string {
  const code = errnoCode(err);
  if (code === 'ENOENT') return 'file not found (moved or deleted since training)';
  if (code !== undefined) return `cannot read file (${code})`;
  return `cannot decode image (${describeError(err)})`;
}

/** A square JPEG data: URI, center-cropped like the classifier's input; failures become a reason. */
async function thumbnail(path: string, size: number): Promise<Thumbnail> {
  try {
    // Reading first separates "file gone" (errno) from "not decodable" (sharp's message).
    const bytes = await readFile(path);
    const { data, info } = await sharp(bytes, { limitInputPixels: DEFAULT_PIXEL_LIMIT, pages: 1 })
      .autoOrient()
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .jpeg({ quality: JPEG_QUALITY, mozjpeg: true })
      .toBuffer({ resolveWithObject: true });
    return { ok: true, src: `data:image/jpeg;base64,${data.toString('base64')}`, width: info.width, height: info.height };
  } catch (err) {
    return { ok: false, reason: reasonOf(err) };
  }
}

/** Thumbnails of the distinct paths, keyed by path; never rejects. */
export async function makeThumbnails(paths: Iterable<string>, size: number): Promise<Map<string, Thumbnail>> {
  const queue = [...new Set(paths)];
  const out = new Map<string, Thumbnail>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const path = queue[next++]!;
      out.set(path, await thumbnail(path, size));
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
  return out;
}
