import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { databasePath } from '../../src/runtime/download.js';
import { createRng } from '../../src/util/random.js';
import { crashIteration, makeReference, type KillMode, type Reference } from '../helpers/crash.js';
import { copySubset } from '../helpers/dataset.js';
import { cacheProblems, modelLeftovers, modelProblems, spawnTrain, type ChildEvent } from '../helpers/train-child.js';

let dir: string;
let data: string;
let ref: Reference;
/** Vectors an uninterrupted cold run computes (photos + the mirror views of the test photos). */
let vectors: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-crash-'));
  data = join(dir, 'photos');
  await copySubset('train', ['hat', 'pants', 'shoes'], 10, data);
  // Batches of 4: the extraction reports progress often enough to be killed in the middle of it.
  ref = await makeReference({ data, cacheDir: join(dir, 'cache'), out: join(dir, 'photos.model'), seed: 5, batchSize: 4 });
  const done = ref.events.find((e) => e.event === 'done');
  vectors = done?.event === 'done' ? done.features.computed : 0;
  assert.ok(vectors >= 30, `reference computed ${vectors} vectors`);
});
after(() => rm(dir, { recursive: true, force: true }));

describe('kill -9 while training', () => {
  // One kill per phase; bench/crash-loop.ts does the same at random points a hundred times.
  const modes: readonly KillMode[] = ['extract', 'head', 'export-model', 'export-swap'];
  for (const mode of modes) {
    it(`${mode}: cache whole, model folder whole or absent, the rerun reproduces the uninterrupted run`, async () => {
      const report = await crashIteration(ref, mode, createRng(modes.indexOf(mode) + 1), { coldShare: 1 });
      assert.deepEqual(report.problems, [], `${mode} (killed in ${report.phase}):\n${report.problems.join('\n')}`);
      assert.equal(report.outcome, 'killed', `${mode}: the run finished before the kill`);
      if (mode === 'extract') {
        assert.match(report.phase, /^extraction features/);
        // Batches committed before the kill stay cached: the rerun resumes instead of starting over.
        assert.ok(report.rerunComputed > 0 && report.rerunComputed < vectors, `rerun computed ${report.rerunComputed} of ${vectors}`);
      }
      if (mode === 'head') assert.match(report.phase, /after extraction/);
      if (mode === 'export-model') {
        assert.ok(report.leftoversAfterKill >= 1, 'the killed export left its temp folder (then swept by the rerun)');
      }
    });
  }
});

describe('two trainings at once on one cache', () => {
  it('both finish with the same result; no corrupted rows; the model folder both write is whole', async () => {
    const cacheDir = join(dir, 'shared-cache');
    // The same output folder too (with --force): the two exports race to put it in place.
    const outs = [join(dir, 'shared.model'), join(dir, 'shared.model')];
    // Cold cache, so every process writes vectors while the others read and write.
    const children = outs.map((out) => spawnTrain({ ...ref.config, cacheDir, out, force: true }));
    const results = await Promise.all(children.map(async (c) => ({ exit: await c.exited(), child: c })));
    for (const { exit, child } of results) {
      assert.equal(exit.code, 0, `a concurrent train failed: ${child.stderr}`);
      const done = child.events.find((e): e is Extract<ChildEvent, { event: 'done' }> => e.event === 'done');
      assert.ok(done);
      assert.deepEqual(done.digest, ref.digest, 'same split, weights, metrics and model as the run alone');
    }
    assert.deepEqual(cacheProblems(cacheDir, ref.dims), []);
    const db = new Database(databasePath(cacheDir), { readonly: true });
    assert.equal(db.prepare('SELECT count(*) FROM features').pluck().get(), vectors, 'one row per image and view, none lost');
    db.close();
    for (const out of new Set(outs)) {
      assert.deepEqual(modelProblems(out, ref.digest.model, ref.digest.classes), []);
      assert.deepEqual(modelLeftovers(out), []);
    }
  });
});
