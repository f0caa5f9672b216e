import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scanDataset } from '../../src/dataset/scan.js';
import { splitDataset } from '../../src/dataset/split.js';
import { train } from '../../src/pipeline/train.js';
import { copySubset } from '../helpers/dataset.js';
import { digestOf, spawnTrain, type ChildConfig, type ChildEvent, type RunDigest } from '../helpers/train-child.js';

let dir: string;
let config: ChildConfig;

async function inChild(c: ChildConfig): Promise<Extract<ChildEvent, { event: 'done' }>> {
  const child = spawnTrain(c);
  const exit = await child.exited();
  assert.equal(exit.code, 0, child.stderr);
  const done = child.events.find((e): e is Extract<ChildEvent, { event: 'done' }> => e.event === 'done');
  assert.ok(done, child.stderr);
  return done;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-determinism-'));
  const data = join(dir, 'photos');
  await copySubset('train', ['dress', 'hat', 'shoes'], 9, data);
  config = { data, cacheDir: join(dir, 'cache'), out: join(dir, 'a.model'), seed: 11 };
});
after(() => rm(dir, { recursive: true, force: true }));

describe('same data, same seed: the same classifier', () => {
  it('across processes, cache miss vs hit vs no cache: identical split, weights, metrics and model.onnx bytes', async () => {
    // A cold run in a child process, then in this process a run on its cache and one without a cache.
    const cold = await inChild(config);
    assert.equal(cold.features.cached, 0, 'first run: every vector computed');
    const warm = await train({ data: config.data, cacheDir: config.cacheDir, out: join(dir, 'b.model'), seed: config.seed, record: false });
    assert.equal(warm.features.computed, 0, 'second run: every vector from the cache');
    const none = await train({ data: config.data, out: join(dir, 'c.model'), seed: config.seed, noCache: true, record: false });
    assert.equal(none.features.cached, 0);
    const runs: [string, RunDigest][] = [
      ['cache hit, this process', digestOf(warm, config.data)],
      ['no cache, this process', digestOf(none, config.data)],
    ];
    for (const [name, digest] of runs) {
      for (const key of Object.keys(cold.digest) as (keyof RunDigest)[]) {
        assert.deepEqual(digest[key], cold.digest[key], `${name}: ${key} differs from the cold run in another process`);
      }
    }
    assert.match(cold.digest.model, /^[0-9a-f]{64}$/);
    // The comparison can see a difference: another seed gives another split.
    const scanned = await scanDataset(config.data);
    const split = (seed: number): string[] => {
      const s = splitDataset(scanned.files, scanned.classes, { valPct: 10, testPct: 10, seed });
      return [...s.train.map((f) => `train ${f.relPath}`), ...s.validation.map((f) => `validation ${f.relPath}`), ...s.test.map((f) => `test ${f.relPath}`)].sort();
    };
    assert.deepEqual([...cold.digest.split].map((l) => l.split('\t').slice(0, 2).join(' ')).sort(), split(config.seed));
    assert.notDeepEqual(split(config.seed + 1), split(config.seed));
  });
});
