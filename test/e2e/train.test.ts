import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Backbone } from '../../src/backbone/backbone.js';
import { HeadswapError } from '../../src/errors.js';
import { loadClassifier } from '../../src/export/classifier.js';
import { openRunStore } from '../../src/runs/store.js';
import { extractAugmented, extractFeatures } from '../../src/features/extract.js';
import { diffRuns } from '../../src/runs/diff.js';
import { predictRows } from '../../src/head/train.js';
import { flipSpec } from '../../src/image/augment.js';
import { predictFiles } from '../../src/predict/files.js';
import { train, type TrainResult } from '../../src/pipeline/train.js';
import { QUALITY } from '../../src/pipeline/quality.js';
import { pickRecipe } from '../../src/pipeline/auto.js';
import sharp from 'sharp';
import { packagePath } from '../../src/util/paths.js';
import { copySubset } from '../helpers/dataset.js';
import { writeBrokenFiles } from '../helpers/images.js';

const CLASSES = ['hat', 'pants', 'shoes'];
/** The first run's recipe, which the tests of its mechanics repeat: one backbone, the views and the mirror. */
const FIRST = { base: 'mobilenet_v2', quality: 'balanced' } as const;
let dir: string;
let data: string;
let testDir: string;
let cacheDir: string;
let first: TrainResult;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-train-'));
  data = join(dir, 'photos');
  testDir = join(dir, 'held-out');
  cacheDir = join(dir, 'cache');
  await copySubset('train', CLASSES, 10, data);
  await copySubset('test', CLASSES, 8, testDir);
  await writeBrokenFiles(join(data, 'hat'));
  first = await train({ ...FIRST, data, testDir, cacheDir, seed: 3 });
});
after(() => rm(dir, { recursive: true, force: true }));

describe('train end to end on real photos', () => {
  it('learns the classes and evaluates on the separate test folder', () => {
    assert.deepEqual(first.classes, CLASSES);
    assert.equal(first.evaluation.count, 24);
    assert.ok(first.evaluation.top1 >= 0.75, `top-1 ${first.evaluation.top1}`);
    assert.equal(first.evaluation.confusion.length, 3);
    assert.deepEqual(first.evaluation.topK.map((t) => t.k), [1, 2, 3]);
    const [lo, hi] = first.evaluation.top1Ci95;
    assert.ok(lo < first.evaluation.top1 && first.evaluation.top1 < hi || first.evaluation.top1 === 1);
    for (const c of CLASSES) assert.equal(first.counts[c]!.test, 8);
  });

  it('skips broken files with a reason and counts them', () => {
    const reasons = new Map(first.skipped.map((s) => [s.path.split('/').pop(), s.reason]));
    assert.match(reasons.get('zero-byte.jpg') ?? '', /empty file/);
    assert.match(reasons.get('truncated.jpg') ?? '', /cannot decode/);
    assert.match(reasons.get('not-an-image.jpg') ?? '', /not a readable image/);
    assert.match(reasons.get('bomb.png') ?? '', /over the limit/);
    const used = Object.values(first.counts).reduce((a, c) => a + c.train + c.validation, 0);
    assert.equal(used, 30, 'all 30 real photos used, none of the 4 broken ones');
  });

  it('writes one model folder whose ONNX graph matches the in-process pipeline', async () => {
    const out = first.out!;
    assert.equal(out, `${data}.model`);
    assert.deepEqual((await readdir(out)).sort(), ['headswap.json', 'labels.json', 'model.onnx']);
    assert.deepEqual(JSON.parse(await readFile(join(out, 'labels.json'), 'utf8')), CLASSES);
    const meta = JSON.parse(await readFile(join(out, 'headswap.json'), 'utf8'));
    assert.equal(meta.backbone.id, 'mobilenet_v2');
    assert.equal(meta.training.seed, 3);
    assert.equal(meta.metrics.top1, first.evaluation.top1);
    assert.match(meta.dataset.fingerprint, /^[0-9a-f]{64}$/);

    const files = (await Promise.all(CLASSES.map(async (c) => (await readdir(join(testDir, c))).map((f) => join(testDir, c, f))))).flat();
    // 'balanced' trains on augmented views and averages each photo with its mirror image, inside
    // the exported graph too.
    assert.equal(meta.training.quality.name, 'balanced');
    assert.equal(meta.training.quality.tta, true);
    assert.equal(meta.training.quality.views.length, 4);
    // ... and adds the averages of a 3x3 grid of regions to the global average of the last map.
    assert.deepEqual(meta.backbone.feature, { tensor: '627', pooling: 'avg-nchw', regions: { rows: 3, cols: 3 } });
    assert.equal(meta.backbone.featureDims, 1280 * 10);
    const backbone = await Backbone.load('mobilenet_v2', { regions: QUALITY.balanced.regions });
    const extracted = await extractFeatures(backbone, files);
    const mirrors = await extractAugmented(backbone, files, [flipSpec()]);
    await backbone.release();
    const inProcess = predictRows(first.head.weights, extracted.features.map((f, i) => ({ vector: f.vector, mirror: mirrors.features[i]!.vector })), true);
    const plain = predictRows(first.head.weights, extracted.features, false);
    assert.ok(plain.some((p, i) => Math.abs(p - inProcess[i]!) > 1e-3), 'the mirror changes the probabilities');

    const classifier = await loadClassifier(out);
    const exported: Float32Array[] = [];
    for await (const p of predictFiles(classifier, [testDir], { batchSize: 5 })) exported.push(p.probabilities);
    await classifier.release();
    assert.equal(exported.length, files.length);
    let maxDiff = 0;
    exported.forEach((p, i) => p.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - inProcess[i * 3 + j]!)))));
    assert.ok(maxDiff <= 1e-4, `max |diff| ${maxDiff}`);
  });

  it('by default chooses among each bundled network and their ensemble by grouped CV, and records why', async () => {
    const r = await train({ data, testDir, cacheDir, out: false, seed: 3 });
    const recipe = r.recipe!;
    assert.deepEqual(recipe.candidates.map((c) => c.name), ['mobilenet_v2', 'mobilenet_edgetpu', 'mobilenet_v2+mobilenet_edgetpu']);
    assert.equal(recipe.chosen.name, pickRecipe(recipe.candidates, 2).chosen.name);
    for (const c of recipe.candidates) {
      assert.equal(c.perFold.length, recipe.folds);
      assert.ok(c.cvTop1 > 0.3 && c.cvTop1 <= 1, `${c.name} ${c.cvTop1}`);
    }
    // What is exported (and scored) is the chosen recipe.
    assert.deepEqual((r.members ?? [r]).map((m) => m.backbone.id), recipe.chosen.name.split('+'));
    assert.equal(r.metadata.training.quality?.name, 'plain');
    assert.equal(r.metadata.training.quality?.chosenBy, 'auto');
    assert.equal(r.metadata.training.quality?.tta, false);
    assert.equal(r.metadata.training.recipe?.chosen, recipe.chosen.name);
    assert.equal(r.metadata.training.recipe?.candidates.length, 3);
    assert.ok((r.timings.autoMs ?? 0) > 0);
  });

  it('near-copies stay on one side of the split and of every fold, and are said', async () => {
    const nc = join(dir, 'near-copies');
    await copySubset('train', CLASSES, 6, nc);
    for (const c of CLASSES) {
      const [photo] = (await readdir(join(nc, c))).sort();
      const src = join(nc, c, photo!);
      const meta = await sharp(src).metadata();
      await sharp(src).jpeg({ quality: 55 }).toFile(join(nc, c, 'zz-again-a.jpg'));
      await sharp(src).resize(Math.round(meta.width! * 0.93)).jpeg({ quality: 80 }).toFile(join(nc, c, 'zz-again-b.jpg'));
    }
    const warnings: string[] = [];
    const r = await train({ data: nc, cacheDir, out: false, seed: 0, cv: 3, base: 'mobilenet_v2', onWarning: (w) => warnings.push(w) });
    assert.ok(r.groups.grouped >= 9, JSON.stringify(r.groups));
    assert.ok((r.groups.reasons.similarity ?? 0) >= 9);
    for (const c of CLASSES) {
      const photo = (await readdir(join(nc, c))).sort()[0]!;
      const splits = new Set(r.files.filter((f) => [photo, 'zz-again-a.jpg', 'zz-again-b.jpg'].some((n) => f.path === join(nc, c, n))).map((f) => f.split));
      assert.equal(splits.size, 1, `${c}: copies in ${[...splits]}`);
    }
    assert.ok(warnings.some((w) => /come in series or near-copies .* the estimate counts each series as one photo/.test(w)), warnings.join('\n'));
    assert.equal(r.crossValidation?.kind, 'random');
    assert.equal(r.crossValidationOrdered?.kind, 'ordered');
    assert.ok(r.crossValidation!.groups < 24);
    const none = await train({ data: nc, cacheDir, out: false, seed: 0, cv: 3, base: 'mobilenet_v2', groupBy: 'none' });
    assert.equal(none.groups.grouped, 0);
    assert.equal(none.crossValidation!.groups, 24);
  });

  it('an ensemble trains one head per backbone and averages them in one model.onnx', async () => {
    const out = join(dir, 'ensemble.model');
    const r = await train({ data, testDir, cacheDir, out, seed: 3, quality: 'fast', base: ['mobilenet_v2', 'mobilenet_edgetpu'] });
    assert.equal(r.members?.length, 2);
    assert.deepEqual(r.members!.map((m) => m.backbone.id), ['mobilenet_v2', 'mobilenet_edgetpu']);
    const meta = JSON.parse(await readFile(join(out, 'headswap.json'), 'utf8'));
    assert.deepEqual(meta.ensemble.members.map((m: { metrics: { top1: number } }) => m.metrics.top1), r.members!.map((m) => m.evaluation.top1));
    assert.equal(meta.metrics.top1, r.evaluation.top1);

    const files = (await Promise.all(CLASSES.map(async (c) => (await readdir(join(testDir, c))).map((f) => join(testDir, c, f))))).flat();
    const perMember: Float32Array[] = [];
    for (const [m, id] of ['mobilenet_v2', 'mobilenet_edgetpu'].entries()) {
      const backbone = await Backbone.load(id, { regions: QUALITY.fast.regions });
      const extracted = await extractFeatures(backbone, files);
      const mirrors = await extractAugmented(backbone, files, [flipSpec()]);
      await backbone.release();
      const rows = extracted.features.map((f, i) => ({ vector: f.vector, mirror: mirrors.features[i]!.vector }));
      perMember.push(predictRows(r.members![m]!.head.weights, rows, true));
    }
    assert.ok(perMember[0]!.some((p, i) => Math.abs(p - perMember[1]![i]!) > 1e-3), 'the two backbones disagree somewhere');
    const inProcess = perMember[0]!.map((p, i) => (p + perMember[1]![i]!) / 2);
    const classifier = await loadClassifier(out);
    const exported: Float32Array[] = [];
    for await (const p of predictFiles(classifier, [testDir], { batchSize: 5 })) exported.push(p.probabilities);
    await classifier.release();
    let maxDiff = 0;
    exported.forEach((p, i) => p.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - inProcess[i * 3 + j]!)))));
    assert.ok(maxDiff <= 1e-4, `max |diff| ${maxDiff}`);
    await assert.rejects(train({ data, testDir, cacheDir, out: false, base: ['mobilenet_v2', 'mobilenet_v2'] }), /named twice/);
    await assert.rejects(train({ data, testDir, cacheDir, out: false, base: ['mobilenet_v2', 'mobilenet_edgetpu'], backbone: { feature: { tensor: '627', pooling: 'avg-nchw' } } }), /would apply to every backbone/);
  });

  it('a second run takes every feature from the cache and reproduces the metrics', async () => {
    const again = await train({ ...FIRST, data, testDir, cacheDir, seed: 3, out: join(dir, 'again.model') });
    assert.equal(again.features.computed, 0);
    assert.equal(again.features.cached, first.features.cached + first.features.computed);
    assert.deepEqual(again.evaluation, first.evaluation);
    const a = await readFile(join(first.out!, 'model.onnx'));
    const b = await readFile(join(again.out!, 'model.onnx'));
    assert.ok(a.equals(b), 'byte-identical model.onnx from the same seed');
  });

  it("quality 'best' trains on cached augmented views; 'plain' exports the graph without the mirror", async () => {
    const best = await train({ ...FIRST, data, testDir, cacheDir, seed: 3, out: false, quality: 'best' });
    const q = best.metadata.training.quality!;
    assert.equal(q.views.length, 11);
    assert.equal(new Set(q.views).size, 11);
    // 30 training photos x 11 views, of which the default's 4 (mirror + crops 0-2) are already
    // cached by the first run, like the plain and mirror vectors: only crops 3-9 are new.
    assert.deepEqual(best.metadata.training.quality!.views.slice(0, 4), first.metadata.training.quality!.views);
    assert.equal(best.features.computed, 30 * 7);
    assert.ok(best.evaluation.top1 >= 0.75, `top-1 ${best.evaluation.top1}`);
    const again = await train({ ...FIRST, data, testDir, cacheDir, seed: 3, out: false, quality: 'best' });
    assert.equal(again.features.computed, 0);
    assert.deepEqual(again.evaluation, best.evaluation);

    const plain = await train({ ...FIRST, data, testDir, cacheDir, seed: 3, out: join(dir, 'plain.model'), quality: 'plain' });
    assert.deepEqual(plain.metadata.training.quality, { name: 'plain', tta: false, views: [] });
    const photo = join(testDir, 'hat', (await readdir(join(testDir, 'hat')))[0]!);
    const classifier = await loadClassifier(plain.out!);
    const [exported] = await classifier.predict([photo]);
    await classifier.release();
    const backbone = await Backbone.load('mobilenet_v2');
    const { features } = await extractFeatures(backbone, [photo]);
    await backbone.release();
    const inProcess = predictRows(plain.head.weights, features, false);
    exported!.probabilities.forEach((v, j) => assert.ok(Math.abs(v - inProcess[j]!) <= 1e-4, `class ${j}: ${v} vs ${inProcess[j]}`));
  });

  it('a cut that is already a vector trains without region features, and says so', async () => {
    // darknet-tiny (a TF.js fixture) cut after its global pooling: 1000 numbers, no map to divide.
    const r = await train({
      data,
      testDir,
      cacheDir,
      out: false,
      quality: 'fast',
      base: packagePath('test', 'fixtures', 'models', 'darknet-tiny'),
      backbone: { feature: { tensor: 'global_average_pooling2d_1', pooling: 'none' } },
    });
    assert.equal(r.backbone.featureDims, 1000);
    assert.equal(r.metadata.backbone.feature.regions, undefined);
    assert.ok(r.warnings.some((w) => /no region features from its cut 'global_average_pooling2d_1'/.test(w)), r.warnings.join('\n'));
  });

  it('refuses an existing output folder unless forced, before any work', async () => {
    await assert.rejects(train({ data, testDir, cacheDir }), (err: unknown) => err instanceof HeadswapError && /already exists; choose another out or pass force: true/.test(err.message));
    const forced = await train({ data, testDir, cacheDir, force: true, seed: 4 });
    assert.equal(forced.out, first.out);
    assert.ok(!(await readdir(dir)).some((f) => f.includes('.tmp-')), 'no temp folders left');
  });

  it('splits one folder into train/validation/test when no test folder is given', async () => {
    const r = await train({ data: testDir, cacheDir, out: false });
    for (const c of CLASSES) {
      const n = r.counts[c]!;
      assert.ok(n.train >= 1 && n.validation >= 1 && n.test >= 1, JSON.stringify(n));
      assert.equal(n.train + n.validation + n.test, 8);
    }
    assert.equal(r.out, undefined);
    assert.ok(!existsSync(`${testDir}.model`));
  });

  it('warns when the same photo is in two classes', async () => {
    const dup = join(dir, 'dup');
    await copySubset('train', ['hat', 'shoes'], 4, dup);
    const hat = (await readdir(join(dup, 'hat')))[0]!;
    await copyFile(join(dup, 'hat', hat), join(dup, 'shoes', 'copy-of-a-hat.jpg'));
    const warnings: string[] = [];
    await train({ data: dup, cacheDir, out: false, onWarning: (w) => warnings.push(w) });
    assert.ok(warnings.some((w) => /same photo is in two classes/.test(w) && w.includes('copy-of-a-hat.jpg')), warnings.join('\n'));
  });

  it('--cv estimates accuracy over folds and every run lands in the history', async () => {
    const r = await train({ ...FIRST, data, testDir, cacheDir, out: false, cv: 3, seed: 3, head: { l2: 0.1 } });
    const cv = r.crossValidation!;
    assert.equal(cv.folds, 3);
    assert.equal(cv.perFold.length, 3);
    const mean = cv.perFold.reduce((a, b) => a + b, 0) / 3;
    assert.ok(Math.abs(mean - cv.top1.mean) < 1e-12);
    assert.ok(cv.top1.mean > 0.5 && cv.top1.std >= 0);
    assert.deepEqual(cv.topK.map((t) => t.k), [1, 2, 3]);
    await assert.rejects(train({ data, testDir, cacheDir, out: false, cv: 11 }), /cv: 11 asks for 11 folds, but class '.*' has only 10 photo/);

    const store = openRunStore(cacheDir);
    const runs = store.listRuns();
    store.close();
    const latest = runs[0]!;
    assert.equal(latest.id, r.runId);
    assert.equal(latest.metrics.top1, r.evaluation.top1);
    assert.equal(latest.metrics.cvTop1, cv.top1.mean);
    assert.equal(latest.options.l2, 0.1);
    const firstRun = runs.find((x) => x.id === first.runId)!;
    const d = diffRuns(firstRun, latest);
    assert.ok(d.sameData);
    assert.deepEqual(d.options.map((o) => o.key).sort(), ['cv', 'l2']);
    const top1 = d.metrics.find((m) => m.key === 'top1')!;
    assert.ok(Math.abs(top1.delta! - (r.evaluation.top1 - first.evaluation.top1)) < 1e-12);
  });

  it('a --test-dir missing classes or holding unknown ones says so in one line each', async () => {
    const partial = join(dir, 'partial-test');
    await copySubset('test', ['shoes'], 3, partial);
    await copySubset('test', ['dress'], 3, partial);
    const warnings: string[] = [];
    const r = await train({ data, testDir: partial, cacheDir, out: false, base: 'mobilenet_v2', onWarning: (w) => warnings.push(w) });
    assert.equal(r.evaluation.count, 3);
    assert.ok(warnings.some((w) => w === `testDir ${partial} has no photos of 'hat', 'pants': the test score covers the other 1 of 3 classes`), warnings.join('\n'));
    assert.equal(warnings.filter((w) => w.includes('dress')).length, 1, warnings.join('\n'));
    assert.ok(!r.skipped.some((s) => s.path.includes('dress')));
  });

  it('bad data folders give one clear line', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const one = join(dir, 'one-class');
    await copySubset('train', ['hat'], 3, one);
    const tiny = join(dir, 'tiny');
    await copySubset('train', ['hat', 'shoes'], 3, tiny);
    await rm(join(tiny, 'shoes'), { recursive: true });
    await copySubset('train', ['shoes'], 1, tiny);
    const cases: [string, RegExp][] = [
      [join(dir, 'missing'), /missing/],
      [empty, /no class sub-folders/],
      [one, /only one class/],
      [tiny, /shoes/],
    ];
    for (const [path, pattern] of cases) {
      await assert.rejects(train({ data: path, cacheDir, out: false }), (err: unknown) => {
        assert.ok(err instanceof HeadswapError, String(err));
        assert.match(err.message, pattern);
        assert.ok(!err.message.includes('\n'));
        return true;
      });
    }
  });
});
