import type { Preprocessing } from './types.js';

/**
 * The one resize of headswap, in plain arithmetic so that Node (after sharp decodes), the browser
 * page and a Python user (numpy; docs/PREPROCESSING.md) make the very same model input from the
 * same decoded pixels. It is Pillow's `Image.resize(size, Image.LANCZOS)` (reducing_gap None),
 * operation for operation: a Lanczos-3 filter widened by the scale when shrinking (antialiased),
 * weights in 22-bit fixed point, a horizontal pass rounded to uint8, then a vertical pass. Every
 * step is integer arithmetic or one IEEE double operation at a time, so V8 and numpy agree bit
 * for bit (but for a last-bit difference of `sin`, which would have to fall on a rounding edge
 * of a weight). Lanczos rather than Pillow's bilinear: the evaluation sets scored better with it
 * (bench/README.md, "Node, browser and Python parity"). No imports beyond types: the page bundles this file.
 */

/**
 * Bump when the bytes a photo becomes change (decoding or this arithmetic): it is part of every
 * backbone's fingerprint (Backbone.fingerprint), so feature vectors cached from other bytes are
 * not reused. 3: the Lanczos filter; 2: the same code with Pillow's bilinear filter, embedded ICC
 * profiles ignored; 1: libvips resize in sharp.
 */
export const PIXELS_VERSION = 3;

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

/** Decoded, upright pixels: row-major, 3 (RGB) or 4 (RGBA, straight alpha) bytes a pixel. */
export interface DecodedPixels {
  readonly width: number;
  readonly height: number;
  readonly channels: 3 | 4;
  readonly data: Uint8Array | Uint8ClampedArray;
}

/** Per output index: first source index, tap count, and `ksize` fixed-point weights. */
interface Coefficients {
  readonly ksize: number;
  readonly first: Int32Array;
  readonly count: Int32Array;
  readonly weights: Int32Array;
}

/** A separable resampling filter as Pillow's Resample.c defines one: its weight at signed distance x (source pixels at scale 1) and its support. */
export interface ResizeFilter {
  readonly support: number;
  readonly weight: (x: number) => number;
}

/** Pillow's sinc_filter. */
function sinc(x: number): number {
  if (x === 0) return 1;
  const y = x * Math.PI;
  return Math.sin(y) / y;
}

/** Pillow's LANCZOS (lanczos_filter, a = 3): headswap's resize. */
export const LANCZOS: ResizeFilter = { support: 3, weight: (x) => (-3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0) };

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc. */
function coefficients(inSize: number, outSize: number, filter: ResizeFilter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const inverse = 1 / filterScale;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const taps = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < n; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * inverse);
      taps[x] = w;
      total += w;
    }
    for (let x = 0; x < n; x++) {
      const k = total !== 0 ? taps[x]! / total : taps[x]!;
      // Rounded away from zero: the filter's negative lobes too.
      weights[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    first[xx] = xmin;
    count[xx] = n;
  }
  return { ksize, first, count, weights };
}

/** A fixed-point sum back to a byte: floor(sum / 2^22), clamped to 0..255 (the lobes can overshoot either way; |sum| < 2^31). */
function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** A window of a resized image: the whole image is `{ left: 0, top: 0, width: outW, height: outH }`. */
export interface Window {
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

/**
 * `window` of the RGB image `src` (3 bytes a pixel) resized to outW x outH: exactly Pillow's
 * `img.resize((outW, outH), LANCZOS).crop(window)`, computing only the pixels the window keeps.
 * Another filter of Pillow's (bench/parity.ts compares some) gives that filter's resize.
 */
export function resizeRgb(src: Uint8Array, srcW: number, srcH: number, outW: number, outH: number, window: Window = { left: 0, top: 0, width: outW, height: outH }, filter: ResizeFilter = LANCZOS): Uint8Array {
  const horiz = coefficients(srcW, outW, filter);
  const vert = coefficients(srcH, outH, filter);
  const { left, top, width, height } = window;
  // Source rows the window's output rows read.
  const rowFirst = vert.first[top]!;
  const rowEnd = vert.first[top + height - 1]! + vert.count[top + height - 1]!;
  const tmp = new Uint8Array((rowEnd - rowFirst) * width * 3);
  for (let y = rowFirst; y < rowEnd; y++) {
    const inRow = y * srcW * 3;
    const outRow = (y - rowFirst) * width * 3;
    for (let i = 0; i < width; i++) {
      const xx = left + i;
      const x0 = horiz.first[xx]!;
      const n = horiz.count[xx]!;
      const kOff = xx * horiz.ksize;
      let r = HALF;
      let g = HALF;
      let b = HALF;
      // Integer sums (255 times the positive weights stays under 2^31), so V8 keeps them on its int32 path.
      for (let x = 0; x < n; x++) {
        const k = horiz.weights[kOff + x]!;
        const p = inRow + (x0 + x) * 3;
        r = (r + Math.imul(src[p]!, k)) | 0;
        g = (g + Math.imul(src[p + 1]!, k)) | 0;
        b = (b + Math.imul(src[p + 2]!, k)) | 0;
      }
      const o = outRow + i * 3;
      tmp[o] = clip8(r);
      tmp[o + 1] = clip8(g);
      tmp[o + 2] = clip8(b);
    }
  }
  // Vertical pass row by row into one accumulator: sequential memory, the same sums.
  const out = new Uint8Array(width * height * 3);
  const stride = width * 3;
  const acc = new Int32Array(stride);
  for (let j = 0; j < height; j++) {
    const yy = top + j;
    const y0 = vert.first[yy]! - rowFirst;
    const n = vert.count[yy]!;
    const kOff = yy * vert.ksize;
    acc.fill(HALF);
    for (let y = 0; y < n; y++) {
      const k = vert.weights[kOff + y]!;
      const row = (y0 + y) * stride;
      for (let c = 0; c < stride; c++) acc[c]! += tmp[row + c]! * k;
    }
    const outRow = j * stride;
    for (let c = 0; c < stride; c++) out[outRow + c] = clip8(acc[c]!);
  }
  return out;
}

/**
 * RGB from decoded pixels, transparency flattened onto white the way a browser composites it:
 * round(c * a / 255) + 255 - a, in integers (exact, no ties: 255 is odd). RGB input is returned
 * as it is (not copied).
 */
export function flattenOnWhite(image: DecodedPixels): Uint8Array {
  const { width, height, channels, data } = image;
  const n = width * height;
  if (channels === 3) return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, n * 3);
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n * 4; i += 4, j += 3) {
    const a = data[i + 3]!;
    if (a === 255) {
      rgb[j] = data[i]!;
      rgb[j + 1] = data[i + 1]!;
      rgb[j + 2] = data[i + 2]!;
      continue;
    }
    const rest = 255 - a;
    rgb[j] = Math.floor((2 * data[i]! * a + 255) / 510) + rest;
    rgb[j + 1] = Math.floor((2 * data[i + 1]! * a + 255) / 510) + rest;
    rgb[j + 2] = Math.floor((2 * data[i + 2]! * a + 255) / 510) + rest;
  }
  return rgb;
}

/** x rounded half up, written so numpy's `np.floor(x + 0.5)` gives the same integer (Python's round() rounds half to even). */
function roundHalfUp(x: number): number {
  return Math.floor(x + 0.5);
}

/** Where the photo goes in the model input: its resized size and the window or offset of the policy. */
export interface Placement {
  /** The size the whole photo is resized to. */
  readonly resized: readonly [width: number, height: number];
  /** crop/squash: the part of the resized photo that is the input; pad: the whole resized photo. */
  readonly window: Window;
  /** pad: where the resized photo sits in the input (the rest is black); 0, 0 otherwise. */
  readonly offset: readonly [left: number, top: number];
}

/** The resize policy's geometry for a photo of w0 x h0 (docs/PREPROCESSING.md states the same arithmetic). */
export function placement(w0: number, h0: number, pre: Pick<Preprocessing, 'size' | 'resize' | 'cropRatio'>): Placement {
  const [height, width] = pre.size;
  if (pre.resize === 'squash') return { resized: [width, height], window: { left: 0, top: 0, width, height }, offset: [0, 0] };
  if (pre.resize === 'pad') {
    const k = Math.min(width / w0, height / h0);
    const dw = Math.min(width, Math.max(1, roundHalfUp(w0 * k)));
    const dh = Math.min(height, Math.max(1, roundHalfUp(h0 * k)));
    return { resized: [dw, dh], window: { left: 0, top: 0, width: dw, height: dh }, offset: [Math.floor((width - dw) / 2), Math.floor((height - dh) / 2)] };
  }
  // Shorter side to size / cropRatio (256 for 224), then the centred crop.
  const k = Math.max(width / (w0 * pre.cropRatio), height / (h0 * pre.cropRatio));
  const rw = Math.max(width, roundHalfUp(w0 * k));
  const rh = Math.max(height, roundHalfUp(h0 * k));
  return { resized: [rw, rh], window: { left: Math.floor((rw - width) / 2), top: Math.floor((rh - height) / 2), width, height }, offset: [0, 0] };
}

/**
 * The model's input (uint8 RGB, row-major, `pre.size`) from decoded upright pixels of any size:
 * flatten onto white, resize by the policy, optionally mirror left-right. The same function in
 * Node, in the page and (in numpy) in docs/PREPROCESSING.md.
 */
export function modelInput(image: DecodedPixels, pre: Pick<Preprocessing, 'size' | 'resize' | 'cropRatio'>, flip = false, filter: ResizeFilter = LANCZOS): Uint8Array {
  const [height, width] = pre.size;
  const rgb = flattenOnWhite(image);
  const place = placement(image.width, image.height, pre);
  const resized = resizeRgb(rgb, image.width, image.height, place.resized[0], place.resized[1], place.window, filter);
  let out = resized;
  if (pre.resize === 'pad') {
    out = new Uint8Array(width * height * 3);
    const [left, top] = place.offset;
    const rowBytes = place.window.width * 3;
    for (let y = 0; y < place.window.height; y++) out.set(resized.subarray(y * rowBytes, (y + 1) * rowBytes), ((top + y) * width + left) * 3);
  }
  return flip ? mirror(out, width, height) : out;
}

/** Left-right mirror of an RGB image. */
export function mirror(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      const d = (y * width + (width - 1 - x)) * 3;
      out[d] = rgb[s]!;
      out[d + 1] = rgb[s + 1]!;
      out[d + 2] = rgb[s + 2]!;
    }
  }
  return out;
}
