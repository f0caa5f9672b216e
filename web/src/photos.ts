/**
 * Whether a file is a photo headswap can read, told by its first bytes like the server tells it
 * (src/image/preprocess.ts sniffFormat): names and declared types say nothing.
 */

export type PhotoFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'avif' | 'tiff';

export const READABLE_FORMATS = 'JPEG, PNG, WebP, GIF, AVIF, TIFF';

function ascii(bytes: Uint8Array, start: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (bytes[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

export function formatOf(bytes: Uint8Array): PhotoFormat | undefined {
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes[0] === 0x89 && ascii(bytes, 1, 'PNG')) return 'png';
  if (ascii(bytes, 0, 'GIF8')) return 'gif';
  if (ascii(bytes, 0, 'RIFF') && ascii(bytes, 8, 'WEBP')) return 'webp';
  // An ISO media file; the server checks that its brands are AVIF's.
  if (ascii(bytes, 4, 'ftyp')) return 'avif';
  if (ascii(bytes, 0, 'II*\0') || ascii(bytes, 0, 'MM\0*')) return 'tiff';
  return undefined;
}

export async function sniff(file: Blob): Promise<PhotoFormat | undefined> {
  return formatOf(new Uint8Array(await file.slice(0, 16).arrayBuffer()));
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
