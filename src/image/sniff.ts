// No imports: the page bundles this file, so it tells a photo from its first bytes exactly as Node does.

/** What the first bytes say the file is; only these formats reach the decoder. */
export type SniffedFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'avif' | 'svg';

/**
 * An ISO-BMFF file is AVIF when its `ftyp` box names an AVIF brand, major or compatible. HEIC
 * (HEVC-coded HEIF) is not: the sharp build in the npm package cannot decode it.
 */
function isAvif(data: Uint8Array): boolean {
  if (data.length < 16 || ascii(data, 4, 8) !== 'ftyp') return false;
  const size = Math.min(data.length, new DataView(data.buffer, data.byteOffset, 4).getUint32(0));
  const brands = [ascii(data, 8, 12)];
  for (let i = 16; i + 4 <= size; i += 4) brands.push(ascii(data, i, i + 4));
  return brands.some((b) => b === 'avif' || b === 'avis');
}

function startsWith(data: Uint8Array, bytes: readonly number[]): boolean {
  return data.length >= bytes.length && bytes.every((b, i) => data[i] === b);
}

function ascii(data: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...data.subarray(from, to));
}

/**
 * The image format from the file's magic bytes, or undefined. Decoding is allowed only for these,
 * so sharp never sees SVG (which can reference files and URLs) or any other format it happens to
 * support; the file name's extension is not trusted.
 */
export function sniffFormat(data: Uint8Array): SniffedFormat | undefined {
  if (startsWith(data, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(data, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  const head = ascii(data, 0, 12);
  if (head.startsWith('GIF87a') || head.startsWith('GIF89a')) return 'gif';
  if (head.startsWith('RIFF') && head.slice(8, 12) === 'WEBP') return 'webp';
  if (/^(II[*+]\0|MM\0[*+])/.test(head)) return 'tiff';
  if (isAvif(data)) return 'avif';
  // Named only for a clearer message: text that opens like XML and has an <svg> element early on.
  const text = new TextDecoder().decode(data.subarray(0, 64 * 1024)).replace(/^\uFEFF?\s*/, '');
  if (text.startsWith('<') && /<svg[\s>]/i.test(text)) return 'svg';
  return undefined;
}
