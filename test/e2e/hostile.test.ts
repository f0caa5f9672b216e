import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IMAGENET_CROP_224 } from '../../src/backbone/zoo.js';
import { HeadswapError } from '../../src/errors.js';
import { loadRgb } from '../../src/image/preprocess.js';
import { packagePath } from '../../src/util/paths.js';
import { escapeControl } from '../../src/util/text.js';
import { CLOTHING7, copySubset } from '../helpers/dataset.js';
import { writeHostileCorpus, type HostileCase, type HostileCorpus, type Outcome } from '../helpers/hostile-corpus.js';
import { startServer, type TestServer } from '../helpers/http-server.js';

// The real entry point users run, on the built package (npm test builds it first).
const BIN = packagePath('bin', 'headswap.js');
/** One file may take at most this long to be decoded or refused. */
const PER_FILE_MS = 10_000;

let dir: string;
let corpus: HostileCorpus;
let server: TestServer;
let env: NodeJS.ProcessEnv;
let model: string;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function headswap(args: readonly string[], options: { cwd?: string; uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): Run {
  const t = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? dir,
    env: options.env ?? env,
    encoding: 'utf8',
    timeout: 60_000,
    killSignal: 'SIGKILL',
    uid: options.uid,
    gid: options.gid,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t };
}

/** No crash, no stack trace, no "unexpected error": what every run on the corpus must satisfy. */
function assertClean(r: Run, what: string): void {
  assert.equal(r.signal, null, `${what} was killed (${r.signal}) after ${r.ms.toFixed(0)} ms: a hang or a crash`);
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${what}: stack trace on stderr`);
  assert.doesNotMatch(r.stderr, /unexpected error/, what);
}

/** The stderr line that reports `path` as skipped (paths are printed with control characters escaped). */
function skipLine(stderr: string, path: string): string | undefined {
  return stderr.split('\n').find((l) => l.startsWith(`warning: skipped ${escapeControl(path)}: `));
}

function isSkip(o: Outcome): o is RegExp {
  return o instanceof RegExp;
}

/** Asserts the used set and every skip line of one command, case by case. */
function assertOutcomes(r: Run, used: readonly string[], pick: (c: HostileCase) => Outcome, what: string): void {
  const usedSet = new Set(used);
  for (const path of corpus.good) assert.ok(usedSet.has(path), `${what}: good photo ${path} not used`);
  for (const c of corpus.cases) {
    const o = pick(c);
    if (o === 'omit') continue;
    const line = skipLine(r.stderr, c.path);
    if (o === 'used') {
      assert.ok(usedSet.has(c.path), `${what}: ${c.id} should be used\n${line ?? ''}`);
      assert.equal(line, undefined, `${what}: ${c.id} used but also reported skipped`);
    } else if (o === 'ignored') {
      assert.ok(!usedSet.has(c.path), `${what}: ${c.id} should be ignored`);
      assert.equal(line, undefined, `${what}: ${c.id} should be ignored silently`);
    } else {
      assert.ok(!usedSet.has(c.path), `${what}: ${c.id} should be skipped, was used`);
      assert.ok(line, `${what}: no 'skipped <file>: <reason>' line for ${c.id}\n${r.stderr.slice(0, 3000)}`);
      assert.match(line.slice(`warning: skipped ${escapeControl(c.path)}: `.length), o, `${what}: ${c.id}`);
    }
  }
  const expectedUsed = corpus.good.length + corpus.cases.filter((c) => pick(c) === 'used').length;
  assert.equal(used.length, expectedUsed, `${what}: ${used.length} used, expected ${expectedUsed}`);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-hostile-'));
  await chmod(dir, 0o755); // the no-permission case below runs a child as another user
  server = await startServer({});
  corpus = await writeHostileCorpus(join(dir, 'corpus'), { svgUrl: server.url });
  env = { ...process.env, HEADSWAP_CACHE: join(dir, 'cache') };
  model = join(dir, 'hostile.model');
  assert.ok(existsSync(packagePath('dist', 'cli', 'main.js')), 'run `npm run build` before this test');
});
after(async () => {
  await server?.close();
  // The mode-000 file must be deletable by non-root runs of the suite.
  await rm(dir, { recursive: true, force: true });
});

describe('hostile input corpus', () => {
  it('every file decodes or is refused with one line naming it, each within 10 s', async () => {
    for (const c of corpus.cases) {
      if (c.explicit === 'omit') continue;
      const t = performance.now();
      const result = await loadRgb(c.path, IMAGENET_CROP_224).then(
        (image) => ({ image }),
        (error: unknown) => ({ error }),
      );
      const ms = performance.now() - t;
      assert.ok(ms < PER_FILE_MS, `${c.id} took ${ms.toFixed(0)} ms`);
      if ('image' in result) {
        assert.equal(c.explicit, 'used', `${c.id} decoded but should have been refused`);
        assert.equal(result.image.data.length, 224 * 224 * 3, c.id);
        if (c.reference) {
          // The same picture, upright: EXIF orientation applied, misnamed formats read by content.
          const ref = await loadRgb(c.reference, IMAGENET_CROP_224);
          let diff = 0;
          for (let i = 0; i < ref.data.length; i++) diff += Math.abs(ref.data[i]! - result.image.data[i]!);
          assert.ok(diff / ref.data.length < 4, `${c.id}: mean pixel difference ${(diff / ref.data.length).toFixed(1)} from the upright reference`);
        }
      } else {
        const err = result.error;
        assert.ok(err instanceof HeadswapError, `${c.id}: ${String(err)}`);
        assert.ok(err.message.startsWith(`${c.path}: `), `${c.id}: message does not start with the file: ${err.message}`);
        assert.ok(isSkip(c.explicit), `${c.id} refused (${err.message}) but should be used`);
        assert.match(err.message, c.explicit, c.id);
        assert.ok(!escapeControl(err.message.slice(c.path.length)).includes('\\n'), `${c.id}: reason is more than one line`);
      }
    }
  });

  it('train: trains on the good files, skips each bad one with a line naming it, counts them', () => {
    const r = headswap(['train', corpus.root, '--out', model, '--seed', '1']);
    assertClean(r, 'train');
    const skipped = r.stderr.split('\n').filter((l) => l.startsWith('warning: skipped '));
    const expectedSkips = corpus.cases.filter((c) => isSkip(c.train)).length;
    assert.equal(skipped.length, expectedSkips, r.stderr);
    assert.match(r.stdout, new RegExp(`^skipped ${expectedSkips} file\\(s\\) \\(listed above\\)$`, 'm'));
    // 10 000 empty folders: one summary line, not 10 000.
    const emptyLines = r.stderr.split('\n').filter((l) => /class folders? .*no images/.test(l));
    assert.equal(emptyLines.length, 1, emptyLines.slice(0, 3).join('\n'));
    assert.match(emptyLines[0]!, /10000 class folders have no images and were ignored/);
    // Names with newlines and escape sequences are escaped: nothing raw reaches the terminal.
    assert.doesNotMatch(r.stdout + r.stderr, /\u001b/);
    assert.ok(existsSync(join(model, 'model.onnx')));

    // The same run as JSON (features now cached): the exact files used, the exact files skipped.
    const j = headswap(['train', corpus.root, '--out', join(dir, 'json.model'), '--seed', '1', '--json']);
    assertClean(j, 'train --json');
    const result = JSON.parse(j.stdout) as { files: { path: string }[]; skipped: { path: string; reason: string }[]; features: { computed: number } };
    assert.equal(result.features.computed, 0, 'second run takes every feature from the cache');
    assertOutcomes(j, result.files.map((f) => f.path), (c) => c.train, 'train');
    for (const c of corpus.cases.filter((x) => isSkip(x.train))) {
      const s = result.skipped.find((x) => x.path === c.path);
      assert.ok(s, `train --json: ${c.id} missing from skipped`);
      assert.match(s.reason, c.train as RegExp, c.id);
    }
    assert.equal(result.skipped.length, expectedSkips);
  });

  it('predict on each file given by name, including SVG, pipes, loops and dashes', () => {
    // Run from the shoes folder so the names that look like options are passed as they are, after `--`.
    const cwd = join(corpus.root, 'shoes');
    const arg = (path: string): string => (path.startsWith(`${cwd}/-`) ? path.slice(cwd.length + 1) : path);
    const given = corpus.cases.filter((c) => c.explicit !== 'omit');
    assert.ok(given.some((c) => arg(c.path).startsWith('--')), 'a name like an option is passed bare');
    const r = headswap(['predict', model, '--json', '--', ...given.map((c) => arg(c.path))], { cwd });
    assertClean(r, 'predict <files>');
    const used = r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { input: string }).input);
    for (const c of given) {
      const line = skipLine(r.stderr, arg(c.path));
      if (c.explicit === 'used') assert.ok(used.includes(arg(c.path)) && !line, `${c.id} should be used\n${line ?? ''}`);
      else if (isSkip(c.explicit)) {
        assert.ok(!used.includes(arg(c.path)) && line, `${c.id} should be skipped with a line`);
        assert.match(line, c.explicit, c.id);
      }
    }
    assert.equal(used.length, given.filter((c) => c.explicit === 'used').length);
  });

  // classify walks folders with predict's code (listImages, streamPredictions): this covers the
  // folder walk of both; predict with the trained model is run on each file by name above.
  it('classify on the folder: one text row per usable image, one line per skipped file, a summary', () => {
    const r = headswap(['classify', corpus.root, '--top', '1']);
    assertClean(r, 'classify');
    const rows = r.stdout.trim().split('\n');
    const files = rows.map((l) => l.split('\t')[0]!);
    const byShown = new Map([...corpus.good, ...corpus.cases.map((c) => c.path)].map((p) => [escapeControl(p), p]));
    const used = files.map((f) => byShown.get(f) ?? f);
    assertOutcomes(r, used, (c) => c.predict, 'classify');
    assert.ok(files.includes(join(corpus.root, 'shoes', 'new\\nline.jpg')), 'newline shown as \\n');
    const skips = corpus.cases.filter((c) => isSkip(c.predict)).length;
    assert.match(r.stderr, new RegExp(`^skipped ${skips} file\\(s\\) \\(listed above\\); ${rows.length} image\\(s\\) classified$`, 'm'));
  });

  it('the SVG files made no request to the server they reference', () => {
    assert.deepEqual(server.requests, []);
  });

  it('a file without read permission is skipped with its reason (checked as an unprivileged user)', async (t) => {
    const root = process.getuid?.() === 0;
    const nobody = 65534;
    const data = join(dir, 'locked-data');
    await copySubset('train', ['hat', 'shoes'], 4, data);
    const locked = join(data, 'hat', 'locked.jpg');
    const [pants] = (await readdir(join(CLOTHING7, 'train', 'pants'))).sort();
    await copyFile(join(CLOTHING7, 'train', 'pants', pants!), locked);
    await chmod(locked, 0o000);
    const work = join(dir, 'unprivileged');
    await mkdir(work);
    const options = root ? { uid: nobody, gid: nobody, cwd: work, env: { ...process.env, HEADSWAP_CACHE: join(work, 'cache') } } : { cwd: work };
    if (root) {
      // Readable data, a writable working folder for the child's cache and model.
      for (const d of [data, join(data, 'hat'), join(data, 'shoes')]) await chmod(d, 0o755);
      for (const c of ['hat', 'shoes']) for (const f of await readdir(join(data, c))) if (f !== 'locked.jpg') await chmod(join(data, c, f), 0o644);
      await chown(work, nobody, nobody);
      // The child must also reach the package: a checkout under a private folder (mktemp -d is
      // mode 700) cannot be read by that user at all.
      const probe = spawnSync(process.execPath, [BIN, '--version'], { uid: nobody, gid: nobody, encoding: 'utf8' });
      if (probe.status !== 0) {
        const why = probe.error ? String(probe.error) : (probe.stderr.trim().split('\n').find((l) => /Error|EACCES/.test(l)) ?? `exit ${probe.status}`);
        return t.skip(`running as root and cannot run headswap as uid ${nobody} (${why}); the mode-000 case is covered only as 'used'`);
      }
    }
    const r = headswap(['train', data, '--out', join(work, 'm.model')], options);
    assertClean(r, 'train as an unprivileged user');
    const line = skipLine(r.stderr, locked);
    assert.ok(line, r.stderr);
    assert.match(line, /cannot read \(EACCES\); check its permissions/);
    const p = headswap(['predict', join(work, 'm.model'), locked, join(data, 'shoes')], options);
    assertClean(p, 'predict as an unprivileged user');
    assert.match(skipLine(p.stderr, locked) ?? '', /cannot read \(EACCES/);
  });
});
