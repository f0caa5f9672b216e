/**
 * Child process for test/feature-cache.test.ts, which needs real separate processes to test
 * crashes and file locking.
 *   write <path> <backbone> <batches> <batchSize> <dim>
 *     putMany one batch after another (batches 0 = until killed), printing "committed <n>" after each.
 *   hold <path>
 *     holds an exclusive write lock on the file, prints "locked", and releases it when stdin closes.
 */
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { FeatureCache } from '../../src/features/cache.js';

/** The image id of the i-th written vector. */
export function imageId(i: number): string {
  return i.toString(16).padStart(64, '0');
}

/** The vector written for image i, so the parent can check contents without sharing memory. */
export function expectedVector(backbone: string, i: number, dim: number): Float32Array {
  let seed = i;
  for (const ch of backbone) seed = (seed * 31 + ch.charCodeAt(0)) % 1_000_003;
  const vector = new Float32Array(dim);
  for (let j = 0; j < dim; j++) vector[j] = Math.sin(seed * 1.618 + j * 0.37) * (j + 1);
  return vector;
}

function write(path: string, backbone: string, batches: number, batchSize: number, dim: number): void {
  const cache = FeatureCache.open(path);
  for (let b = 0; batches === 0 || b < batches; b++) {
    const entries = [];
    for (let i = b * batchSize; i < (b + 1) * batchSize; i++) {
      entries.push({ key: { backbone, image: imageId(i) }, vector: expectedVector(backbone, i, dim) });
    }
    cache.putMany(entries);
    process.stdout.write(`committed ${b + 1}\n`);
  }
  cache.close();
}

function hold(path: string): void {
  const db = new Database(path);
  db.exec('BEGIN EXCLUSIVE');
  process.stdout.write('locked\n');
  // Tied to stdin so the lock goes away even if the parent test dies without killing us.
  process.stdin.on('end', () => db.close());
  process.stdin.resume();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [command, path, backbone, batches, batchSize, dim] = process.argv.slice(2);
  if (command === 'write' && path && backbone && batches && batchSize && dim) {
    write(path, backbone, Number(batches), Number(batchSize), Number(dim));
  } else if (command === 'hold' && path) {
    hold(path);
  } else {
    throw new Error(`usage: cache-writer.ts write <path> <backbone> <batches> <batchSize> <dim> | hold <path>`);
  }
}
