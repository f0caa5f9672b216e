import sharp, { type OverlayOptions, type Sharp } from 'sharp';
import type { RgbImage } from '../image/types.js';

/** Matplotlib's "inferno" at 11 evenly spaced stops: dark = low activation, bright yellow = high. */
const INFERNO_STOPS = ['000004', '160b39', '420a68', '6a176e', '932667', 'bc3754', 'dd513a', 'f37819', 'fca50a', 'f6d746', 'fcffa4'];

/** 256 RGB entries interpolated between the stops. */
export const INFERNO: Uint8Array = (() => {
  const stops = INFERNO_STOPS.map((h) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (stops.length - 1);
    const j = Math.min(Math.floor(t), stops.length - 2);
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(stops[j]![c]! + (stops[j + 1]![c]! - stops[j]![c]!) * (t - j));
  }
  return lut;
})();

/**
 * Bilinear resize of a one-channel `h` x `w` plane to `outH` x `outW`, pixel centres aligned
 * (align_corners = false, like the usual image resizers), edges clamped.
 */
export function resizeBilinear(plane: Float32Array, h: number, w: number, outH: number, outW: number): Float32Array {
  const out = new Float32Array(outH * outW);
  const coord = (o: number, n: number, outN: number): [number, number, number] => {
    const s = Math.min(Math.max(((o + 0.5) * n) / outN - 0.5, 0), n - 1);
    const i0 = Math.floor(s);
    return [i0, Math.min(i0 + 1, n - 1), s - i0];
  };
  for (let y = 0; y < outH; y++) {
    const [y0, y1, fy] = coord(y, h, outH);
    for (let x = 0; x < outW; x++) {
      const [x0, x1, fx] = coord(x, w, outW);
      const top = plane[y0 * w + x0]! + (plane[y0 * w + x1]! - plane[y0 * w + x0]!) * fx;
      const bottom = plane[y1 * w + x0]! + (plane[y1 * w + x1]! - plane[y1 * w + x0]!) * fx;
      out[y * outW + x] = top + (bottom - top) * fy;
    }
  }
  return out;
}

/** How much of the heat map covers the photo: enough to read the map, little enough to see what lights up. */
const HEAT_ALPHA = 0.62;

/**
 * One channel as a heat map over the photo: the map is stretched to its own min..max (each
 * channel has its own scale) or to the `scale` given (values outside it clamp), resized
 * bilinearly to the photo, coloured with inferno and alpha-blended onto it. Returns an image of
 * `photo`'s size.
 */
export async function overlay(photo: RgbImage, plane: Float32Array, h: number, w: number, scale?: readonly [number, number]): Promise<RgbImage> {
  const up = resizeBilinear(plane, h, w, photo.height, photo.width);
  let [lo, hi] = scale ?? [Infinity, -Infinity];
  if (!scale) for (const v of plane) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const range = hi - lo || 1;
  const rgba = Buffer.alloc(photo.width * photo.height * 4);
  for (let i = 0; i < up.length; i++) {
    const level = Math.round((255 * Math.min(Math.max(up[i]! - lo, 0), range)) / range);
    rgba.set(INFERNO.subarray(level * 3, level * 3 + 3), i * 4);
    rgba[i * 4 + 3] = Math.round(255 * HEAT_ALPHA);
  }
  const { data } = await fromRgb(photo)
    .composite([{ input: rgba, raw: { width: photo.width, height: photo.height, channels: 4 } }])
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: photo.width, height: photo.height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** A sharp pipeline reading raw RGB pixels. */
export function fromRgb(image: RgbImage): Sharp {
  const { input, raw } = rawRgb(image);
  return sharp(input, { raw });
}

/** Raw-pixel input for sharp's composite. */
export function rawRgb(image: RgbImage): { input: Buffer; raw: { width: number; height: number; channels: 3 } } {
  return {
    input: Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength),
    raw: { width: image.width, height: image.height, channels: 3 },
  };
}

/** The inferno scale as a horizontal bar for the sheet's legend, framed in grey so its black end shows on the dark sheet. */
export function colourBar(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3).fill(110);
  for (let x = 1; x < width - 1; x++) {
    const level = Math.round((255 * (x - 1)) / Math.max(1, width - 3));
    for (let y = 1; y < height - 1; y++) data.set(INFERNO.subarray(level * 3, level * 3 + 3), (y * width + x) * 3);
  }
  return { width, height, data };
}

/** Escapes text for SVG and HTML. */
export function escapeMarkup(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A text run for the sheet's SVG layer. */
export interface Label {
  readonly x: number;
  readonly y: number;
  readonly text: string;
  readonly size: number;
  readonly weight?: 'bold';
  readonly mono?: boolean;
  readonly colour?: string;
}

const SANS = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";
const MONO = "'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace";

/** Lays images and text onto a dark canvas; text is one transparent SVG layer that librsvg rasterizes. */
export async function composeSheet(width: number, height: number, images: readonly OverlayOptions[], labels: readonly Label[]): Promise<Buffer> {
  const text = labels
    .map(
      (l) =>
        `<text x="${l.x}" y="${l.y}" font-family="${l.mono ? MONO : SANS}" font-size="${l.size}"${l.weight ? ` font-weight="${l.weight}"` : ''} fill="${l.colour ?? '#e8e8e8'}">${escapeMarkup(l.text)}</text>`,
    )
    .join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${text}</svg>`;
  return sharp({ create: { width, height, channels: 3, background: { r: 18, g: 18, b: 22 } } })
    .composite([...images, { input: Buffer.from(svg), left: 0, top: 0 }])
    // 256 dithered colours: a quarter of the bytes of full colour (the HTML embeds it), no visible loss here.
    .png({ palette: true, effort: 1 })
    .toBuffer();
}
