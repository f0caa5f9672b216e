import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { Backbone } from '../../src/backbone/backbone.js';
import { HeadswapError } from '../../src/errors.js';
import { databaseBytes } from '../../src/runtime/database.js';
import { databasePath } from '../../src/runtime/download.js';
import { FeatureCache, LAST_USED_RESOLUTION_S, MB, cacheSizeWarning, type FeatureEntry, type FeatureKey } from '../../src/features/cache.js';
import { extractFeatures } from '../../src/features/extract.js';
import { loadRgb } from '../../src/image/preprocess.js';
import { RunStore } from '../../src/runs/store.js';
import { HALF_MAX, floatBitsFromHalf, fromHalf, halfFromFloatBits, roundToHalf, toHalf, toHalfExact } from '../../src/util/half.js';
import { createRng } from '../../src/util/random.js';
import { expectedVector, imageId } from '../helpers/cache-writer.js';
import { DRESS_1, HAT_1, SHOE_1, SHOE_2 } from '../helpers/images.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WRITER = fileURLToPath(new URL('../helpers/cache-writer.ts', import.meta.url));

let tmpRoot = '';
before(async () => {
  tmpRoot = await mkdtemp(join(tmpdir(), 'headswap-cache-test-'));
});
after(async () => {
  await rm(tmpRoot, { recursive: true, force: true });
});

async function freshPath(): Promise<string> {
  return databasePath(await mkdtemp(join(tmpRoot, 'c-')));
}

function bytesOf(v: Float32Array): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Asserts fn throws a one-line HeadswapError whose message matches. */
function assertHeadswapError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HeadswapError, `expected HeadswapError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, message);
    return true;
  });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function corruptedMessage(path: string): RegExp {
  return new RegExp(
    `^${escapeRegExp(path)}: feature cache is corrupted \\(.+\\); ` +
      'delete it to rebuild \\(it holds only cached features and the run history\\)$',
  );
}

function entry(backbone: string, i: number, dim: number): FeatureEntry {
  return { key: { backbone, image: imageId(i) }, vector: expectedVector(backbone, i, dim) };
}

/** Writes `n` rows of backbone 'bb' (dim 1280) and closes the file. */
function fill(path: string, n: number): void {
  const cache = FeatureCache.open(path);
  cache.putMany(Array.from({ length: n }, (_, i) => entry('bb', i, 1280)));
  cache.close();
}

describe('FeatureCache in one process', () => {
  test('round-trips the exact bits into a Float32Array that owns its memory', async () => {
    const cache = FeatureCache.open(await freshPath());
    // Random bits cover NaN payloads, -0, infinities and subnormals; the odd offset checks views are encoded correctly.
    const backing = new Float32Array(1 + 1280);
    new Uint8Array(backing.buffer).set(randomBytes(backing.byteLength));
    const vector = backing.subarray(1);
    const key: FeatureKey = { backbone: 'bb', image: imageId(1) };
    cache.putMany([{ key, vector }]);

    const got = cache.get(key);
    assert.ok(got);
    assert.deepEqual(bytesOf(got), bytesOf(vector));
    assert.equal(got.byteOffset, 0);
    assert.equal(got.buffer.byteLength, got.byteLength);
    got.fill(0);
    assert.deepEqual(bytesOf(cache.get(key) ?? new Float32Array()), bytesOf(vector));
    assert.equal(cache.get({ backbone: 'bb', image: imageId(2) }), undefined);
    cache.close();
  });

  test('keeps variants and backbones apart, replaces on re-put, counts', async () => {
    const cache = FeatureCache.open(await freshPath());
    const image = imageId(7);
    cache.putMany([
      { key: { backbone: 'a', image }, vector: Float32Array.of(1) },
      { key: { backbone: 'a', image, variant: 'flip' }, vector: Float32Array.of(2, 2) },
      { key: { backbone: 'b', image }, vector: Float32Array.of(3, 3, 3) },
    ]);
    assert.deepEqual(cache.get({ backbone: 'a', image, variant: '' }), Float32Array.of(1));
    assert.deepEqual(cache.get({ backbone: 'a', image, variant: 'flip' }), Float32Array.of(2, 2));
    assert.deepEqual(cache.get({ backbone: 'b', image }), Float32Array.of(3, 3, 3));
    assert.equal(cache.get({ backbone: 'b', image, variant: 'flip' }), undefined);

    cache.putMany([{ key: { backbone: 'a', image }, vector: Float32Array.of(9, 9) }]);
    assert.deepEqual(cache.get({ backbone: 'a', image }), Float32Array.of(9, 9));
    assert.equal(cache.count(), 3);
    assert.equal(cache.count('a'), 2);
    assert.equal(cache.count('b'), 1);
    assert.equal(cache.count('c'), 0);
    cache.close();
  });

  test('getMany returns exactly the cached images of one backbone and variant', async () => {
    const cache = FeatureCache.open(await freshPath());
    const n = 3000;
    const stored = Array.from({ length: n }, (_, i) => i).filter((i) => i % 2 === 0);
    cache.putMany(stored.map((i) => entry('bb', i, 64)));
    cache.putMany([{ key: { backbone: 'bb', image: imageId(1), variant: 'crop' }, vector: Float32Array.of(5) }]);

    const images = Array.from({ length: n }, (_, i) => imageId(i));
    const found = cache.getMany('bb', images);
    assert.equal(found.size, stored.length);
    for (const i of stored) assert.deepEqual(found.get(imageId(i)), expectedVector('bb', i, 64));
    assert.deepEqual([...cache.getMany('bb', images, 'crop')], [[imageId(1), Float32Array.of(5)]]);
    assert.equal(cache.getMany('other', images).size, 0);
    cache.close();
  });

  test('persists across reopen, also read-only', async () => {
    const path = await freshPath();
    fill(path, 10);
    for (const readonly of [false, true]) {
      const cache = FeatureCache.open(path, { readonly });
      assert.equal(cache.path, path);
      assert.equal(cache.count('bb'), 10);
      assert.deepEqual(cache.get({ backbone: 'bb', image: imageId(9) }), expectedVector('bb', 9, 1280));
      cache.close();
    }
  });

  test('treats a row whose blob length disagrees with its dim as missing', async () => {
    const path = await freshPath();
    fill(path, 3);
    const raw = new Database(path);
    raw.prepare('UPDATE features SET dim = dim + 1 WHERE image = ?').run(imageId(1));
    raw.close();
    const cache = FeatureCache.open(path);
    assert.equal(cache.get({ backbone: 'bb', image: imageId(1) }), undefined);
    assert.deepEqual([...cache.getMany('bb', [imageId(0), imageId(1), imageId(2)]).keys()], [imageId(0), imageId(2)]);
    cache.close();
  });

  test('reports a file of random bytes as corrupted and leaves it in place', async () => {
    const path = await freshPath();
    const junk = randomBytes(8192);
    writeFileSync(path, junk);
    assertHeadswapError(() => FeatureCache.open(path), corruptedMessage(path));
    assert.deepEqual(readFileSync(path), junk);
  });

  test('reports a truncated database as corrupted', async () => {
    const path = await freshPath();
    fill(path, 100);
    truncateSync(path, Math.floor(statSync(path).size / 2));
    assertHeadswapError(() => FeatureCache.open(path), corruptedMessage(path));
    assertHeadswapError(() => FeatureCache.open(path, { readonly: true }), corruptedMessage(path));
  });

  test('refuses a file from a newer schema', async () => {
    const path = await freshPath();
    fill(path, 1);
    const raw = new Database(path);
    raw.prepare("UPDATE meta SET value = '99' WHERE key = 'schema_version'").run();
    raw.close();
    assertHeadswapError(() => FeatureCache.open(path), /: feature cache was written by a newer headswap \(schema 99/);
  });

  test('names the folder it cannot create and the file it cannot open', async () => {
    const dir = await mkdtemp(join(tmpRoot, 'c-'));
    writeFileSync(join(dir, 'file'), '');
    const blocked = join(dir, 'file', 'sub');
    assertHeadswapError(
      () => FeatureCache.open(databasePath(blocked)),
      new RegExp(`^${escapeRegExp(blocked)}: cannot create the feature cache folder \\(.*\\); set HEADSWAP_CACHE`),
    );
    const missing = databasePath(dir);
    assertHeadswapError(
      () => FeatureCache.open(missing, { readonly: true }),
      new RegExp(`^${escapeRegExp(missing)}: cannot open the feature cache`),
    );
    assert.equal(existsSync(missing), false);
  });
});

interface Child {
  proc: ChildProcessWithoutNullStreams;
  stdout: string;
  stderr: string;
}

function startWriter(...args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', WRITER, ...args], { cwd: ROOT });
  const child: Child = { proc, stdout: '', stderr: '' };
  proc.stdout.setEncoding('utf8').on('data', (s: string) => (child.stdout += s));
  proc.stderr.setEncoding('utf8').on('data', (s: string) => (child.stderr += s));
  return child;
}

/** Resolves once the child has printed `line`; rejects if it ends first. */
function waitForLine(child: Child, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!child.stdout.split('\n').includes(line)) return;
      stop();
      resolve();
    };
    const ended = (): void => {
      stop();
      reject(new Error(`child ended before printing ${JSON.stringify(line)}: ${child.stderr}`));
    };
    const stop = (): void => {
      child.proc.stdout.off('data', check);
      child.proc.off('close', ended);
    };
    // Registered after startWriter's own listener, so child.stdout already holds the new chunk.
    child.proc.stdout.on('data', check);
    child.proc.on('close', ended);
    check();
  });
}

async function exitCode(child: Child): Promise<number | null> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) await once(child.proc, 'exit');
  return child.proc.exitCode;
}

function committed(child: Child): number {
  return Math.max(0, ...[...child.stdout.matchAll(/^committed (\d+)$/gm)].map((m) => Number(m[1])));
}

/** Asserts images 0..rows-1 of `backbone` hold their expected vectors and nothing beyond. */
function assertRows(cache: FeatureCache, backbone: string, rows: number, dim: number): void {
  assert.equal(cache.count(backbone), rows);
  const found = cache.getMany(backbone, Array.from({ length: rows + 1 }, (_, i) => imageId(i)));
  assert.equal(found.size, rows);
  for (let i = 0; i < rows; i++) {
    assert.deepEqual(found.get(imageId(i)), expectedVector(backbone, i, dim), `image ${i}`);
  }
}

// Each test waits mostly on child start-up, so they run side by side.
describe('FeatureCache across processes', { concurrency: true }, () => {
  test('a writer killed with SIGKILL leaves a valid file holding whole batches', async () => {
    const path = await freshPath();
    const batchSize = 200;
    const writer = startWriter('write', path, 'bb', '0', String(batchSize), '1280');
    try {
      await waitForLine(writer, 'committed 3');
    } finally {
      writer.proc.kill('SIGKILL');
    }
    await exitCode(writer);
    assert.equal(writer.proc.signalCode, 'SIGKILL');

    const cache = FeatureCache.open(path);
    const raw = new Database(path);
    assert.equal(raw.pragma('quick_check', { simple: true }), 'ok');
    raw.close();
    const rows = cache.count('bb');
    assert.equal(rows % batchSize, 0, `${rows} rows is not a whole number of batches`);
    const reported = committed(writer);
    assert.ok(rows >= reported * batchSize, `${rows} rows but ${reported} batches reported committed`);
    assertRows(cache, 'bb', rows, 1280);
    cache.close();
  });

  test('two processes writing the same new file at once both finish with all rows', async () => {
    const path = await freshPath();
    const writers = ['left', 'right'].map((backbone) => startWriter('write', path, backbone, '20', '50', '256'));
    for (const writer of writers) assert.equal(await exitCode(writer), 0, writer.stderr);
    const cache = FeatureCache.open(path);
    assert.equal(cache.count(), 2 * 20 * 50);
    assertRows(cache, 'left', 20 * 50, 256);
    assertRows(cache, 'right', 20 * 50, 256);
    cache.close();
  });

  test('a write lock held past the busy timeout gives the lock error; reads still work', async () => {
    const path = await freshPath();
    fill(path, 1);
    const holder = startWriter('hold', path);
    try {
      await waitForLine(holder, 'locked');
      const cache = FeatureCache.open(path, { busyTimeoutMs: 200 });
      assert.deepEqual(cache.get({ backbone: 'bb', image: imageId(0) }), expectedVector('bb', 0, 1280));
      const start = performance.now();
      assertHeadswapError(
        () => cache.putMany([{ key: { backbone: 'bb', image: imageId(1) }, vector: Float32Array.of(1) }]),
        new RegExp(
          `^${escapeRegExp(path)}: .*another headswap process is using it; ` +
            'wait or set HEADSWAP_CACHE to another folder$',
        ),
      );
      assert.ok(performance.now() - start >= 150, 'gave up before the busy timeout');
      cache.close();
    } finally {
      holder.proc.stdin.end();
    }
    assert.equal(await exitCode(holder), 0, holder.stderr);
  });
});

/** The value of float16 bits `h`, from the IEEE 754 definition (independent of util/half.ts). */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * 2 ** -24 : sign * 2 ** (e - 15) * (1 + m / 1024);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const bitsOf = (x: number): number => ((f32[0] = x), u32[0]!);
const floatOf = (bits: number): number => ((u32[0] = bits), f32[0]!);

describe('float16 conversion (util/half.ts)', () => {
  // Mismatches are collected and compared once: an assert per value would take seconds.
  test('every float16 converts to its exact value and back to the same bits', () => {
    const wrong: string[] = [];
    for (let h = 0; h < 0x10000; h++) {
      const value = floatOf(floatBitsFromHalf(h));
      const expected = halfValue(h);
      if (Number.isNaN(expected) ? !Number.isNaN(value) : !Object.is(value, expected) || halfFromFloatBits(floatBitsFromHalf(h)) !== h) {
        wrong.push(`half ${h.toString(16)}: ${value} vs ${expected}`);
      }
    }
    assert.deepEqual(wrong, []);
    const all = Uint16Array.from({ length: 0x7c00 }, (_, i) => i);
    assert.deepEqual(toHalf(fromHalf(all)), all);
  });

  test('rounds to nearest, ties to even, at every midpoint between neighbouring float16s', () => {
    const wrong: string[] = [];
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (halfValue(h) + halfValue(h + 1)) / 2; // 12 significant bits: exactly a float32
      const even = h % 2 === 0 ? h : h + 1;
      for (const sign of [0, 0x8000]) {
        const bits = bitsOf(sign ? -mid : mid);
        // One float32 step below or above the midpoint (away from zero is +1 in bits, either sign).
        const got = [halfFromFloatBits(bits), halfFromFloatBits(bits - 1), halfFromFloatBits(bits + 1)];
        if (got[0] !== (sign | even) || got[1] !== (sign | h) || got[2] !== (sign | (h + 1))) wrong.push(`between ${h.toString(16)} and the next (sign ${sign}): ${got.map((g) => g.toString(16))}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  test('relative error at most 2^-11 for normal values, absolute at most 2^-25 for subnormal ones', () => {
    const rng = createRng(11);
    let worstRelative = 0;
    let worstAbsolute = 0;
    // Log-uniform over the normal range [2^-14, 65504], either sign; and uniform over the subnormal one.
    const normal = Float32Array.from({ length: 200_000 }, () => (rng() < 0.5 ? -1 : 1) * 2 ** (-14 + rng() * (Math.log2(HALF_MAX) + 14)));
    const tiny = Float32Array.from({ length: 200_000 }, () => (rng() - 0.5) * 2 ** -13);
    const q = roundToHalf(normal);
    const qt = roundToHalf(tiny);
    let offGrid = 0;
    for (let i = 0; i < normal.length; i++) {
      worstRelative = Math.max(worstRelative, Math.abs(q[i]! - normal[i]!) / Math.abs(normal[i]!));
      worstAbsolute = Math.max(worstAbsolute, Math.abs(qt[i]! - tiny[i]!));
      if (!Number.isInteger(qt[i]! * 2 ** 24)) offGrid++;
    }
    assert.equal(offGrid, 0, 'subnormals land on multiples of 2^-24');
    assert.ok(worstRelative <= 2 ** -11, `relative error ${worstRelative}`);
    assert.ok(worstRelative > 2 ** -12, `relative error ${worstRelative}: not rounding at all?`);
    assert.ok(worstAbsolute <= 2 ** -25, `absolute error ${worstAbsolute}`);
    // Past the smallest subnormal's half, to zero, keeping the sign.
    assert.ok(Object.is(roundToHalf(Float32Array.of(-(2 ** -26)))[0], -0));
    assert.equal(roundToHalf(Float32Array.of(2 ** -25 * 1.01))[0], 2 ** -24);
  });

  test('keeps values float16 cannot hold instead of turning them into Infinity', () => {
    const values = Float32Array.of(HALF_MAX, 65519, 65520, -70_000, 1e30, Infinity, -Infinity, NaN, 0.1);
    const rounded = roundToHalf(values);
    assert.deepEqual([...rounded.subarray(0, 8)], [HALF_MAX, HALF_MAX, 65520, -70_000, Math.fround(1e30), Infinity, -Infinity, NaN]);
    assert.equal(rounded[8], halfValue(0x2e66), '0.1 rounds to the nearest float16');
    // toHalf itself follows IEEE: past HALF_MAX + half an ulp is infinity.
    assert.deepEqual([...toHalf(Float32Array.of(65519, 65520, -1e6))], [0x7bff, 0x7c00, 0xfc00]);
    assert.equal(toHalfExact(Float32Array.of(1, 65520)), undefined);
    assert.equal(toHalfExact(Float32Array.of(0.1)), undefined);
    assert.deepEqual(toHalfExact(Float32Array.of(1, -2, HALF_MAX, 2 ** -24)), Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001));
    // In place, as extract.ts rounds cache hits.
    const v = Float32Array.of(0.1, 3);
    assert.equal(roundToHalf(v, v), v);
    assert.deepEqual(v, Float32Array.of(halfValue(0x2e66), 3));
  });
});

/** A 1280-float vector like a ReLU6 backbone's (about a third zeros), seeded. */
function seededVector(rng: () => number, dim = 1280): Float32Array {
  return roundToHalf(Float32Array.from({ length: dim }, () => (rng() < 0.3 ? 0 : rng() * 6)));
}

/** The raw row, as the file holds it. */
function rawRow(path: string, backbone: string, image: string, variant = ''): { encoding: string; bytes: number; last_used: number } | undefined {
  const raw = new Database(path, { readonly: true });
  try {
    return raw
      .prepare<[string, string, string], { encoding: string; bytes: number; last_used: number }>('SELECT encoding, length(vector) AS bytes, last_used FROM features WHERE backbone = ? AND image = ? AND variant = ?')
      .get(backbone, image, variant);
  } finally {
    raw.close();
  }
}

const T0 = 1_800_000_000;
const DAY = 86_400;

/** A cache whose clock the test moves. */
function clocked(path: string, start = T0): { cache: FeatureCache; clock: { now: number } } {
  const clock = { now: start };
  return { cache: FeatureCache.open(path, { now: () => clock.now }), clock };
}

describe('FeatureCache float16 rows, last use and names', () => {
  test('stores float16-exact vectors in half the bytes and everything else as float32, bit for bit', async () => {
    const path = await freshPath();
    const cache = FeatureCache.open(path);
    const rng = createRng(1);
    const half = seededVector(rng);
    const unrounded = Float32Array.from({ length: 1280 }, () => rng() * 6);
    const huge = Float32Array.from(half);
    huge[5] = 70_000;
    cache.putMany([
      { key: { backbone: 'bb', image: imageId(0) }, vector: half },
      { key: { backbone: 'bb', image: imageId(1) }, vector: unrounded },
      { key: { backbone: 'bb', image: imageId(2) }, vector: roundToHalf(huge) },
    ]);
    cache.close();
    assert.deepEqual(rawRow(path, 'bb', imageId(0)), { encoding: 'f16', bytes: 2560, last_used: rawRow(path, 'bb', imageId(0))!.last_used });
    assert.equal(rawRow(path, 'bb', imageId(1))?.encoding, 'f32');
    assert.equal(rawRow(path, 'bb', imageId(2))?.encoding, 'f32', 'a value past 65504 keeps its row float32');
    const reopened = FeatureCache.open(path, { readonly: true });
    const got = reopened.getMany('bb', [imageId(0), imageId(1), imageId(2)]);
    assert.deepEqual(bytesOf(got.get(imageId(0))!), bytesOf(half));
    assert.deepEqual(bytesOf(got.get(imageId(1))!), bytesOf(unrounded));
    assert.equal(got.get(imageId(2))![5], 70_000);
    reopened.close();
  });

  test('a real photo: the vector a run computes is the one a rerun reads from the cache, and names its backbone', async () => {
    const path = await freshPath();
    const backbone = await Backbone.load('mobilenet_v2');
    try {
      const photos = [SHOE_1, SHOE_2, HAT_1, DRESS_1];
      // The backbone's own float32 output for the same pixels.
      const raw = await backbone.features(await Promise.all(photos.map((p) => loadRgb({ name: p, data: readFileSync(p) }, backbone.preprocessing))));
      const cache = FeatureCache.open(path);
      const fresh = await extractFeatures(backbone, photos, { cache });
      const rerun = await extractFeatures(backbone, photos, { cache });
      const uncached = await extractFeatures(backbone, photos);
      assert.equal(fresh.computed, 4);
      assert.equal(rerun.cached, 4);
      for (let i = 0; i < photos.length; i++) {
        const v = fresh.features[i]!.vector;
        assert.deepEqual(bytesOf(rerun.features[i]!.vector), bytesOf(v), photos[i]);
        assert.deepEqual(bytesOf(uncached.features[i]!.vector), bytesOf(v), photos[i]);
        assert.ok(toHalfExact(v), 'rounded to float16');
        const exact = raw.data.subarray(i * raw.dims, (i + 1) * raw.dims);
        assert.ok(v.some((x, j) => x !== exact[j]), 'differs from the float32 features');
        v.forEach((x, j) => assert.ok(Math.abs(x - exact[j]!) <= Math.abs(exact[j]!) * 2 ** -11 + 2 ** -25, `dim ${j}: ${x} vs ${exact[j]}`));
        assert.equal(rawRow(path, backbone.fingerprint, fresh.features[i]!.hash)?.encoding, 'f16');
      }
      const usage = cache.usage();
      assert.equal(usage.backbones.length, 1);
      assert.deepEqual(
        { ...usage.backbones[0]!, lastUsed: undefined, bytes: undefined },
        { fingerprint: backbone.fingerprint, name: 'mobilenet_v2', origin: 'mobilenet_v2', label: 'mobilenet_v2', rows: 4, f16Rows: 4, variants: [''], dims: [1280], bytes: undefined, lastUsed: undefined },
      );
      cache.close();
    } finally {
      await backbone.release();
    }
  });

  test('a lookup moves the last use of exactly the rows it returns, at most once per resolution', async () => {
    const path = await freshPath();
    const { cache, clock } = clocked(path);
    const rng = createRng(2);
    cache.putMany([0, 1, 2].map((i) => ({ key: { backbone: 'bb', image: imageId(i) }, vector: seededVector(rng, 16) })));
    cache.putMany([{ key: { backbone: 'bb', image: imageId(0), variant: 'flip-h' }, vector: seededVector(rng, 16) }]);
    const lastUsed = (i: number, variant = ''): number | undefined => rawRow(path, 'bb', imageId(i), variant)?.last_used;
    assert.equal(lastUsed(0), T0, 'set on insert');

    clock.now = T0 + LAST_USED_RESOLUTION_S - 1;
    assert.equal(cache.getMany('bb', [imageId(0), imageId(1)]).size, 2);
    assert.equal(lastUsed(0), T0, 'not rewritten within the resolution');

    clock.now = T0 + 2 * DAY;
    assert.equal(cache.getMany('bb', [imageId(0), imageId(1), imageId(9)]).size, 2);
    assert.deepEqual([lastUsed(0), lastUsed(1), lastUsed(2), lastUsed(0, 'flip-h')], [T0 + 2 * DAY, T0 + 2 * DAY, T0, T0]);
    clock.now = T0 + 3 * DAY;
    assert.ok(cache.get({ backbone: 'bb', image: imageId(2) }));
    assert.equal(lastUsed(2), T0 + 3 * DAY, 'get too');
    cache.close();

    // A read-only connection reads without writing.
    const readonly = FeatureCache.open(path, { readonly: true, now: () => T0 + 9 * DAY });
    assert.equal(readonly.getMany('bb', [imageId(0)]).size, 1);
    readonly.close();
    assert.equal(lastUsed(0), T0 + 2 * DAY);
  });

  test('reads float32 rows of a file from before float16 rows, and counts them as used at the upgrade', async () => {
    const path = await freshPath();
    // Schema version 2 as released: the features and runs tables, vectors as float32.
    const old = new Database(path);
    old.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
      CREATE TABLE features (backbone TEXT NOT NULL, image TEXT NOT NULL, variant TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (backbone, image, variant)) STRICT;
      CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL, test_dir TEXT, base TEXT NOT NULL, options TEXT NOT NULL, fingerprint TEXT NOT NULL, metrics TEXT NOT NULL, timings TEXT NOT NULL, out TEXT) STRICT;
      INSERT INTO meta VALUES ('schema_version', '2');
      INSERT INTO runs (created_at, kind, data, base, options, fingerprint, metrics, timings) VALUES ('2024-01-01T00:00:00Z', 'train', 'photos', 'mobilenet_v2', '{}', 'f', '{}', '{}');`);
    const insert = old.prepare('INSERT INTO features VALUES (?, ?, ?, ?, ?)');
    for (let i = 0; i < 3; i++) {
      const v = expectedVector('old', i, 1280);
      insert.run('old', imageId(i), '', 1280, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
    old.close();

    const upgradedAt = Math.floor(Date.now() / 1000);
    const { cache, clock } = clocked(path, upgradedAt);
    const found = cache.getMany('old', [imageId(0), imageId(1)]);
    for (let i = 0; i < 2; i++) assert.deepEqual(bytesOf(found.get(imageId(i))!), bytesOf(expectedVector('old', i, 1280)));
    assert.deepEqual(cache.get({ backbone: 'old', image: imageId(2) }), expectedVector('old', 2, 1280));
    cache.putMany([{ key: { backbone: 'new', image: imageId(0) }, vector: seededVector(createRng(3)) }]);
    assert.equal(rawRow(path, 'old', imageId(0))?.encoding, 'f32');
    assert.equal(rawRow(path, 'new', imageId(0))?.encoding, 'f16');
    const usage = cache.usage();
    assert.deepEqual(usage.backbones.map((b) => [b.fingerprint, b.label, b.rows, b.f16Rows]), [['new', undefined, 1, 1], ['old', undefined, 3, 0]]);

    // The look-ups above stamped the old rows with their use; back to 0 ("before last-used
    // times") by hand, to test how such rows age: as if used when the file was upgraded.
    const raw = new Database(path);
    raw.prepare("UPDATE features SET last_used = 0 WHERE backbone = 'old'").run();
    raw.close();
    assert.equal(cache.prune({ olderThanDays: 1 }).rows, 0, 'used at the upgrade, a moment ago');
    clock.now = upgradedAt + 2 * DAY;
    assert.equal(cache.getMany('new', [imageId(0)]).size, 1);
    const pruned = cache.prune({ olderThanDays: 1 });
    assert.deepEqual(pruned.backbones.map((b) => [b.fingerprint, b.rows]), [['old', 3]]);
    cache.close();
    const runs = RunStore.open(path);
    assert.equal(runs.listRuns().length, 1, 'the run history survives');
    runs.close();
  });
});

/** A cache of two named backbones, 150 rows each of 1280 floats, used one a day apart (image i at day i % 10). */
async function pruneFixture(): Promise<{ path: string; cache: FeatureCache; clock: { now: number } }> {
  const path = await freshPath();
  const { cache, clock } = clocked(path);
  const rng = createRng(4);
  for (const bb of ['aaaa1111', 'bbbb2222']) {
    cache.nameBackbone(bb, bb === 'aaaa1111' ? 'mobilenet_v2' : 'custom', bb === 'aaaa1111' ? 'mobilenet_v2' : '/models/my net.onnx');
    for (let day = 0; day < 10; day++) {
      clock.now = T0 + day * DAY;
      cache.putMany(Array.from({ length: 15 }, (_, k) => ({ key: { backbone: bb, image: imageId(day * 15 + k) }, vector: seededVector(rng) })));
    }
  }
  const runs = RunStore.open(path);
  runs.recordRun({ kind: 'train', data: 'photos', testDir: null, base: 'mobilenet_v2', options: {}, fingerprint: 'f', metrics: { top1: 0.9 }, timings: {}, out: null });
  runs.close();
  // Closed and opened again, as by a later command: the write-ahead log is folded into the file.
  cache.close();
  clock.now = T0 + 10 * DAY;
  return { path, cache: FeatureCache.open(path, { now: () => clock.now }), clock };
}

function runsIn(path: string): number {
  const runs = RunStore.open(path);
  try {
    return runs.listRuns().length;
  } finally {
    runs.close();
  }
}

const fileSize = (path: string): number => databaseBytes(path).file + databaseBytes(path).wal;

describe('FeatureCache.prune', () => {
  test('by backbone name or fingerprint prefix: its rows go, the others and the run history stay, the file shrinks', async () => {
    const { path, cache } = await pruneFixture();
    const usage = cache.usage();
    assert.deepEqual(usage.backbones.map((b) => [b.label, b.rows, b.variants]), [['mobilenet_v2', 150, ['']], ['my net.onnx', 150, ['']]]);
    const estimate = usage.backbones.reduce((n, b) => n + b.bytes, 0);
    assert.ok(Math.abs(estimate - usage.fileBytes) < 0.1 * usage.fileBytes, `estimated ${estimate} bytes of rows in a ${usage.fileBytes}-byte file`);

    const before = fileSize(path);
    const dry = cache.prune({ backbone: 'mobilenet_v2', dryRun: true });
    assert.deepEqual([dry.rows, dry.backbones.map((b) => b.label), dry.vacuum], [150, ['mobilenet_v2'], undefined]);
    assert.ok(dry.bytesAfter < before * 0.6, `estimated ${dry.bytesAfter} of ${before}`);
    assert.equal(cache.count(), 300, 'a dry run deletes nothing');
    assert.equal(fileSize(path), before);

    const pruned = cache.prune({ backbone: 'mobilenet_v2' });
    assert.deepEqual([pruned.rows, pruned.rowsLeft, pruned.vacuum], [150, 150, { ok: true }]);
    assert.equal(cache.count('aaaa1111'), 0);
    assert.equal(cache.count('bbbb2222'), 150);
    assert.equal(pruned.bytesAfter, fileSize(path));
    assert.ok(pruned.bytesAfter < before * 0.6, `${before} -> ${pruned.bytesAfter} bytes`);
    assert.ok(Math.abs(pruned.bytesAfter - dry.bytesAfter) < 0.1 * before, `estimated ${dry.bytesAfter}, got ${pruned.bytesAfter}`);

    assert.equal(cache.prune({ backbone: 'BBBB22', dryRun: true }).rows, 150, 'a fingerprint prefix, any case');
    assert.equal(cache.prune({ backbone: 'my net.onnx' }).rows, 150, "a custom network by its file's name");
    assert.equal(cache.count(), 0);
    assert.deepEqual(cache.usage().backbones, []);
    cache.close();
    assert.equal(runsIn(path), 1);
  });

  test('by age: rows not used for the given days', async () => {
    const { path, cache, clock } = await pruneFixture();
    // Rows of days 0-9; now is day 10. A look-up of day-0 rows counts as a use.
    cache.getMany('aaaa1111', Array.from({ length: 15 }, (_, k) => imageId(k)));
    const pruned = cache.prune({ olderThanDays: 5.5 });
    // Days 0-4 are older than 5.5 days, except the 15 rows just used.
    assert.deepEqual(pruned.backbones.map((b) => [b.label, b.rows]), [['mobilenet_v2', 60], ['my net.onnx', 75]]);
    assert.equal(cache.count('aaaa1111'), 90);
    assert.equal(cache.prune({ backbone: 'mobilenet_v2', olderThanDays: 3 }).rows, 30, 'both: that backbone, that old');
    clock.now += 100 * DAY;
    assert.equal(cache.prune({ olderThanDays: 1000 }).rows, 0);
    cache.close();
    assert.equal(runsIn(path), 1);
  });

  test('by size: least recently used rows until the file is at most --max-mb, then VACUUM', async () => {
    const { path, cache } = await pruneFixture();
    const before = fileSize(path);
    const target = before / 2 / MB;
    const dry = cache.prune({ maxMb: target, dryRun: true });
    assert.equal(cache.count(), 300);
    const pruned = cache.prune({ maxMb: target });
    assert.equal(pruned.reachedMaxMb, true);
    assert.ok(fileSize(path) <= target * MB, `${fileSize(path)} bytes > ${target} MB`);
    assert.ok(fileSize(path) > target * MB * 0.8, `${fileSize(path)} bytes: deleted far more than needed`);
    assert.ok(Math.abs(pruned.rows - dry.rows) <= 10, `dry run ${dry.rows}, deleted ${pruned.rows}`);
    // Kept: the most recently used rows (the later days) of either backbone.
    const raw = new Database(path, { readonly: true });
    const kept = raw.prepare<[], { oldest: number; rows: number }>('SELECT min(last_used) AS oldest, count(*) AS rows FROM features').get()!;
    raw.close();
    assert.equal(kept.rows, 300 - pruned.rows);
    assert.ok(kept.oldest >= T0 + Math.floor(pruned.rows / 30) * DAY, `kept a row of day ${(kept.oldest - T0) / DAY} after deleting ${pruned.rows}`);
    // Already under: nothing to do.
    assert.equal(cache.prune({ maxMb: target }).rows, 0);
    // Scoped to one backbone, the other's rows are never deleted even when the target needs it.
    const scoped = cache.prune({ backbone: 'mobilenet_v2', maxMb: 0 });
    assert.equal(scoped.reachedMaxMb, false);
    assert.equal(cache.count('aaaa1111'), 0);
    assert.ok(cache.count('bbbb2222') > 0);
    cache.close();
    assert.equal(runsIn(path), 1);
  });

  test('refuses no selector and an unknown backbone with one line', async () => {
    const { cache } = await pruneFixture();
    assertHeadswapError(() => cache.prune({}), /needs at least one of backbone, olderThanDays, maxMb/);
    assertHeadswapError(() => cache.prune({ backbone: 'resnet50' }), /^no cached backbone matches 'resnet50'; 'headswap cache' lists them/);
    assertHeadswapError(() => cache.prune({ backbone: 'aaa' }), /no cached backbone matches 'aaa'/); // prefixes need 4 digits
    assert.equal(cache.count(), 300);
    cache.close();
  });
});

describe('cacheSizeWarning', () => {
  test('one line past HEADSWAP_CACHE_MAX_MB, naming the prune that fixes it; nothing under it or unset', async (t) => {
    const saved = process.env.HEADSWAP_CACHE_MAX_MB;
    t.after(() => (saved === undefined ? delete process.env.HEADSWAP_CACHE_MAX_MB : (process.env.HEADSWAP_CACHE_MAX_MB = saved)));
    const { path, cache } = await pruneFixture();
    cache.close();
    const root = join(path, '..');
    const size = fileSize(path);
    delete process.env.HEADSWAP_CACHE_MAX_MB;
    assert.equal(cacheSizeWarning(root), undefined);
    process.env.HEADSWAP_CACHE_MAX_MB = String((size + 1) / MB);
    assert.equal(cacheSizeWarning(root), undefined);
    process.env.HEADSWAP_CACHE_MAX_MB = '0.5';
    assert.equal(
      cacheSizeWarning(root),
      `feature cache is ${(size / MB).toFixed(1)} MB, over HEADSWAP_CACHE_MAX_MB=0.5; 'headswap cache prune --max-mb 0.5 --cache-dir ${root}' frees it`,
    );
    assert.equal(cacheSizeWarning(join(root, 'nothing-here')), undefined, 'no file, no warning');
    process.env.HEADSWAP_CACHE_MAX_MB = 'lots';
    assert.match(cacheSizeWarning(root) ?? '', /^HEADSWAP_CACHE_MAX_MB='lots' is not a size in MB; set it to a number such as 500, or unset it$/);
  });
});
