import { sniffFormat, type SniffedFormat } from '../../src/image/sniff.js';

/**
 * Whether a file is a photo headswap can read, told by its first bytes with the server's own
 * sniffer (src/image/sniff.ts): names and declared types say nothing.
 */

export type PhotoFormat = Exclude<SniffedFormat, 'svg'>;

export const READABLE_FORMATS = 'JPEG, PNG, WebP, GIF, AVIF, TIFF';

/** Bytes the sniffer reads at most (its SVG check; AVIF's brands come well before). */
const SNIFF_BYTES = 64 * 1024;

export async function sniff(file: Blob): Promise<PhotoFormat | undefined> {
  const format = sniffFormat(new Uint8Array(await file.slice(0, SNIFF_BYTES).arrayBuffer()));
  return format === 'svg' ? undefined : format;
}

/** 'name' in quotes, shortened, as the server quotes file names. */
export function quoted(name: string): string {
  return `'${name.length > 80 ? `${name.slice(0, 77)}...` : name}'`;
}

/** The one line for a file that is not a photo, the same on the page, the server and in the browser path. */
export function notAPhoto(name: string): string {
  return `${quoted(name)} is not a photo headswap can read (${READABLE_FORMATS})`;
}

/**
 * What to tell the user when the browser could not decode a file that looked like a photo:
 * Chromium reads no TIFF, and a damaged file fails the same way.
 */
export function undecodable(name: string, format: PhotoFormat | undefined): string {
  if (!format) return notAPhoto(name);
  if (format === 'tiff') return `${quoted(name)} is a TIFF, which this browser cannot decode; untick "run in the browser" to classify it on the server`;
  return `${quoted(name)} looks like a ${format.toUpperCase()} but its data is damaged; it is not a photo headswap can read`;
}
