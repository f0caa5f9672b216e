import { HeadswapError, describeError } from '../../errors.js';

/** How a weight is stored when the converter quantized it (`--quantize_uint8` etc.). */
export interface Quantization {
  readonly dtype: 'uint8' | 'uint16' | 'float16';
  readonly scale?: number;
  readonly min?: number;
}

/** One entry of `weightsManifest[].weights`. */
export interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32' | 'bool';
  readonly quantization?: Quantization;
}

export interface WeightGroup {
  /** Shard files, relative to model.json; a group's bytes are their concatenation. */
  readonly paths: readonly string[];
  readonly weights: readonly WeightSpec[];
}

/** The parts of `model.json` headswap reads. */
export interface ModelJson {
  readonly format: 'layers-model' | 'graph-model';
  readonly modelTopology: Record<string, unknown>;
  readonly weightsManifest: readonly WeightGroup[];
  /** Graph models: input and output tensors (`{inputs: {...}, outputs: {...}}`). */
  readonly signature?: Record<string, unknown>;
}

/** A TF.js model read into memory: model.json and the raw bytes of every shard it lists. */
export interface TfjsArtifacts {
  /** What the user gave (folder, model.json path or URL), for messages. */
  readonly origin: string;
  /** model.json's path or URL, named in errors about it. */
  readonly modelJsonName: string;
  readonly modelJsonBytes: Uint8Array;
  readonly modelJson: ModelJson;
  /** Shard bytes by the path model.json lists them under. */
  readonly shards: ReadonlyMap<string, Uint8Array>;
  /** Where a shard path is read from, for messages (a file path or URL). */
  readonly shardName: (path: string) => string;
  readonly labels?: readonly string[];
}

export interface Weight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: WeightSpec['dtype'];
  readonly data: Float32Array | Int32Array | Uint8Array;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates model.json; every problem is one line naming `name` (the file or URL).
 * Shard paths that could escape the model's folder are refused: they are joined to a folder or URL.
 */
export function parseModelJson(bytes: Uint8Array, name: string): ModelJson {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new HeadswapError(`${name}: not valid JSON (${describeError(err)}); the file is damaged or not a TF.js model.json`);
  }
  const bad = (what: string): HeadswapError => new HeadswapError(`${name}: ${what}; this is not a TF.js model.json (need modelTopology and weightsManifest)`);
  if (!isRecord(json)) throw bad('top level is not an object');
  const topology = json.modelTopology;
  if (!isRecord(topology)) throw bad('no modelTopology object');
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) throw bad('no weightsManifest list');
  // Files written by old converters carry no "format"; a GraphDef has "node", a Keras model a class name.
  const format = json.format ?? ('node' in topology ? 'graph-model' : 'layers-model');
  if (format !== 'layers-model' && format !== 'graph-model') {
    throw new HeadswapError(`${name}: format '${String(format)}' is not supported; headswap imports 'layers-model' and 'graph-model'`);
  }
  const groups = manifest.map((g, gi): WeightGroup => {
    if (!isRecord(g) || !Array.isArray(g.paths) || !Array.isArray(g.weights)) throw bad(`weightsManifest[${gi}] lacks paths or weights`);
    const paths = g.paths.map((p) => {
      if (typeof p !== 'string' || p === '' || p.startsWith('/') || /^[a-z][a-z0-9+.-]*:/i.test(p) || p.split(/[\\/]/).includes('..')) {
        throw new HeadswapError(`${name}: weight shard path ${JSON.stringify(p)} is not a plain relative path; shards must sit beside model.json`);
      }
      return p;
    });
    return { paths, weights: g.weights.map((w) => weightSpec(w, name)) };
  });
  // Old converters put the signature under userDefinedMetadata.
  const udm = isRecord(json.userDefinedMetadata) ? json.userDefinedMetadata : {};
  const signature = isRecord(json.signature) ? json.signature : isRecord(udm.signature) ? udm.signature : undefined;
  return { format, modelTopology: topology, weightsManifest: groups, ...(signature ? { signature } : {}) };
}

function weightSpec(w: unknown, name: string): WeightSpec {
  if (!isRecord(w) || typeof w.name !== 'string' || !Array.isArray(w.shape) || !w.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    throw new HeadswapError(`${name}: weight entry ${JSON.stringify(w).slice(0, 80)} has no valid name and shape`);
  }
  const dtype = w.dtype;
  if (dtype !== 'float32' && dtype !== 'int32' && dtype !== 'bool') {
    throw new HeadswapError(`${name}: weight '${w.name}' has dtype '${String(dtype)}', which headswap cannot import (supported: float32, int32, bool)`);
  }
  const spec: WeightSpec = { name: w.name, shape: w.shape as number[], dtype };
  if (w.quantization === undefined) return spec;
  const q = w.quantization;
  if (!isRecord(q) || (q.dtype !== 'uint8' && q.dtype !== 'uint16' && q.dtype !== 'float16')) {
    const qd = isRecord(q) ? String(q.dtype) : String(q);
    throw new HeadswapError(`${name}: weight '${w.name}' has quantization dtype '${qd}', which headswap cannot import (supported: uint8, uint16, float16)`);
  }
  if (q.dtype === 'float16') {
    if (dtype !== 'float32') throw new HeadswapError(`${name}: weight '${w.name}' is float16-quantized but its dtype is ${dtype}; only float32 weights can be`);
    return { ...spec, quantization: { dtype: 'float16' } };
  }
  if (typeof q.scale !== 'number' || typeof q.min !== 'number') {
    throw new HeadswapError(`${name}: weight '${w.name}' is ${q.dtype}-quantized without numeric scale and min`);
  }
  if (dtype === 'bool') throw new HeadswapError(`${name}: weight '${w.name}' is a quantized bool, which TF.js never writes; the file is damaged`);
  return { ...spec, quantization: { dtype: q.dtype, scale: q.scale, min: q.min } };
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes a weight occupies in its shard. */
function storedBytes(spec: WeightSpec): number {
  return count(spec.shape) * BYTES[spec.quantization?.dtype ?? spec.dtype]!;
}

/** Bytes a group's shards must add up to. */
function groupBytes(group: WeightGroup): number {
  return group.weights.reduce((a, w) => a + storedBytes(w), 0);
}

/**
 * Checks that every shard is present and each group has exactly the bytes its weights need,
 * before anything is decoded or written: a truncated download must not become a model.
 */
export function checkShards(a: TfjsArtifacts): void {
  for (const group of a.modelJson.weightsManifest) {
    let actual = 0;
    for (const p of group.paths) {
      const bytes = a.shards.get(p);
      if (!bytes) throw new HeadswapError(`${a.shardName(p)}: weight shard listed in ${a.modelJsonName} is missing; copy or download the whole model folder`);
      actual += bytes.length;
    }
    const expected = groupBytes(group);
    if (actual !== expected) {
      const files = group.paths.map((p) => a.shardName(p)).join(', ');
      const how = actual < expected ? 'truncated' : 'too long';
      throw new HeadswapError(`${files}: ${actual} bytes, but ${a.modelJsonName} lists ${expected} bytes of weights for it (${how}); download the model again`);
    }
  }
}

/** Decodes every weight to float32 / int32 / bool values, undoing uint8/uint16/float16 quantization like TF.js does. */
export function decodeWeights(a: TfjsArtifacts): Map<string, Weight> {
  checkShards(a);
  const out = new Map<string, Weight>();
  for (const group of a.modelJson.weightsManifest) {
    const buffer = concat(group.paths.map((p) => a.shards.get(p)!));
    let offset = 0;
    for (const spec of group.weights) {
      const size = storedBytes(spec);
      // Copied so that the typed-array views are aligned whatever the offset in the group.
      const bytes = new Uint8Array(size);
      bytes.set(buffer.subarray(offset, offset + size));
      offset += size;
      out.set(spec.name, { name: spec.name, shape: spec.shape, dtype: spec.dtype, data: decodeWeight(spec, bytes) });
    }
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function decodeWeight(spec: WeightSpec, bytes: Uint8Array): Float32Array | Int32Array | Uint8Array {
  const q = spec.quantization;
  if (!q) {
    if (spec.dtype === 'bool') return bytes;
    return spec.dtype === 'int32' ? new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) : new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  }
  const n = count(spec.shape);
  const raw = q.dtype === 'uint8' ? bytes : new Uint16Array(bytes.buffer, bytes.byteOffset, n);
  if (q.dtype === 'float16') return decodeFloat16(raw as Uint16Array);
  const scale = q.scale!;
  const min = q.min!;
  // Plain loops: TypedArray.from with a map function is ~100x slower on large weights.
  if (spec.dtype === 'int32') {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.round(raw[i]! * scale + min);
    return out;
  }
  // Same arithmetic as TF.js: v * scale + min in double, rounded once into float32.
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = raw[i]! * scale + min;
  return out;
}

/** IEEE 754 half to float, exact (subnormals, infinities and NaN included). */
function decodeFloat16(raw: Uint16Array): Float32Array {
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const h = raw[i]!;
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24;
    else if (exp === 31) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}
