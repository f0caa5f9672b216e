import type { Preprocessing } from '../../src/image/types.js';

/**
 * The model's input for one image, made the way the server makes it (src/image/preprocess.ts):
 * EXIF orientation applied, transparency flattened onto white, then the resize policy of the
 * model's headswap.json; returns uint8 RGB, row-major, `size` high and wide.
 */
export async function toPixels(image: Blob, pre: Preprocessing): Promise<Uint8Array> {
  // createImageBitmap applies the EXIF orientation, like sharp's autoOrient().
  const bitmap = await createImageBitmap(image);
  try {
    const [height, width] = pre.size;
    const canvas = document.createElement('canvas');
    canvas.width = width;
    canvas.height = height;
    const g = canvas.getContext('2d', { willReadFrequently: true });
    if (!g) throw new Error('this browser has no 2D canvas');
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = 'high';
    const w0 = bitmap.width;
    const h0 = bitmap.height;
    if (pre.resize === 'squash') {
      g.fillStyle = '#fff';
      g.fillRect(0, 0, width, height);
      g.drawImage(bitmap, 0, 0, width, height);
    } else if (pre.resize === 'pad') {
      // Letterbox: the image fitted inside, centred, on black; its own transparency on white.
      const k = Math.min(width / w0, height / h0);
      const dw = Math.round(w0 * k);
      const dh = Math.round(h0 * k);
      const left = Math.floor((width - dw) / 2);
      const top = Math.floor((height - dh) / 2);
      g.fillStyle = '#000';
      g.fillRect(0, 0, width, height);
      g.fillStyle = '#fff';
      g.fillRect(left, top, dw, dh);
      g.drawImage(bitmap, left, top, dw, dh);
    } else {
      // Shorter side to size / cropRatio (256 for 224), then the centred crop, with the same rounding as the server.
      const k = Math.max(width / (w0 * pre.cropRatio), height / (h0 * pre.cropRatio));
      const rw = Math.max(width, Math.round(w0 * k));
      const rh = Math.max(height, Math.round(h0 * k));
      g.fillStyle = '#fff';
      g.fillRect(0, 0, width, height);
      g.drawImage(bitmap, -Math.floor((rw - width) / 2), -Math.floor((rh - height) / 2), rw, rh);
    }
    const rgba = g.getImageData(0, 0, width, height).data;
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      rgb[j] = rgba[i]!;
      rgb[j + 1] = rgba[i + 1]!;
      rgb[j + 2] = rgba[i + 2]!;
    }
    return rgb;
  } finally {
    bitmap.close();
  }
}
