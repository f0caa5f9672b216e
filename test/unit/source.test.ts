import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { HeadswapError } from '../../src/errors.js';
import { cacheDir, download } from '../../src/runtime/download.js';
import { resolveEntry, resolveSource } from '../../src/backbone/source.js';
import { getEntry } from '../../src/backbone/zoo.js';
import type { ZooEntry } from '../../src/backbone/types.js';
import { sha256 } from '../../src/util/fs.js';
import { packagePath } from '../../src/util/paths.js';
import { closedPort, startServer, type TestServer } from '../helpers/http-server.js';

const MODEL_REL = 'models/mobilenet_v2/mobilenetv2-12-int8.onnx';
const MODEL_SHA = 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f';
const WRONG_SHA = '0'.repeat(64);
const FAST = 200; // ms idle timeout for the hanging routes: keeps the suite well under its time budget

let model: Buffer;
let server: TestServer;
let cache: string;

before(async () => {
  model = await readFile(packagePath(MODEL_REL));
  server = await startServer({
    '/model.onnx': (_req, res) => res.writeHead(200, { 'content-length': model.length }).end(model),
    // No Content-Length: progress must report an unknown total and the download still succeed.
    '/chunked.onnx': (_req, res) => {
      res.writeHead(200);
      res.write(model.subarray(0, 1000));
      res.end(model.subarray(1000));
    },
    '/tiny.onnx': (_req, res) => res.end('tiny'),
    // Alive but slow: 12 pieces 30 ms apart, longer in total than the idle timeout it is fetched with.
    '/slow.onnx': (_req, res) => {
      res.writeHead(200, { 'content-length': model.length });
      const piece = Math.ceil(model.length / 12);
      let sent = 0;
      const timer = setInterval(() => {
        res.write(model.subarray(sent, sent + piece));
        sent += piece;
        if (sent >= model.length) {
          clearInterval(timer);
          res.end();
        }
      }, 30);
      res.on('close', () => clearInterval(timer));
    },
    '/redirect': (_req, res) => res.writeHead(302, { location: '/model.onnx' }).end(),
    '/500': (_req, res) => res.writeHead(500).end('boom'),
    '/truncated': (req, res) => {
      res.writeHead(200, { 'content-length': model.length });
      res.write(model.subarray(0, 100_000), () => req.socket.destroy());
    },
    '/hang': () => undefined,
    // Headers and some bytes, then silence: the idle timer must fire mid-body, too.
    '/stall': (_req, res) => {
      res.writeHead(200, { 'content-length': model.length });
      res.write(model.subarray(0, 1000));
    },
  });
});

after(async () => {
  await server.close();
});

beforeEach(async () => {
  cache = await mkdtemp(join(tmpdir(), 'headswap-source-'));
});

afterEach(async () => {
  await rm(cache, { recursive: true, force: true });
});

function fakeEntry(overrides: Partial<ZooEntry>): ZooEntry {
  const { bundled: _bundled, ...online } = getEntry('mobilenet_v2');
  return { ...online, id: 'fake_net', url: `${server.url}/model.onnx`, ...overrides };
}

/** What the cache's models dir holds (none if it was never created). */
async function cached(): Promise<string[]> {
  return readdir(join(cache, 'models')).catch(() => []);
}

/** Asserts a one-line HeadswapError whose text contains every needle. */
async function rejectsWith(promise: Promise<unknown>, ...needles: (string | RegExp)[]): Promise<HeadswapError> {
  let caught: unknown;
  await promise.then(
    () => assert.fail('expected a HeadswapError'),
    (err: unknown) => (caught = err),
  );
  assert.ok(caught instanceof HeadswapError, `not a HeadswapError: ${String(caught)}`);
  assert.doesNotMatch(caught.message, /\n/);
  for (const n of needles) {
    if (typeof n === 'string') assert.ok(caught.message.includes(n), `'${caught.message}' lacks '${n}'`);
    else assert.match(caught.message, n);
  }
  return caught;
}

describe('zoo entries', () => {
  test('bundled id resolves to the packaged file without any network', async (t) => {
    t.mock.method(globalThis, 'fetch', () => assert.fail('bundled models must not touch the network'));
    const r = await resolveSource('mobilenet_v2', { cacheDir: cache });
    assert.equal(r.kind, 'zoo-bundled');
    assert.equal(r.path, packagePath(MODEL_REL));
    assert.equal(r.sha256, MODEL_SHA);
    assert.equal(r.origin, 'mobilenet_v2');
    assert.equal(r.entry?.id, 'mobilenet_v2');
    assert.deepEqual(await cached(), []);
    assert.equal((await resolveSource('mobilenet_v2', { expectedSha256: MODEL_SHA })).sha256, MODEL_SHA);
    await rejectsWith(resolveSource('mobilenet_v2', { expectedSha256: WRONG_SHA }), 'mobilenet_v2', 'sha256 mismatch');
  });

  test('bundled entry whose file differs from its sha256 is refused', async () => {
    await rejectsWith(resolveEntry(fakeEntry({ bundled: MODEL_REL, sha256: WRONG_SHA })), 'corrupt', 'reinstall');
  });

  test('missing bundled file names it', async () => {
    await rejectsWith(resolveEntry(fakeEntry({ bundled: 'models/nope.onnx' })), packagePath('models/nope.onnx'), 'reinstall');
  });

  test('download lands in <cache>/models/<sha256>.onnx with progress; a second resolve makes no request', async () => {
    const progress: Array<[number, number | undefined]> = [];
    const entry = fakeEntry({});
    const r = await resolveEntry(entry, { cacheDir: cache, onProgress: (a, b) => progress.push([a, b]) });
    assert.equal(r.kind, 'zoo-download');
    assert.equal(r.path, join(cache, 'models', `${MODEL_SHA}.onnx`));
    assert.equal(r.sha256, MODEL_SHA);
    assert.equal(sha256(await readFile(r.path)), MODEL_SHA);
    assert.deepEqual(await cached(), [`${MODEL_SHA}.onnx`]);
    assert.ok(progress.length > 0);
    assert.deepEqual(progress.at(-1), [model.length, model.length]);

    const count = server.requests.length;
    const again = await resolveEntry(entry, { cacheDir: cache });
    assert.equal(server.requests.length, count, 'a cached zoo model must not be fetched again');
    assert.deepEqual(again, r);
  });

  test('sha256 mismatch throws one line naming the URL and leaves nothing behind', async () => {
    const entry = fakeEntry({ sha256: WRONG_SHA });
    await rejectsWith(resolveEntry(entry, { cacheDir: cache }), entry.url, 'sha256 mismatch', MODEL_SHA, WRONG_SHA);
    assert.deepEqual(await cached(), []);
  });

  test('unknown id gives the zoo error', async () => {
    const err = await rejectsWith(resolveSource('resnet9000', { cacheDir: cache }), "'resnet9000'");
    assert.throws(() => getEntry('resnet9000'), { message: err.message });
  });
});

describe('URLs', () => {
  test('download is cached by URL, reused without a request, and fetched again when deleted', async () => {
    const url = `${server.url}/model.onnx`;
    const r = await resolveSource(url, { cacheDir: cache });
    assert.equal(r.kind, 'url');
    assert.equal(r.origin, url);
    assert.equal(r.sha256, MODEL_SHA);
    assert.equal(relative(cache, r.path), join('models', `url-${sha256(url)}.onnx`));
    assert.equal(sha256(await readFile(r.path)), MODEL_SHA);

    const count = server.requests.length;
    assert.equal((await resolveSource(url, { cacheDir: cache })).sha256, MODEL_SHA);
    assert.equal(server.requests.length, count, 'cached URL must not be fetched again');

    await rm(r.path);
    assert.equal((await resolveSource(url, { cacheDir: cache })).sha256, MODEL_SHA);
    assert.equal(server.requests.length, count + 1);
  });

  test('expectedSha256 mismatch is refused and nothing is cached', async () => {
    const url = `${server.url}/model.onnx`;
    await rejectsWith(resolveSource(url, { cacheDir: cache, expectedSha256: WRONG_SHA }), url, 'sha256 mismatch');
    assert.deepEqual(await cached(), []);
  });

  test('a cached copy that differs from expectedSha256 is replaced by a fresh download', async () => {
    const url = `${server.url}/model.onnx`;
    const path = join(cache, 'models', `url-${sha256(url)}.onnx`);
    await mkdir(join(cache, 'models'));
    await writeFile(path, 'stale');
    const r = await resolveSource(url, { cacheDir: cache, expectedSha256: MODEL_SHA.toUpperCase() });
    assert.equal(r.sha256, MODEL_SHA);
    assert.equal(sha256(await readFile(path)), MODEL_SHA);
  });

  test('redirects are followed', async () => {
    const r = await resolveSource(`${server.url}/redirect`, { cacheDir: cache, expectedSha256: MODEL_SHA });
    assert.equal(r.sha256, MODEL_SHA);
    assert.deepEqual(server.requests.slice(-2), ['/redirect', '/model.onnx']);
  });

  test('a body without Content-Length downloads with an unknown total', async () => {
    const totals = new Set<number | undefined>();
    const r = await resolveSource(`${server.url}/chunked.onnx`, { cacheDir: cache, onProgress: (_n, total) => totals.add(total) });
    assert.equal(r.sha256, MODEL_SHA);
    assert.deepEqual([...totals], [undefined]);
  });

  test('the timeout is for silence, not for the whole download', async () => {
    const started = performance.now();
    const r = await resolveSource(`${server.url}/slow.onnx`, { cacheDir: cache, timeoutMs: 250 });
    assert.ok(performance.now() - started > 250, 'the slow route finished too fast to test anything');
    assert.equal(r.sha256, MODEL_SHA);
  });

  const failures: Array<[string, (string | RegExp)[]]> = [
    ['/404', ['HTTP 404', 'check the URL']],
    ['/500', ['HTTP 500', 'retry']],
    ['/truncated', [/cut off after \d+ of 3655033 bytes/]],
    ['/hang', ['timed out', 'after 0 bytes']],
    ['/stall', ['timed out', 'after 1000 bytes']],
  ];
  for (const [route, needles] of failures) {
    test(`${route} throws one HeadswapError line and leaves nothing in the cache`, async () => {
      const url = `${server.url}${route}`;
      await rejectsWith(resolveSource(url, { cacheDir: cache, timeoutMs: FAST }), url, ...needles);
      assert.deepEqual(await cached(), []);
    });
  }

  test('connection refused throws one HeadswapError line and leaves nothing', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/model.onnx`;
    await rejectsWith(resolveSource(url, { cacheDir: cache }), `cannot reach ${url}`, 'ECONNREFUSED');
    assert.deepEqual(await cached(), []);
  });

  test('two concurrent downloads of one file both succeed and leave one complete file', async () => {
    const url = `${server.url}/model.onnx`;
    const dest = join(cache, 'models', 'same.onnx');
    const shas = await Promise.all([download(url, dest, {}), download(url, dest, {})]);
    assert.deepEqual(shas, [MODEL_SHA, MODEL_SHA]);
    assert.deepEqual(await cached(), ['same.onnx']);
    assert.equal(sha256(await readFile(dest)), MODEL_SHA);
  });

  test("temp files of dead processes are swept, live ones' are kept", async () => {
    // Above Linux's PID_MAX_LIMIT (2^22) and BSD/macOS's 99999, and odd (Windows pids are multiples of 4).
    const deadPid = 2 ** 22 + 1;
    const dir = join(cache, 'models');
    await mkdir(dir);
    const dead = `.x.onnx.tmp-${deadPid}-0badf00d`;
    const live = `.x.onnx.tmp-${process.pid}-0badf00d`;
    await writeFile(join(dir, dead), 'partial');
    await writeFile(join(dir, live), 'partial');
    await download(`${server.url}/tiny.onnx`, join(dir, 'm.onnx'), {});
    assert.deepEqual((await readdir(dir)).sort(), [live, 'm.onnx']);
  });

  test('unsupported URL schemes and malformed sha256 pins are refused', async () => {
    await rejectsWith(resolveSource('ftp://example.com/m.onnx'), 'ftp://example.com/m.onnx', 'http(s)');
    await rejectsWith(resolveSource(`${server.url}/model.onnx`, { cacheDir: cache, expectedSha256: 'abc' }), '64 hex');
  });
});

describe('local files', () => {
  test('an existing .onnx path resolves to its absolute path and sha256', async () => {
    const given = `./${relative(process.cwd(), packagePath(MODEL_REL))}`;
    const r = await resolveSource(given, { cacheDir: cache });
    assert.equal(r.kind, 'file');
    assert.equal(r.path, packagePath(MODEL_REL));
    assert.equal(r.sha256, MODEL_SHA);
    assert.equal(r.origin, given);
    assert.equal((await resolveSource(packagePath(MODEL_REL), { expectedSha256: MODEL_SHA })).sha256, MODEL_SHA);
    assert.deepEqual(await cached(), []);
  });

  test('a file:// URL is a local path', async () => {
    const r = await resolveSource(pathToFileURL(packagePath(MODEL_REL)).href);
    assert.equal(r.kind, 'file');
    assert.equal(r.sha256, MODEL_SHA);
  });

  test('a local file that differs from expectedSha256 is refused', async () => {
    await rejectsWith(resolveSource(packagePath(MODEL_REL), { expectedSha256: WRONG_SHA }), 'sha256 mismatch', WRONG_SHA);
  });

  test('missing file, directory and non-.onnx paths give one-line hints', async () => {
    const missing = join(cache, 'missing.onnx');
    await rejectsWith(resolveSource(missing), missing, 'not found');
    await rejectsWith(resolveSource(cache + '/'), cache, 'is a directory');
    const json = join(cache, 'model.json');
    await writeFile(json, '{}');
    // A .json path is taken as a TF.js model to convert; an empty one is refused by the importer.
    await assert.rejects(resolveSource(json, { cacheDir: cache }), (err: unknown) => err instanceof HeadswapError && err.message.includes(json));
    const pb = join(cache, 'model.pb');
    await writeFile(pb, '');
    await rejectsWith(resolveSource(pb), pb, 'not an .onnx file');
  });
});

describe('cacheDir', () => {
  test('$HEADSWAP_CACHE wins, else the per-user cache dir', (t) => {
    const saved = process.env.HEADSWAP_CACHE;
    t.after(() => {
      if (saved === undefined) delete process.env.HEADSWAP_CACHE;
      else process.env.HEADSWAP_CACHE = saved;
    });
    process.env.HEADSWAP_CACHE = cache;
    assert.equal(cacheDir(), cache);
    delete process.env.HEADSWAP_CACHE;
    assert.match(cacheDir(), /headswap$/);
    assert.notEqual(cacheDir(), cache);
  });
});
