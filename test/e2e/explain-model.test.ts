import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { ModelExplainer } from '../../src/explain/cam.js';
import { sniffFormat } from '../../src/image/sniff.js';
import { train } from '../../src/pipeline/train.js';
import type { ErrorBody } from '../../src/server/api-types.js';
import { packagePath } from '../../src/util/paths.js';
import { assertOneLineError } from '../helpers/assert.js';
import { copySubset } from '../helpers/dataset.js';
import { HAT_1, SHOE_1 } from '../helpers/images.js';
import { startHeadswap, type RunningServer } from '../helpers/serve.js';

/**
 * `explain --model` end to end on a model with every complication at once: an ensemble of the two
 * bundled backbones, mirror averaging inside the graph and a hidden layer (so Grad-CAM), trained
 * on a few real clothing7 photos.
 */

const CLASSES = ['hat', 'shoes', 't-shirt'];
// The real entry point users run, on the built package (npm test builds it first).
const BIN = packagePath('bin', 'headswap.js');
let dir: string;
let modelDir: string;
let server: RunningServer;

function headswap(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, HEADSWAP_CACHE: join(dir, 'cache') }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

before(async () => {
  assert.ok(existsSync(packagePath('dist', 'cli', 'main.js')), 'run `npm run build` before this test');
  dir = await mkdtemp(join(tmpdir(), 'headswap-explain-model-'));
  await copySubset('train', CLASSES, 8, join(dir, 'photos'));
  modelDir = join(dir, 'photos.model');
  await train({ data: join(dir, 'photos'), out: modelDir, quality: 'fast', head: { hidden: 32 }, cacheDir: join(dir, 'cache'), record: false, seed: 0 });
  server = await startHeadswap({ dataDir: join(dir, 'server'), models: [modelDir], cacheDir: join(dir, 'cache'), threads: 1 });
});
after(async () => {
  await server?.app.close();
  await rm(dir, { recursive: true, force: true });
});

describe('explain --model on an ensemble with mirror averaging and a hidden layer', () => {
  it('every view of every member reproduces its logits; members average to the model\'s probability', async () => {
    const explainer = await ModelExplainer.load(modelDir, { threads: 1 });
    try {
      assert.deepEqual(explainer.backbones, ['mobilenet_v2', 'mobilenet_edgetpu']);
      const e = await explainer.explain(await explainer.loadImage(HAT_1), CLASSES);
      assert.equal(e.tta, true);
      assert.equal(e.method, 'grad-cam');
      for (const c of e.classes) {
        assert.equal(c.members.length, 2);
        for (const m of c.members) {
          assert.deepEqual(m.views.map((v) => v.mirrored), [false, true]);
          for (const v of m.views) {
            const mean = v.map.data.reduce((a, b) => a + b, 0) / v.map.data.length;
            assert.ok(Math.abs(mean + v.bias - v.logit) < 1e-4, `${c.label} ${m.backbone}: ${mean} + ${v.bias} vs ${v.logit}`);
          }
        }
        const average = c.members.reduce((s, m) => s + m.probability, 0) / c.members.length;
        assert.ok(Math.abs(average - c.probability) < 1e-4, `${c.label}: members ${average} vs model ${c.probability}`);
      }
    } finally {
      await explainer.release();
    }
  });

  it('the CLI writes the class picture beside the layer sheet and prints its path and the classes', async () => {
    const out = join(dir, 'shoe.png');
    const r = headswap('explain', SHOE_1, '--model', modelDir, '--class', 'hat', '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const classes = join(dir, 'shoe.classes.png');
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.some((l) => l.startsWith(`${classes} (`)), r.stdout);
    assert.ok(lines.includes(out.replace(/\.png$/, '.html')) || lines.some((l) => l.startsWith(out)), r.stdout);
    assert.match(r.stdout, /class maps \(Grad-CAM.*mirror averaged\):\n {2}\S+ \d+\.\d% \(predicted\): mobilenet_v2 \d+\.\d%, mobilenet_edgetpu/);
    assert.match(r.stdout, /\n {2}hat \d+\.\d%/);
    for (const file of [out, classes]) assert.equal(sniffFormat(await readFile(file)), 'png', file);
    const meta = await sharp(classes).metadata();
    // Three columns (the ensemble and its two members) of 224-pixel tiles, a row per class and one for the photo.
    assert.ok(meta.width! > 3 * 224 && meta.height! > 3 * 224, `${meta.width}x${meta.height}`);
  });

  it('the CLI refuses an unknown class and a folder without headswap.json in one line', () => {
    assertOneLineError(headswap('explain', SHOE_1, '--model', modelDir, '--class', 'cap'), /class 'cap' is not one of the model's classes: hat, shoes, t-shirt/);
    assertOneLineError(headswap('explain', SHOE_1, '--model', join(dir, 'photos')), /photos: has no headswap\.json/);
  });

  it('POST /v1/models/:id/explain answers a PNG overlay for the top class, and JSON maps for ?class=', async () => {
    const photo = await readFile(SHOE_1);
    const post = (query: string): Promise<Response> =>
      fetch(`${server.url}/v1/models/photos/explain${query}`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photo });
    const png = await post('');
    assert.equal(png.status, 200, await png.clone().text());
    assert.equal(png.headers.get('content-type'), 'image/png');
    const top = decodeURIComponent(png.headers.get('x-headswap-class') ?? '');
    assert.ok(CLASSES.includes(top), top);
    const meta = await sharp(Buffer.from(await png.arrayBuffer())).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ['png', 224, 224]);

    const res = await post('?format=json&class=hat');
    assert.equal(res.status, 200);
    const body = (await res.json()) as { class: string; predicted: string; probability: number; method: string; tta: boolean; map: { width: number; height: number; values: number[] }; members: { backbone: string; map: { values: number[] } }[] };
    assert.equal(body.class, 'hat');
    assert.equal(body.predicted, top);
    assert.deepEqual([body.method, body.tta, body.map.width, body.map.height, body.map.values.length], ['grad-cam', true, 7, 7, 49]);
    assert.deepEqual(body.members.map((m) => m.backbone), ['mobilenet_v2', 'mobilenet_edgetpu']);
    assert.ok(body.probability > 0 && body.probability < 1);
    // The same photo through the library gives the same map.
    const explainer = await ModelExplainer.load(modelDir, { threads: 1 });
    try {
      const e = await explainer.explain(await explainer.loadImage(SHOE_1), ['hat']);
      const hat = e.classes.find((c) => c.label === 'hat')!;
      hat.map.data.forEach((v, i) => assert.ok(Math.abs(v - body.map.values[i]!) < 1e-5, `cell ${i}`));
    } finally {
      await explainer.release();
    }

    const refused = await post('?class=cap');
    assert.equal(refused.status, 400);
    assert.match(((await refused.json()) as ErrorBody).error, /class 'cap' is not a class of model 'photos'; its classes: hat, shoes, t-shirt/);
    const notImage = await fetch(`${server.url}/v1/models/photos/explain`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: 'not a photo' });
    assert.equal(notImage.status, 415);
  });
});
