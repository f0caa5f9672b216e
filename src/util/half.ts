/**
 * IEEE 754 binary16 ("half", float16) conversion, exact: Node 20 has no Float16Array.
 * float32 -> float16 rounds to nearest, ties to even, through the subnormal range; infinities
 * stay infinities and NaNs stay NaNs (quiet, sign and top payload bits kept). float16 -> float32
 * is exact (every half is a float32).
 */

/** The largest finite float16. */
export const HALF_MAX = 65504;

/** The float16 bits nearest to the float32 with bits `f` (round to nearest, ties to even). */
export function halfFromFloatBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exponent = (f >>> 23) & 0xff;
  const mantissa = f & 0x7fffff;
  if (exponent === 0xff) {
    if (mantissa === 0) return sign | 0x7c00;
    // A NaN: keep the top 10 payload bits and set the quiet bit, so it never turns into an infinity.
    return sign | 0x7c00 | 0x200 | (mantissa >>> 13);
  }
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal (or zero) in half: value / 2^-24 = (1.mantissa) * 2^(e + 9), i.e. the 24-bit
    // significand shifted right by 14 - e. Below 2^-25 (shift > 24) everything rounds to zero,
    // float32 subnormals included.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const significand = mantissa | 0x800000;
    const kept = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    // A carry out of the top subnormal gives 0x400, the smallest normal: the bits are still right.
    return sign | (kept + (rest > half || (rest === half && (kept & 1) === 1) ? 1 : 0));
  }
  const kept = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry may run into the exponent, up to 0x7c00 (infinity) just above HALF_MAX: IEEE rounding.
  return sign | (kept + (rest > 0x1000 || (rest === 0x1000 && (kept & 1) === 1) ? 1 : 0));
}

/** The float32 bits of the float16 with bits `h` (exact). */
export function floatBitsFromHalf(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent - 15 + 127) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: normalise it, since it is a normal float32.
  let m = mantissa;
  let shift = 0;
  while ((m & 0x400) === 0) {
    m <<= 1;
    shift++;
  }
  return (sign | ((127 - 15 + 1 - shift) << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

let decodeTable: Uint32Array | undefined;

/** float32 bits of every float16, built on first use (256 KB): decoding is then one lookup per value. */
function table(): Uint32Array {
  if (!decodeTable) {
    decodeTable = new Uint32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) decodeTable[h] = floatBitsFromHalf(h);
  }
  return decodeTable;
}

/** Every value as float16 bits, rounded to nearest even. */
export function toHalf(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfFromFloatBits(bits[i]!);
  return out;
}

/**
 * float16 bits of `values` if every one is exactly a float16 (bit for bit, NaN payloads
 * included), else undefined: storing these loses nothing.
 */
export function toHalfExact(values: Float32Array): Uint16Array | undefined {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const back = table();
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const h = halfFromFloatBits(bits[i]!);
    if (back[h] !== bits[i]) return undefined;
    out[i] = h;
  }
  return out;
}

/** The float32 values of float16 bits, into `out` (a fresh array by default). */
export function fromHalf(halves: Uint16Array, out: Float32Array = new Float32Array(halves.length)): Float32Array {
  const back = table();
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < halves.length; i++) bits[i] = back[halves[i]!]!;
  return out;
}

/**
 * `values` with each one rounded to the nearest float16 (f32 -> f16 -> f32), into `out` (a fresh
 * array by default; `values` itself rounds in place), except values float16 cannot hold: a
 * finite value that would round to an infinity (|x| >= 65520) and a NaN are kept as they are,
 * so nothing silently becomes Infinity.
 */
export function roundToHalf(values: Float32Array, out: Float32Array = new Float32Array(values.length)): Float32Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const back = table();
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) {
    const f = bits[i]!;
    const h = halfFromFloatBits(f);
    // Exponent all ones in the half but not in the float: a finite value past HALF_MAX. A NaN
    // (exponent all ones in both) keeps its own bits too, payload and all.
    outBits[i] = (h & 0x7c00) === 0x7c00 ? f : back[h]!;
  }
  return out;
}
