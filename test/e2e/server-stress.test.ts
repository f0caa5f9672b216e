/**
 * `headswap serve` under stress, at small scale, against a real server on 127.0.0.1: malformed
 * HTTP and multipart, wrong content types, slowloris clients, ~200 concurrent connections,
 * uploads at the size limit and one byte over, path traversal in every path parameter, and job
 * uploads whose client disconnects. Every refusal must be a 4xx with a one-line JSON `{error}`
 * (never a 5xx); after each case /healthz answers and clothing7 photos are still classified
 * right. Throughout, no response may carry the content of the sentinel files placed beside the
 * data folder, and nothing outside the data folder may be created or changed.
 * bench/server-stress.ts runs the same cases at full scale.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ClassifyResponse, JobView } from '../../src/server/api-types.js';
import { train } from '../../src/pipeline/train.js';
import { packagePath } from '../../src/util/paths.js';
import { CLOTHING7, copySubset } from '../helpers/dataset.js';
import { SHOE_1 } from '../helpers/images.js';
import {
  RawConnection,
  followEvents,
  malformedHttp,
  malformedMultipart,
  multipartBody,
  rawHttp,
  sendRaw,
  startHeadswap,
  traversalAttempts,
  trickle,
  wrongContentTypes,
  type RawReply,
  type RunningServer,
} from '../helpers/serve.js';

const CLASSES = ['dress', 'hat', 'shoes'];
/** Small, so the size limit is cheap to reach; every clothing7 photo is far below it. */
const LIMIT = 32 * 1024;
/** Short, so slow clients are cut off within the test; Node checks every max(1 s, timeout/4). */
const TIMEOUT_MS = 1500;
const CHECK_MS = 1000;
const CONNECTIONS = 200;
const TOKEN = `sentinel-${randomBytes(12).toString('hex')}`;
const MODEL = 'clothing';

let base: string;
/** The watched tree: the data folder, the command-line model, the page and the sentinels. */
let root: string;
let dataDir: string;
let jobsDir: string;
let server: RunningServer;
let jpeg: Buffer;
let before_: Map<string, string>;
let rssStart = 0;
let bodiesChecked = 0;
/** One clothing7 test photo per class that the server classifies right before any attack. */
const probes: { label: string; data: Buffer }[] = [];

/** Every response body passes here: none may contain a sentinel file's content. */
function noSentinel(body: string, what: string): void {
  bodiesChecked++;
  assert.ok(!body.includes(TOKEN), `${what}: the response carries a sentinel file's content`);
}

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

async function call(path: string, init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {}): Promise<Answer> {
  const { body: sent, ...rest } = init;
  // A copy: fetch() takes a Uint8Array over an ArrayBuffer, not any Buffer.
  const res = await fetch(`${server.url}${path}`, { ...rest, body: sent === undefined || typeof sent === 'string' ? sent : new Uint8Array(sent) });
  const body = Buffer.from(await res.arrayBuffer()).toString('latin1');
  noSentinel(body, `${init.method ?? 'GET'} ${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body };
}

function fromRaw(reply: RawReply | undefined, what: string): Answer {
  assert.ok(reply, `${what}: no response before the connection closed`);
  noSentinel(reply.body, what);
  return { status: reply.status, type: reply.headers['content-type'] ?? '', body: reply.body };
}

/** A refusal: a 4xx (the given one if any) with a one-line JSON `{error}` body. */
function assertRefusal(a: Answer, what: string, status?: number): void {
  assert.ok(a.status >= 400 && a.status < 500, `${what}: ${a.status} ${a.body.slice(0, 200)}`);
  if (status !== undefined) assert.equal(a.status, status, `${what}: ${a.body.slice(0, 200)}`);
  assert.match(a.type, /^application\/json/, `${what}: content-type ${a.type}`);
  const parsed = JSON.parse(a.body) as unknown;
  assert.ok(parsed && typeof parsed === 'object' && !Array.isArray(parsed), `${what}: ${a.body}`);
  assert.deepEqual(Object.keys(parsed), ['error'], `${what}: ${a.body}`);
  const { error } = parsed as { error: unknown };
  assert.ok(typeof error === 'string' && error.length > 0 && !error.includes('\n'), `${what}: ${a.body}`);
}

function classifyRaw(model: string, data: Uint8Array): Promise<Answer> {
  return call(`/v1/models/${model}/classify`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: data });
}

function topLabel(a: Answer): string | undefined {
  return a.status === 200 ? (JSON.parse(a.body) as ClassifyResponse).top[0]?.label : undefined;
}

/** What must hold after every case: the server answers /healthz and still classifies right. */
async function assertServing(what: string): Promise<void> {
  const health = await call('/healthz');
  assert.equal(health.status, 200, `${what}: /healthz ${health.status}`);
  assert.equal((JSON.parse(health.body) as { status: string }).status, 'ok');
  for (const p of probes) assert.equal(topLabel(await classifyRaw(MODEL, p.data)), p.label, `${what}: a ${p.label} photo`);
}

/** Hidden upload folders in jobs/: a job upload that was neither completed nor cleaned up. */
async function uploadLeftovers(): Promise<string[]> {
  return (await readdir(jobsDir)).filter((n) => n.includes('.upload-'));
}

/** Waits (up to `ms`) for interrupted uploads to be cleaned; returns what is left. */
async function settledLeftovers(ms = 3000): Promise<string[]> {
  const deadline = performance.now() + ms;
  let left = await uploadLeftovers();
  while (left.length > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = await uploadLeftovers();
  }
  return left;
}

/** Every file, folder and link under `dir` (but not under `skip`), with its size and mtime. */
async function snapshot(dir: string, skip: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(e.parentPath, e.name);
    if (path === skip || path.startsWith(`${skip}/`)) continue;
    const s = await lstat(path);
    out.set(relative(dir, path), `${s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : 'file'} ${s.isDirectory() ? '' : s.size} ${s.mtimeMs}`);
  }
  return out;
}

async function jobPhotos(classes: readonly string[], perClass: number): Promise<{ field: string; filename: string; data: Buffer }[]> {
  const files: { field: string; filename: string; data: Buffer }[] = [];
  for (const c of classes) {
    for (const n of (await readdir(join(CLOTHING7, 'train', c))).sort().slice(0, perClass)) {
      files.push({ field: c, filename: n, data: await readFile(join(CLOTHING7, 'train', c, n)) });
    }
  }
  return files;
}

before(async () => {
  assert.ok(existsSync(packagePath('dist', 'web', 'index.html')), 'run `npm run build` first: the page is served from a copy of dist/web');
  base = await mkdtemp(join(tmpdir(), 'headswap-stress-'));
  root = join(base, 'srv');
  dataDir = join(root, 'data');
  jobsDir = join(dataDir, 'jobs');
  await mkdir(dataDir, { recursive: true });
  // Beside the data folder, the page and the model folder, under the names a traversal would aim at.
  const secret = JSON.stringify({ name: 'headswap', format: 'headswap-model', secret: TOKEN });
  for (const name of ['secret.txt', 'headswap.json', 'labels.json', 'model.onnx', 'report.html', 'index.html']) await writeFile(join(root, name), secret);
  await writeFile(join(base, 'secret.txt'), secret);
  // A copy of the page, so a traversal out of its folder lands beside the sentinels.
  await cp(packagePath('dist', 'web'), join(root, 'web'), { recursive: true });
  await copySubset('train', CLASSES, 8, join(base, 'photos'));
  // The feature cache inside the data folder: then everything the server may write is in there.
  const cacheDir = join(dataDir, 'cache');
  await train({ data: join(base, 'photos'), out: join(root, `${MODEL}.model`), cacheDir, seed: 1 });
  server = await startHeadswap({
    dataDir,
    models: [join(root, `${MODEL}.model`)],
    cacheDir,
    webRoot: join(root, 'web'),
    limits: { maxImageBytes: LIMIT, requestTimeoutMs: TIMEOUT_MS, maxBatchImages: 4, maxQueuedJobs: 4 },
  });
  jpeg = await readFile(SHOE_1);
  for (const c of CLASSES) {
    const names = (await readdir(join(CLOTHING7, 'test', c))).sort();
    for (const n of names.slice(0, 10)) {
      const data = await readFile(join(CLOTHING7, 'test', c, n));
      if (topLabel(await classifyRaw(MODEL, data)) === c) {
        probes.push({ label: c, data });
        break;
      }
    }
  }
  assert.deepEqual(probes.map((p) => p.label), CLASSES, 'a correctly classified test photo per class');
  before_ = await snapshot(base, dataDir);
  rssStart = process.memoryUsage.rss();
});

after(async () => {
  await server?.app.close();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('the server under stress', () => {
  it('malformed HTTP on raw sockets: the expected 4xx with a JSON error each', async () => {
    const cases = malformedHttp(MODEL);
    const replies = await Promise.all(cases.map((c) => sendRaw(server.port, c.payload, 5000)));
    for (const [i, c] of cases.entries()) assertRefusal(fromRaw(replies[i], c.name), c.name, c.status);
    await assertServing('after malformed HTTP');
  });

  it('malformed multipart on every upload route: 4xx, never a 5xx, and no half job left', async () => {
    for (const route of [`/v1/models/${MODEL}/classify`, `/v1/models/${MODEL}/classify/batch`, '/v1/jobs']) {
      const answers = await Promise.all(malformedMultipart().map((m) => call(route, { method: 'POST', headers: { 'content-type': m.contentType }, body: m.body })));
      for (const [i, m] of malformedMultipart().entries()) assertRefusal(answers[i]!, `${route}: ${m.name}`, m.status);
    }
    assert.deepEqual(await settledLeftovers(), []);
    assert.deepEqual((await readdir(jobsDir)).sort(), [], 'no job was queued');
    await assertServing('after malformed multipart');
  });

  it('wrong content types: 4xx on every upload route', async () => {
    for (const route of [`/v1/models/${MODEL}/classify`, `/v1/models/${MODEL}/classify/batch`, '/v1/jobs']) {
      for (const w of wrongContentTypes(jpeg)) {
        const reply = await sendRaw(server.port, rawHttp('POST', route, w.contentType === undefined ? {} : { 'Content-Type': w.contentType }, w.body), 5000);
        assertRefusal(fromRaw(reply, `${route}: ${w.name}`), `${route}: ${w.name}`, w.status);
      }
    }
    assert.deepEqual(await settledLeftovers(), []);
    await assertServing('after wrong content types');
  });

  it('uploads at the size limit are taken, one byte over gets 413', async () => {
    // A real JPEG padded after its end marker: a valid image of exactly LIMIT bytes.
    const atLimit = Buffer.concat([jpeg, Buffer.alloc(LIMIT - jpeg.length)]);
    const over = Buffer.concat([atLimit, Buffer.alloc(1)]);
    const text = Buffer.alloc(LIMIT, 'x');
    const route = `/v1/models/${MODEL}/classify`;

    assert.equal(topLabel(await classifyRaw(MODEL, atLimit)), 'shoes', 'raw body of exactly the limit');
    assertRefusal(await classifyRaw(MODEL, text), 'text of exactly the limit', 415);
    assertRefusal(await classifyRaw(MODEL, over), 'raw body one byte over', 413);
    const chunkedAt = fromRaw(await sendRaw(server.port, rawHttp('POST', route, { 'Content-Type': 'image/jpeg' }, atLimit, true)), 'chunked, at the limit');
    assert.equal(topLabel(chunkedAt), 'shoes', 'chunked body of exactly the limit');
    assertRefusal(fromRaw(await sendRaw(server.port, rawHttp('POST', route, { 'Content-Type': 'image/jpeg' }, over, true)), 'chunked, one over'), 'chunked body one byte over', 413);

    // A Content-Length over the limit is refused from the header alone, without waiting for the body.
    const t = performance.now();
    const declared = fromRaw(await sendRaw(server.port, `POST ${route} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: ${LIMIT + 1}\r\n\r\n`, 5000), 'declared one over');
    assertRefusal(declared, 'Content-Length one over, no body sent', 413);
    assert.ok(performance.now() - t < TIMEOUT_MS, 'answered before the request timeout');

    const form = (data: Buffer, n = 1): { contentType: string; body: Buffer } => multipartBody(Array.from({ length: n }, (_, i) => ({ field: `f${i}`, filename: `p${i}.jpg`, data })));
    const post = (path: string, f: { contentType: string; body: Buffer }): Promise<Answer> => call(path, { method: 'POST', headers: { 'content-type': f.contentType }, body: f.body });
    assert.equal(topLabel(await post(route, form(atLimit))), 'shoes', 'multipart file of exactly the limit');
    assertRefusal(await post(route, form(over)), 'multipart file one byte over', 413);
    const batch = await post(`${route}/batch`, form(atLimit, 4));
    assert.equal(batch.status, 200, batch.body);
    assert.equal((JSON.parse(batch.body) as { results: unknown[] }).results.length, 4, 'four files at the limit in one batch');

    const photos = await jobPhotos(['hat', 'shoes'], 3);
    const job = multipartBody([...photos, { field: 'hat', filename: 'big.jpg', data: over }]);
    assertRefusal(await post('/v1/jobs', job), 'a job photo one byte over', 413);
    assert.deepEqual(await settledLeftovers(), []);
    assert.deepEqual(await readdir(jobsDir), [], 'the refused job left nothing');
    await assertServing('after the size limit');
  });

  it('slowloris: slow senders are cut off by the request timeout while others are served', async (t) => {
    const route = `/v1/models/${MODEL}/classify`;
    const job = multipartBody(await jobPhotos(['hat', 'shoes'], 3));
    const one = multipartBody([{ field: 'f', filename: 'a.jpg', data: jpeg }]);
    const kinds: [string, Buffer][] = [
      ['headers a byte at a time', Buffer.from(`GET /v1/models HTTP/1.1\r\nHost: x\r\nUser-Agent: ${'s'.repeat(300)}\r\n\r\n`)],
      ['raw image body a byte at a time', rawHttp('POST', route, { 'Content-Type': 'image/jpeg' }, jpeg)],
      ['multipart classify a byte at a time', rawHttp('POST', route, { 'Content-Type': one.contentType }, one.body)],
      ['job upload a byte at a time', rawHttp('POST', '/v1/jobs', { 'Content-Type': job.contentType }, job.body)],
    ];
    // The body kinds send their headers at once, then the body a byte every 20 ms.
    const slow = kinds.flatMap(([name, payload]) =>
      Array.from({ length: 5 }, async () => {
        const split = name.startsWith('headers') ? 0 : payload.indexOf('\r\n\r\n') + 4;
        const rest = payload.subarray(split);
        return { name, r: await trickle(server.port, rest, 20, 10_000, payload.subarray(0, split)), total: rest.length };
      }),
    );
    const idle = Array.from({ length: 5 }, async () => ({ name: 'connects and sends nothing', r: await trickle(server.port, Buffer.alloc(0), 20, 10_000), total: 1 }));
    let done = false;
    const all = Promise.all([...slow, ...idle]).finally(() => (done = true));
    // Meanwhile: normal clients, one after another, must be answered as usual.
    const latencies: number[] = [];
    while (!done) {
      const start = performance.now();
      const p = probes[latencies.length % probes.length]!;
      assert.equal(topLabel(await classifyRaw(MODEL, p.data)), p.label, 'classify during the slowloris');
      latencies.push(performance.now() - start);
    }
    for (const { name, r, total } of await all) {
      assert.ok(r.serverClosed, `${name}: the server must close the connection (client gave up after ${r.ms.toFixed(0)} ms)`);
      assert.ok(r.sent < total, `${name}: cut off before the request was complete`);
      assert.ok(r.ms < TIMEOUT_MS + CHECK_MS + 1500, `${name}: closed after ${r.ms.toFixed(0)} ms`);
      assertRefusal(fromRaw(r.reply, name), name, 408);
    }
    t.diagnostic(`${latencies.length} classify requests during the attack, slowest ${Math.max(...latencies).toFixed(0)} ms`);
    assert.ok(latencies.length >= 5, `only ${latencies.length} classify requests were answered during the attack`);
    assert.ok(Math.max(...latencies) < TIMEOUT_MS, `classify took up to ${Math.max(...latencies).toFixed(0)} ms during the attack`);
    assert.deepEqual(await settledLeftovers(), [], 'a cut-off job upload leaves no folder');
    assert.deepEqual(await readdir(jobsDir), []);
    await assertServing('after slowloris');
  });

  it(`${CONNECTIONS} concurrent connections held open, then all sending at once`, async () => {
    // The server's end of each of these connections, to see that it lets go of them all.
    const serverSide: Socket[] = [];
    const track = (s: Socket): void => void serverSide.push(s);
    server.app.server.on('connection', track);
    const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => RawConnection.open(server.port)));
    let ours: Socket[] = [];
    try {
      for (const c of conns) c.write(rawHttp('GET', '/healthz', {}));
      for (const c of conns) assert.equal(fromRaw(await c.response(10_000), 'held connection').status, 200);
      server.app.server.off('connection', track);
      const ports = new Set(conns.map((c) => c.localPort));
      ours = serverSide.filter((s) => ports.has(s.remotePort));
      assert.equal(ours.length, CONNECTIONS, 'the server holds every connection');
      // All held open (keep-alive, idle): others are still served.
      for (let i = 0; i < 6; i++) assert.equal(topLabel(await classifyRaw(MODEL, probes[i % 3]!.data)), probes[i % 3]!.label);
      // Then every connection sends at once: one in ten a photo, the rest the model list and detail.
      const kinds = conns.map((_, i) => (i % 10 === 0 ? 'classify' : i % 2 ? 'list' : 'detail'));
      for (const [i, c] of conns.entries()) {
        c.write(
          kinds[i] === 'classify'
            ? rawHttp('POST', `/v1/models/${MODEL}/classify`, { 'Content-Type': 'image/jpeg' }, probes[i % 3]!.data)
            : rawHttp('GET', kinds[i] === 'list' ? '/v1/models' : `/v1/models/${MODEL}`, {}),
        );
      }
      const answers = await Promise.all(conns.map((c) => c.response(20_000)));
      for (const [i, r] of answers.entries()) {
        const a = fromRaw(r, `connection ${i} (${kinds[i]})`);
        assert.equal(a.status, 200, `connection ${i} (${kinds[i]}): ${a.body.slice(0, 200)}`);
        if (kinds[i] === 'classify') assert.equal(topLabel(a), probes[i % 3]!.label);
      }
      assert.ok(conns.every((c) => c.open), 'keep-alive connections stay open');
    } finally {
      server.app.server.off('connection', track);
      for (const c of conns) c.destroy();
    }
    // The server lets go of them all once the clients close.
    const deadline = performance.now() + 3000;
    while (ours.some((s) => !s.destroyed) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(ours.filter((s) => !s.destroyed).length, 0, 'connections still open on the server');
    await assertServing('after the connection flood');
  });

  it('path traversal in every path parameter: 4xx, and no file from outside is served', async () => {
    const attempts = traversalAttempts(`${MODEL}.model`, MODEL);
    // Sent byte for byte (fetch would resolve `..` and `%2e%2e` itself).
    const replies = await Promise.all(attempts.map(([method, path]) => sendRaw(server.port, rawHttp(method, path, {}), 5000)));
    for (const [i, [method, path]] of attempts.entries()) assertRefusal(fromRaw(replies[i], `${method} ${path}`), `${method} ${path}`);
    // The names inside a job upload: class names that are paths are refused...
    const photos = await jobPhotos(['hat', 'shoes'], 3);
    for (const evil of ['../../escaped', '..', '.', '/tmp/escaped', '..\\..\\escaped', 'a/../../escaped', '.hidden']) {
      const f = multipartBody([...photos.slice(0, 3), ...photos.slice(3).map((p) => ({ ...p, field: evil }))]);
      assertRefusal(await call('/v1/jobs', { method: 'POST', headers: { 'content-type': f.contentType }, body: f.body }), `class name ${evil}`, 400);
    }
    assert.deepEqual(await readdir(jobsDir), []);
    // ...and file names and the model name that are paths are only used through a slug.
    const evilNames = ['../../../escaped.jpg', '/etc/passwd', '..\\..\\escaped.jpg', `../../srv/secret.txt`, '.hidden.jpg', 'a\u0000b.jpg'];
    const f = multipartBody(
      photos.map((p, i) => ({ ...p, filename: evilNames[i % evilNames.length]! })),
      { name: '../../../escaped' },
    );
    const accepted = await call('/v1/jobs', { method: 'POST', headers: { 'content-type': f.contentType }, body: f.body });
    assert.equal(accepted.status, 202, accepted.body);
    const job = JSON.parse(accepted.body) as JobView;
    const { final } = await followEvents(`${server.url}${job.links.events}`);
    assert.equal(final.status, 'done', final.error);
    assert.match(final.result!.modelId, /^escaped-[0-9a-f]+$/);
    const stored = (await readdir(join(jobsDir, job.id, 'photos'), { recursive: true })).filter((n) => n.endsWith('.jpg')).sort();
    assert.equal(stored.length, photos.length);
    for (const s of stored) assert.match(s, /^(hat|shoes)\/\d{4}(-[\w-]+)?\.jpg$/, s);
    assert.deepEqual((await readdir(dataDir)).sort(), ['cache', 'jobs', 'models']);
    await assertServing('after path traversal');
  });

  it('job uploads whose client disconnects leave no half job, and later jobs run', async () => {
    const jobsBefore = (await readdir(jobsDir)).sort();
    const photos = await jobPhotos(['hat', 'shoes'], 3);
    const f = multipartBody(photos, { name: 'cut' });
    const request = rawHttp('POST', '/v1/jobs', { 'Content-Type': f.contentType }, f.body);
    const head = request.indexOf('\r\n\r\n') + 4;
    const firstFile = request.indexOf('\r\n\r\n', head + 60) + 4;
    const secondPart = request.indexOf(Buffer.from('--headswap-stress-boundary'), firstFile);
    // Cut inside the headers, right after them, in a part header, in a file, between parts, before the end.
    const cuts = [Math.floor(head / 2), head, head + 40, firstFile + 500, secondPart, Math.floor((head + request.length) / 2), request.length - 3];
    const cutOff = cuts.flatMap((at) =>
      [0, 30].map(async (delay) => {
        const c = await RawConnection.open(server.port);
        c.write(request.subarray(0, at));
        await new Promise((r) => setTimeout(r, delay));
        c.destroy();
      }),
    );
    await Promise.all(cutOff);
    assert.deepEqual(await settledLeftovers(), [], 'interrupted uploads are removed');
    assert.deepEqual((await readdir(jobsDir)).sort(), jobsBefore, 'no job from an interrupted upload');

    // The whole upload, then the client leaves without reading the answer: either no job, or a whole one that runs.
    const gone = await RawConnection.open(server.port);
    gone.write(request);
    await new Promise((r) => setTimeout(r, 5));
    gone.destroy();
    assert.deepEqual(await settledLeftovers(), []);
    for (const id of (await readdir(jobsDir)).filter((n) => !jobsBefore.includes(n))) {
      assert.ok(existsSync(join(jobsDir, id, 'job.json')), `job folder ${id} without its record`);
      const { final } = await followEvents(`${server.url}/v1/jobs/${id}/events`);
      assert.equal(final.status, 'done', final.error);
    }

    const later = multipartBody(photos, { name: 'later' });
    const res = await call('/v1/jobs', { method: 'POST', headers: { 'content-type': later.contentType }, body: later.body });
    assert.equal(res.status, 202, res.body);
    const { final } = await followEvents(`${server.url}${(JSON.parse(res.body) as JobView).links.events}`);
    assert.equal(final.status, 'done', final.error);
    const hat = probes.find((p) => p.label === 'hat')!;
    const answer = await classifyRaw(final.result!.modelId, hat.data);
    assert.ok(topLabel(answer) === 'hat' || topLabel(answer) === 'shoes', answer.body);
    const health = JSON.parse((await call('/healthz')).body) as { jobs: { running: number; queued: number } };
    assert.deepEqual(health.jobs, { running: 0, queued: 0 });
    await assertServing('after disconnecting job uploads');
  });

  it('nothing outside the data folder was written, no response carried a sentinel, RSS stayed bounded', async (t) => {
    assert.deepEqual(await snapshot(base, dataDir), before_);
    assert.ok(bodiesChecked > 500, `only ${bodiesChecked} response bodies were checked for the sentinel`);
    const growthMb = (process.memoryUsage.rss() - rssStart) / 2 ** 20;
    t.diagnostic(`${bodiesChecked} response bodies checked; RSS ${(rssStart / 2 ** 20).toFixed(0)} -> ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MB`);
    // Client and server share this process; two training jobs ran.
    assert.ok(growthMb < 300, `RSS grew by ${growthMb.toFixed(0)} MB`);
  });
});

