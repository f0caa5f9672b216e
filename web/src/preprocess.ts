import { modelInput } from '../../src/image/resize.js';
import type { Preprocessing } from '../../src/image/types.js';

/**
 * The model's input for one image file, byte for byte what Node makes of it (src/image/preprocess.ts):
 * the browser decodes (EXIF orientation applied, an embedded colour profile ignored, transparency
 * composited onto white), then the shared resize (src/image/resize.ts) does the resize policy of
 * the model's headswap.json. The canvas only decodes: its own drawImage scaling differs from Node's.
 */
export async function toPixels(image: Blob, pre: Preprocessing): Promise<Uint8Array> {
  // The embedded ICC profile is ignored, as in Node (decodePixels): colour engines round differently.
  const bitmap = await createImageBitmap(image, { imageOrientation: 'from-image', colorSpaceConversion: 'none' });
  try {
    const { width, height } = bitmap;
    const canvas = new OffscreenCanvas(width, height);
    const g = canvas.getContext('2d', { willReadFrequently: true });
    if (!g) throw new Error('this browser has no 2D canvas');
    // On white, a pixel of alpha a becomes round(c * a / 255) + 255 - a: Node's flattenOnWhite.
    g.fillStyle = '#fff';
    g.fillRect(0, 0, width, height);
    g.drawImage(bitmap, 0, 0);
    return inputFromRgba(g.getImageData(0, 0, width, height).data, width, height, pre);
  } finally {
    bitmap.close();
  }
}

/**
 * The model's input (uint8 RGB, row-major, `size` high and wide) from an already decoded, upright
 * RGBA image of any size, e.g. a webcam frame from getImageData: transparency onto white, then
 * the resize policy (squash / pad / crop), exactly as Node does it.
 */
export function inputFromRgba(rgba: Uint8ClampedArray, width: number, height: number, pre: Preprocessing): Uint8Array {
  if (rgba.length !== width * height * 4) throw new Error(`${rgba.length} bytes is not ${width}x${height} RGBA`);
  return modelInput({ width, height, channels: 4, data: rgba }, pre);
}
