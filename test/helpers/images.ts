import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';

export const PHOTOS = new URL('../fixtures/photos/', import.meta.url).pathname;
export const SHOE_1 = `${PHOTOS}shoe-1.jpg`;
export const SHOE_2 = `${PHOTOS}shoe-2.jpg`;
export const HAT_1 = `${PHOTOS}hat-1.jpg`;
export const DRESS_1 = `${PHOTOS}dress-1.jpg`;

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A valid, tiny PNG file whose header declares width x height RGB pixels (a "pixel bomb"). */
export function pixelBombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit, RGB, deflate, no filter, no interlace
  // One row of data compresses to a few bytes; decoding the rest would need gigabytes.
  const idat = deflateSync(Buffer.alloc(1 + width * 3));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))]);
}

/** Writes the usual broken files into `dir`: returns their paths by kind. */
export async function writeBrokenFiles(dir: string): Promise<Record<'empty' | 'truncated' | 'text' | 'bomb', string>> {
  const paths = { empty: `${dir}/zero-byte.jpg`, truncated: `${dir}/truncated.jpg`, text: `${dir}/not-an-image.jpg`, bomb: `${dir}/bomb.png` };
  const jpeg = readFileSync(SHOE_1);
  await writeFile(paths.empty, Buffer.alloc(0));
  await writeFile(paths.truncated, jpeg.subarray(0, Math.floor(jpeg.length / 3)));
  await writeFile(paths.text, 'this is a text file, not a photo\n');
  await writeFile(paths.bomb, pixelBombPng(20000, 20000));
  return paths;
}
