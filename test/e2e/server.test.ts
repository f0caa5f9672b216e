import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { unzipSync } from 'fflate';
import type { BatchClassifyResponse, ClassifyResponse, ErrorBody, JobView, ModelDetail, ModelSummary } from '../../src/server/api-types.js';
import { loadClassifier } from '../../src/export/classifier.js';
import { createServer } from '../../src/server/app.js';
import { sniffFormat } from '../../src/image/sniff.js';
import { train } from '../../src/pipeline/train.js';
import { openRunStore } from '../../src/runs/store.js';
import { packagePath } from '../../src/util/paths.js';
import { expectOneLine } from '../helpers/assert.js';
import { CLOTHING7, copySubset } from '../helpers/dataset.js';
import { DRESS_1, HAT_1, SHOE_1, SHOE_2, pixelBombPng } from '../helpers/images.js';
import { followEvents, formOf, rawRequest, startHeadswap, type RunningServer } from '../helpers/serve.js';

const CLASSES = ['dress', 'hat', 'shoes'];
/** Small on purpose, so the 413 path is cheap to reach; every real photo here is far smaller. */
const MAX_IMAGE_BYTES = 256 * 1024;

let dir: string;
let cacheDir: string;
let modelDir: string;
let dataDir: string;
let server: RunningServer;

async function jsonOf<T>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** A refusal: the expected 4xx status and a one-line JSON `{error}` matching `pattern`. */
async function assertRefused(res: Response, status: number, pattern: RegExp): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text) as ErrorBody;
  assert.deepEqual(Object.keys(body), ['error']);
  assert.match(body.error, pattern);
  assert.ok(!body.error.includes('\n'));
}

function classify(id: string, body: BodyInit, type = 'image/jpeg', query = ''): Promise<Response> {
  return fetch(`${server.url}/v1/models/${id}/classify${query}`, { method: 'POST', headers: { 'content-type': type }, body });
}

/** Files under `root`, relative, sorted. */
async function tree(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath, e.name))).sort();
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-server-'));
  cacheDir = join(dir, 'cache');
  dataDir = join(dir, 'data');
  await copySubset('train', CLASSES, 10, join(dir, 'photos'));
  await copySubset('test', CLASSES, 5, join(dir, 'held-out'));
  modelDir = join(dir, 'clothing.model');
  await train({ data: join(dir, 'photos'), testDir: join(dir, 'held-out'), out: modelDir, cacheDir, seed: 1 });
  server = await startHeadswap({ dataDir, models: [modelDir], cacheDir, compareBudgetSeconds: 1, limits: { maxImageBytes: MAX_IMAGE_BYTES, maxBatchImages: 4, maxQueuedJobs: 1 } });
});
after(async () => {
  await server?.app.close();
  await rm(dir, { recursive: true, force: true });
});

describe('models', () => {
  it('GET /healthz', async () => {
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
    const body = await jsonOf<{ status: string; models: number; jobs: { running: number; queued: number } }>(res);
    assert.equal(body.status, 'ok');
    assert.equal(body.models, 1);
    assert.deepEqual(body.jobs, { running: 0, queued: 0 });
  });

  it('GET /v1/models lists the command-line model with labels, metrics and links', async () => {
    const { models } = await jsonOf<{ models: ModelSummary[] }>(await fetch(`${server.url}/v1/models`));
    assert.equal(models.length, 1);
    const m = models[0]!;
    assert.equal(m.id, 'clothing');
    assert.equal(m.source, 'cli');
    assert.deepEqual(m.labels, CLASSES);
    assert.equal(m.backbone.id, 'mobilenet_v2');
    assert.equal(m.metrics.testPhotos, 15);
    assert.ok(m.metrics.top1 > 0.6, `top-1 ${m.metrics.top1}`);
    assert.deepEqual(m.links, {
      self: '/v1/models/clothing',
      classify: '/v1/models/clothing/classify',
      download: '/v1/models/clothing/download',
      model: '/v1/models/clothing/files/model.onnx',
      report: null,
    });
    assert.ok(!JSON.stringify(m).includes(dir), 'no server path in the listing');
  });

  it('GET /v1/models/:id has the preprocessing the browser needs and the evaluation', async () => {
    const m = await jsonOf<ModelDetail>(await fetch(`${server.url}/v1/models/clothing`));
    assert.equal(m.input.name, 'pixels');
    assert.deepEqual(m.input.size, [224, 224]);
    assert.equal(m.preprocessing.resize, 'crop');
    assert.equal(m.evaluation.confusion.length, 3);
    assert.equal(m.counts.hat?.test, 5);
  });

  it('serves model.onnx byte for byte, and only the known files', async () => {
    const res = await fetch(`${server.url}/v1/models/clothing/files/model.onnx`);
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(await readFile(join(modelDir, 'model.onnx'))));
    await assertRefused(await fetch(`${server.url}/v1/models/clothing/files/report.txt`), 400, /params\/file must be equal to one of the allowed values/);
    await assertRefused(await fetch(`${server.url}/v1/models/clothing/report`), 404, /has no report/);
    await assertRefused(await fetch(`${server.url}/v1/models/nope`), 404, /no model 'nope'/);
  });

  it('GET /v1/models/:id/download is a zip of the model folder', async () => {
    const res = await fetch(`${server.url}/v1/models/clothing/download`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/zip');
    assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename="clothing\.zip"/);
    const files = unzipSync(new Uint8Array(await res.arrayBuffer()));
    assert.deepEqual(Object.keys(files).sort(), ['clothing/headswap.json', 'clothing/labels.json', 'clothing/model.onnx']);
    for (const [name, data] of Object.entries(files)) assert.ok(Buffer.from(data).equals(await readFile(join(modelDir, name.slice('clothing/'.length)))), name);
  });
});

describe('classify', () => {
  it('one image as the raw body: the same top-k as the library', async () => {
    const res = await classify('clothing', await readFile(SHOE_1), 'image/jpeg', '?top=2');
    assert.equal(res.status, 200);
    const body = await jsonOf<ClassifyResponse>(res);
    assert.equal(body.model, 'clothing');
    assert.equal(body.top.length, 2);
    assert.equal(body.top[0]!.label, 'shoes');
    const classifier = await loadClassifier(modelDir);
    try {
      const [expected] = await classifier.predict(SHOE_1, { top: 2 });
      assert.deepEqual(body.top.map((t) => t.label), expected!.top.map((t) => t.label));
      for (const [i, t] of body.top.entries()) assert.ok(Math.abs(t.probability - expected!.top[i]!.probability) < 1e-6);
    } finally {
      await classifier.release();
    }
  });

  it('one image as multipart, and the type is found by content whatever the name and header', async () => {
    const form = new FormData();
    form.append('image', new Blob([await readFile(SHOE_2)], { type: 'text/plain' }), 'notes.txt');
    const body = await jsonOf<ClassifyResponse>(await fetch(`${server.url}/v1/models/clothing/classify`, { method: 'POST', body: form }));
    assert.equal(body.name, 'notes.txt');
    assert.equal(body.top[0]!.label, 'shoes');
    assert.equal(body.top.length, 3, 'top defaults to 5, capped at the class count');
    const octet = await jsonOf<ClassifyResponse>(await classify('clothing', await readFile(SHOE_1), 'application/octet-stream'));
    assert.equal(octet.top[0]!.label, 'shoes');
  });

  it('a batch classifies several images in order, as the library does', async () => {
    const photos = [SHOE_1, HAT_1, DRESS_1];
    const res = await fetch(`${server.url}/v1/models/clothing/classify/batch?top=1`, { method: 'POST', body: await formOf(photos.map((p, i) => [`f${i}`, p] as const)) });
    assert.equal(res.status, 200);
    const body = await jsonOf<BatchClassifyResponse>(res);
    const classifier = await loadClassifier(modelDir);
    try {
      const expected = await classifier.predict(photos, { top: 1 });
      assert.deepEqual(
        body.results.map((r) => [r.name, r.top.length, r.top[0]!.label]),
        expected.map((e) => [basename(e.input), 1, e.top[0]!.label]),
      );
    } finally {
      await classifier.release();
    }
    assert.equal(body.results[0]!.top[0]!.label, 'shoes');
  });

  it('refuses bad requests with a 4xx and a one-line JSON error', async () => {
    const jpeg = await readFile(SHOE_1);
    await assertRefused(await classify('clothing', 'just some text'), 415, /^'request body' is not a photo headswap can read \(JPEG, PNG, WebP, GIF, AVIF, TIFF; checked by content/);
    await assertRefused(await classify('clothing', jpeg.subarray(0, jpeg.length / 3)), 400, /cannot decode image/);
    await assertRefused(await classify('clothing', new Uint8Array(pixelBombPng(20000, 20000)), 'image/png'), 413, /20000x20000 pixels is over the server's limit/);
    const big = Buffer.concat([jpeg, Buffer.alloc(MAX_IMAGE_BYTES)]);
    await assertRefused(await classify('clothing', big), 413, /^request body is larger than the server's limit of 256 KB$/);
    const bigForm = new FormData();
    bigForm.append('image', new Blob([big]), 'big.jpg');
    await assertRefused(await fetch(`${server.url}/v1/models/clothing/classify`, { method: 'POST', body: bigForm }), 413, /^'big.jpg': larger than the server's limit of 256 KB per image$/);
    await assertRefused(await classify('clothing', JSON.stringify({ image: 'x' }), 'application/json'), 415, /send the image as the request body/);
    await assertRefused(await classify('clothing', 'x', 'text/plain'), 415, /send the image/);
    await assertRefused(await classify('clothing', new Uint8Array(0)), 400, /empty file/);
    await assertRefused(await classify('nope', jpeg), 404, /no model 'nope'/);
    await assertRefused(await classify('Bad.Id', jpeg), 400, /params\/id must match pattern/);
    await assertRefused(await classify('clothing', jpeg, 'image/jpeg', '?top=0'), 400, /querystring\/top must be >= 1/);
    await assertRefused(await classify('clothing', jpeg, 'image/jpeg', '?top=three'), 400, /querystring\/top must be integer/);
    await assertRefused(await fetch(`${server.url}/v1/models/clothing/classify`, { method: 'POST', body: await formOf([]) }), 400, /no image in the request/);
    const two = await formOf([
      ['a', SHOE_1],
      ['b', HAT_1],
    ]);
    await assertRefused(await fetch(`${server.url}/v1/models/clothing/classify`, { method: 'POST', body: two }), 413, /too many files: at most 1/);
    const five = await formOf([SHOE_1, SHOE_2, HAT_1, DRESS_1, SHOE_1].map((p, i) => [`f${i}`, p] as const));
    await assertRefused(await fetch(`${server.url}/v1/models/clothing/classify/batch`, { method: 'POST', body: five }), 413, /too many files: at most 4/);
    const malformed = [
      ['multipart/form-data', 'x', /Boundary not found/],
      ['multipart/form-data; boundary=abc', 'garbage', /Unexpected end of multipart data/],
      ['multipart/form-data; boundary=abc', '--abc\r\nContent-Disposition: form-data; name="a"; filename="a.jpg"\r\n\r\nxx', /unexpected end of multipart data/],
    ] as const;
    for (const route of ['classify', 'classify/batch']) {
      for (const [type, body, why] of malformed) {
        const res = await fetch(`${server.url}/v1/models/clothing/${route}`, { method: 'POST', headers: { 'content-type': type }, body });
        await assertRefused(res, 400, new RegExp(`^malformed multipart/form-data body \\(.*${why.source}`));
      }
    }
    await assertRefused(await fetch(`${server.url}/v1/nothing`), 404, /no such route: GET \/v1\/nothing/);
    await assertRefused(await fetch(`${server.url}/v1/models`, { method: 'DELETE' }), 404, /no such route/);
  });

  it('sniffs every format the classifier reads, and nothing else', () => {
    const riff = (tag: string): Buffer => Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from(tag)]);
    const ftyp = (brand: string, compatible: string): Buffer => {
      const box = Buffer.concat([Buffer.alloc(4), Buffer.from(`ftyp${brand}`), Buffer.alloc(4), Buffer.from(compatible)]);
      box.writeUInt32BE(box.length);
      return box;
    };
    assert.equal(sniffFormat(Buffer.from([0xff, 0xd8, 0xff, 0xe0])), 'jpeg');
    assert.equal(sniffFormat(pixelBombPng(1, 1)), 'png');
    assert.equal(sniffFormat(Buffer.from('GIF89a...')), 'gif');
    assert.equal(sniffFormat(riff('WEBP')), 'webp');
    assert.equal(sniffFormat(riff('WAVE')), undefined);
    assert.equal(sniffFormat(Buffer.from('II*\x00....')), 'tiff');
    assert.equal(sniffFormat(Buffer.from('MM\x00*....')), 'tiff');
    assert.equal(sniffFormat(ftyp('avif', 'mif1')), 'avif');
    assert.equal(sniffFormat(ftyp('mif1', 'avif')), 'avif');
    assert.equal(sniffFormat(ftyp('heic', 'mif1')), undefined, 'HEIC is not decodable by the bundled sharp');
    assert.equal(sniffFormat(Buffer.from('BM......')), undefined, 'BMP');
    assert.equal(sniffFormat(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')), 'svg', 'named, to be refused');
    assert.equal(sniffFormat(Buffer.alloc(0)), undefined);
  });
});

describe('no request reads outside the server folders', () => {
  it('traversal attempts in every kind of path get a 4xx and no file content', async () => {
    const secrets = [/"name": "headswap"/, /root:x:0:0/, /"format": "headswap-model"/];
    const paths = [
      '/../package.json',
      '/..%2f..%2fpackage.json',
      '/%2e%2e/%2e%2e/package.json',
      '/assets/..%2f..%2f..%2fpackage.json',
      '/assets/%2e%2e/%2e%2e/%2e%2e/package.json',
      '/index.html/../../../package.json',
      '//etc/passwd',
      '/..%5c..%5cpackage.json',
      '/v1/models/..%2f..%2f/download',
      '/v1/models/clothing/files/..%2fheadswap.json',
      '/v1/models/clothing/files/%2e%2e%2f%2e%2e%2fpackage.json',
      '/v1/models/..%2fclothing.model/files/headswap.json',
      '/v1/jobs/..%2f..%2fmodels/events',
      '/v1/models/%2e%2e/report',
    ];
    for (const path of paths) {
      const res = await rawRequest(server.port, path);
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
      for (const s of secrets) assert.doesNotMatch(res.body, s, path);
    }
  });

  it('a job saves photos under names it makes, and refuses class names that are paths', async () => {
    const evil = new FormData();
    evil.append('../../escaped', new Blob([await readFile(SHOE_1)]), 'a.jpg');
    await assertRefused(await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: evil }), 400, /class name '..\/..\/escaped' contains a slash/);
    const hidden = new FormData();
    hidden.append('.hidden', new Blob([await readFile(SHOE_1)]), 'a.jpg');
    await assertRefused(await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: hidden }), 400, /starts with a dot/);
    assert.deepEqual(await readdir(join(dataDir, 'jobs')), [], 'refused uploads leave nothing behind');
    assert.ok(!existsSync(join(dir, 'escaped')) && !existsSync(join(dataDir, 'escaped')));
  });
});

describe('training jobs', () => {
  let first: JobView;
  let busy: JobView;
  let waiting: JobView;

  it('refuses malformed jobs before queueing them', async () => {
    await assertRefused(await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } }), 415, /multipart\/form-data/);
    const one = await formOf(Array.from({ length: 3 }, () => ['hat', HAT_1] as const));
    await assertRefused(await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: one }), 400, /at least 2 classes; got 1/);
    const few = await formOf([...Array.from({ length: 3 }, () => ['hat', HAT_1] as const), ['shoes', SHOE_1], ['shoes', SHOE_2]]);
    await assertRefused(await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: few }), 400, /class 'shoes' has 2 photo\(s\); give each class at least 3/);
    const text = await formOf([...Array.from({ length: 3 }, () => ['hat', HAT_1] as const), ['shoes', SHOE_1]]);
    text.append('shoes', new Blob(['not a photo']), 'fake.jpg');
    await assertRefused(await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: text }), 415, /^'fake.jpg' is not a photo headswap can read \(JPEG, PNG, WebP, GIF, AVIF, TIFF/);
    const cut = await fetch(`${server.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=abc' }, body: '--abc\r\nContent-Disposition: form-data; name="hat"; filename="a.jpg"\r\n\r\n' });
    await assertRefused(cut, 400, /^malformed multipart\/form-data body/);
    const badQuality = await formOf([...Array.from({ length: 3 }, () => ['hat', HAT_1] as const), ...Array.from({ length: 3 }, () => ['shoes', SHOE_1] as const)], { quality: 'ultra' });
    await assertRefused(await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: badQuality }), 400, /^field 'quality' is 'ultra'; use one of auto, plain, fast, balanced, best$/);
    assert.deepEqual(await readdir(join(dataDir, 'jobs')), []);
  });

  it('trains a job with the comparison, streams its progress, and the model appears with its report', async () => {
    const files: [string, string][] = [];
    for (const c of ['hat', 'pants', 'shoes']) {
      const names = (await readdir(join(CLOTHING7, 'train', c))).sort().slice(0, 5);
      for (const n of names) files.push([c === 'hat' ? 'chapeau é' : c, join(CLOTHING7, 'train', c, n)]);
    }
    const res = await fetch(`${server.url}/v1/jobs`, { method: 'POST', body: await formOf(files, { name: 'Hats & shoes', compare: 'true' }) });
    assert.equal(res.status, 202);
    first = await jsonOf<JobView>(res);
    assert.equal(res.headers.get('location'), `/v1/jobs/${first.id}`);
    assert.deepEqual(first.classes, [
      { name: 'chapeau é', photos: 5 },
      { name: 'pants', photos: 5 },
      { name: 'shoes', photos: 5 },
    ]);
    assert.equal(first.compare, true);

    const { final, events } = await followEvents(`${server.url}${first.links.events}`);
    assert.equal(final.status, 'done', final.error);
    first = final;
    const steps = new Set(events.flatMap((e) => (e.type === 'progress' ? [e.progress.step] : [])));
    assert.ok(steps.has('computing features (one backbone pass per photo)'), [...steps].join(', '));
    // Every phase is its own step with its unit: the head's epochs too, not "computing features".
    const units = new Set(events.flatMap((e) => (e.type === 'progress' && e.progress.unit ? [e.progress.unit] : [])));
    assert.ok(units.has('epochs') && units.has('images'), [...units].join(', '));
    assert.ok([...steps].some((st) => st.startsWith('training the head on mobilenet')), [...steps].join(', '));
    // The comparison's transfer run and its CNN are named as parts of the comparison.
    assert.ok([...steps].some((st) => st.startsWith('comparison, transfer learning: computing features')), [...steps].join(', '));
    assert.ok(steps.has('comparison: training from scratch'), [...steps].join(', '));
    assert.ok(!steps.has('features') && ![...steps].some((st) => st.startsWith('head')), 'no raw library step names');
    // A counted step moves: the head's epochs rise within their step (15 photos are one batch of features, one event).
    const epochs = events.flatMap((e) => (e.type === 'progress' && e.progress.step.startsWith('training the head on') ? [e.progress.done] : []));
    assert.ok(epochs.some((d, i) => i > 0 && d > epochs[i - 1]!), epochs.join(','));
    assert.equal(first.quality, 'auto', 'no quality field: the default');
    const r = final.result!;
    assert.equal(r.modelId, `hats-shoes-${first.id}`);
    assert.deepEqual(r.classes, ['chapeau é', 'pants', 'shoes']);
    assert.equal(r.confusion.flat().reduce((a, b) => a + b, 0), r.testPhotos);
    assert.equal(r.testThumbnails.length, r.testPhotos);
    for (const t of r.testThumbnails) assert.match(t.src, /^data:image\/jpeg;base64,/);
    assert.ok(r.compare && r.compare.scratchEpochs >= 1 && r.compare.verdict.length > 20, JSON.stringify(r.compare));
    assert.equal(final.links.model, `/v1/models/${r.modelId}`);

    const photos = await tree(join(dataDir, 'jobs', first.id, 'photos'));
    assert.equal(photos.length, 15);
    for (const p of photos) assert.match(p, /^(chapeau é|pants|shoes)\/\d{4}-[\w-]+\.jpg$/);

    const model = await jsonOf<ModelDetail>(await fetch(`${server.url}/v1/models/${r.modelId}`));
    assert.equal(model.source, 'trained');
    assert.equal(model.name, 'Hats & shoes', 'the name typed in, not the slug');
    assert.equal(r.compare!.testPhotos, r.testPhotos);
    assert.deepEqual(model.labels, ['chapeau é', 'pants', 'shoes']);
    const report = await fetch(`${server.url}${model.links.report}`);
    assert.equal(report.status, 200);
    assert.match(report.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await report.text();
    assert.ok(html.includes('<section id="compare">') && html.includes('Hats &amp; shoes'));
    const shoe = await jsonOf<ClassifyResponse>(await classify(r.modelId, await readFile(SHOE_2)));
    assert.equal(shoe.top[0]!.label, 'shoes');
    const zip = unzipSync(new Uint8Array(await (await fetch(`${server.url}/v1/models/${r.modelId}/download`)).arrayBuffer()));
    assert.ok(Object.keys(zip).includes(`${r.modelId}/report.html`));
    // The run history names the model folder the job renamed into place, not its temporary one.
    const store = openRunStore(cacheDir);
    const run = store.listRuns().find((x) => x.out?.endsWith(r.modelId));
    store.close();
    assert.ok(run, 'a run row names the final model folder');
    assert.ok(existsSync(run.out!), run.out!);
    assert.doesNotMatch(run.out!, /\.partial-/);
  });

  it('queues one job behind the running one and answers 429 when the queue is full', async () => {
    const files: [string, string][] = [
      ...Array.from({ length: 3 }, () => ['hat', HAT_1] as [string, string]),
      ...Array.from({ length: 3 }, (_, i) => ['shoes', i % 2 ? SHOE_1 : SHOE_2] as [string, string]),
    ];
    const post = async (name: string, compare: boolean, quality = 'auto'): Promise<Response> =>
      fetch(`${server.url}/v1/jobs`, { method: 'POST', body: await formOf(files, { name, compare: String(compare), quality }) });
    // The comparison keeps the first job running for a few seconds: the second waits, the third is refused.
    busy = await jsonOf<JobView>(await post('busy', true));
    waiting = await jsonOf<JobView>(await post('waiting', false, 'plain'));
    assert.equal(waiting.quality, 'plain');
    assert.equal(waiting.status, 'queued');
    assert.equal(waiting.position, 1, 'the running job is ahead of it');
    await assertRefused(await post('refused', false), 429, /the training queue is full \(1 jobs waiting\)/);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^headswap_job_queue_length 1$/m);
    assert.match(metrics, /^headswap_jobs_running 1$/m);
  });

  it('jobs and models survive a restart; a job still queued then runs', async () => {
    // Closing waits for the running job and starts no other: the second is still queued on disk.
    await server.app.close();
    const stored = JSON.parse(await readFile(join(dataDir, 'jobs', waiting.id, 'job.json'), 'utf8')) as JobView;
    assert.equal(stored.status, 'queued');
    server = await startHeadswap({ dataDir, models: [modelDir], cacheDir, limits: { maxImageBytes: MAX_IMAGE_BYTES, maxQueuedJobs: 1 } });
    const { final } = await followEvents(`${server.url}/v1/jobs/${waiting.id}/events`);
    assert.equal(final.status, 'done', final.error);
    // The quality chosen on the page is the one the model was trained at.
    const metadata = JSON.parse(await readFile(join(dataDir, 'models', final.result!.modelId, 'headswap.json'), 'utf8')) as { training?: { quality?: { name: string; chosenBy?: string } } };
    assert.deepEqual([metadata.training?.quality?.name, metadata.training?.quality?.chosenBy], ['plain', undefined], 'plain, not auto (which records chosenBy)');
    const finished = await jsonOf<JobView>(await fetch(`${server.url}/v1/jobs/${busy.id}`));
    assert.equal(finished.status, 'done', finished.error);
    // The same photo in several splits: reported, by its path inside the job only.
    assert.ok(finished.result!.warnings.some((w) => /photo/.test(w)), finished.result!.warnings.join('; '));
    for (const w of finished.result!.warnings) assert.ok(!w.includes(dataDir), w);
    const { models } = await jsonOf<{ models: ModelSummary[] }>(await fetch(`${server.url}/v1/models`));
    assert.deepEqual(models.map((m) => m.id).sort(), ['clothing', first.result!.modelId, finished.result!.modelId, final.result!.modelId].sort());
    const again = await jsonOf<JobView>(await fetch(`${server.url}/v1/jobs/${first.id}`));
    assert.equal(again.status, 'done');
    assert.equal(again.result!.modelId, first.result!.modelId);
    const { jobs } = await jsonOf<{ jobs: JobView[] }>(await fetch(`${server.url}/v1/jobs`));
    assert.deepEqual(jobs.map((j) => j.name), ['waiting', 'busy', 'Hats & shoes'], 'newest first');
    // Names come back from the jobs after a restart; a command-line model is named by its folder.
    assert.deepEqual(Object.fromEntries(models.map((m) => [m.id, m.name])), {
      clothing: 'clothing',
      [first.result!.modelId]: 'Hats & shoes',
      [finished.result!.modelId]: 'busy',
      [final.result!.modelId]: 'waiting',
    });
    assert.ok(jobs.every((j) => j.result?.testThumbnails.length === 0), 'the list leaves thumbnails out');
  });
});

describe('operations', () => {
  it('GET /metrics counts requests by route template and status, with latencies, and no 5xx', async () => {
    await classify('clothing', await readFile(SHOE_1));
    await classify('clothing', 'not an image');
    const res = await fetch(`${server.url}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^headswap_http_requests_total\{method="POST",route="\/v1\/models\/:id\/classify",status="200"\} [1-9]\d*$/m);
    assert.match(text, /^headswap_http_requests_total\{method="POST",route="\/v1\/models\/:id\/classify",status="415"\} 1$/m);
    assert.match(text, /^headswap_http_request_duration_seconds_bucket\{method="POST",route="\/v1\/models\/:id\/classify",le="\+Inf"\} 2$/m);
    assert.match(text, /^headswap_http_request_duration_seconds_count\{method="POST",route="\/v1\/models\/:id\/classify"\} 2$/m);
    assert.match(text, /^# TYPE headswap_job_queue_length gauge$/m);
    assert.doesNotMatch(text, /status="5\d\d"/);
  });

  it('any method and body on any route: never a 5xx, every refusal one line of JSON', async () => {
    const routes = ['/', '/healthz', '/metrics', '/v1/models', '/v1/models/clothing', '/v1/models/clothing/classify', '/v1/models/clothing/classify/batch', '/v1/models/clothing/download', '/v1/models/clothing/files/model.onnx', '/v1/models/clothing/report', '/v1/jobs', '/v1/jobs/deadbeef', '/v1/jobs/deadbeef/events', '/assets/none.js'];
    const bodies: [string, BodyInit][] = [
      ['application/json', '{"top": 3, "__proto__": {"x": 1}}'],
      ['text/plain', 'hello'],
      ['image/png', new Uint8Array(pixelBombPng(64, 64))],
      ['multipart/form-data; boundary=zz', '--zz\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--zz--\r\n'],
    ];
    const statuses = new Set<number>();
    for (const route of routes) {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
        const res = await fetch(`${server.url}${route}`, { method });
        statuses.add(res.status);
        assert.ok(res.status < 500, `${method} ${route}: ${res.status}`);
        await res.arrayBuffer();
      }
      for (const [type, body] of bodies) {
        const res = await fetch(`${server.url}${route}`, { method: 'POST', headers: { 'content-type': type }, body });
        statuses.add(res.status);
        assert.ok(res.status < 500, `POST ${route} (${type}): ${res.status}`);
        if (res.status >= 400) assert.match(await res.text(), /^\{"error":"[^\n]*"\}$/, `POST ${route} (${type})`);
        else await res.arrayBuffer();
      }
    }
    assert.ok(statuses.has(200) && statuses.has(404) && statuses.has(415), [...statuses].join(' '));
  });

  it('a request that stalls gets 408 with a JSON error', async () => {
    const slow = await startHeadswap({ dataDir: join(dir, 'slow'), models: [modelDir], limits: { requestTimeoutMs: 400 } });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(slow.port, '127.0.0.1', () => {
          // Promises 1000 bytes and sends 10: the body never completes.
          socket.write('POST /v1/models/clothing/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n0123456789');
        });
        let data = '';
        socket.on('data', (d) => (data += d.toString()));
        socket.on('close', () => resolve(data));
        socket.on('error', reject);
        setTimeout(() => socket.destroy(), 5000);
      });
      assert.match(reply, /^HTTP\/1\.1 408 /);
      assert.match(reply, /\{"error":"request not completed within 0.4 s; send smaller or fewer files"\}/);
    } finally {
      await slow.app.close();
    }
  });

  it('refuses to start on a folder that is not a model; a model that cannot load answers 503, not a crash', async () => {
    await expectOneLine(createServer({ dataDir: join(dir, 'bad'), models: [join(dir, 'photos')] }), /photos: not a headswap model folder/);
    const broken = join(dir, 'broken.model');
    await cp(modelDir, broken, { recursive: true });
    await writeFile(join(broken, 'model.onnx'), 'not a graph');
    const warnings: string[] = [];
    const app = await createServer({ dataDir: join(dir, 'broken-data'), models: [broken], onWarning: (m) => warnings.push(m) });
    try {
      const res = await app.inject({ method: 'POST', url: '/v1/models/broken/classify', headers: { 'content-type': 'image/jpeg' }, payload: await readFile(SHOE_1) });
      assert.equal(res.statusCode, 503);
      assert.match(res.json<ErrorBody>().error, /^model 'broken' cannot be loaded \(.*model\.onnx: cannot load the model/);
      assert.equal(warnings.length, 1, 'reported to the operator');
      assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'still serving');
    } finally {
      await app.close();
    }
  });

  it('headswap serve binds to 127.0.0.1 by default and stops on SIGTERM', async () => {
    assert.ok(existsSync(packagePath('dist', 'cli', 'main.js')), 'run `npm run build` before this test');
    const child = spawn(process.execPath, [packagePath('bin', 'headswap.js'), 'serve', modelDir, '--port', '0', '--data', join(dir, 'cli-data')], {
      env: { ...process.env, HEADSWAP_CACHE: cacheDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /open (http:\/\/\S+)\/ /.exec(stderr);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    try {
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const health = await jsonOf<{ models: number }>(await fetch(`${url}/healthz`));
      assert.equal(health.models, 1);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    }
  });
});
