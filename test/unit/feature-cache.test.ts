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
import { HeadswapError } from '../../src/errors.js';
import { databasePath } from '../../src/runtime/download.js';
import { FeatureCache, type FeatureEntry, type FeatureKey } from '../../src/features/cache.js';
import { expectedVector, imageId } from '../helpers/cache-writer.js';

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
