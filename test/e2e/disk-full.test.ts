import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { train } from '../../src/pipeline/train.js';
import { packagePath } from '../../src/util/paths.js';
import { CLOTHING7 } from '../helpers/dataset.js';
import { cacheProblems, modelLeftovers } from '../helpers/train-child.js';

/**
 * A real full disk when this process may mount a small tmpfs (root with CAP_SYS_ADMIN, as here);
 * otherwise a real write error from the kernel all the same: the child runs under a file-size
 * limit (prlimit --fsize), so writes past it fail with EFBIG.
 */
type Method = { kind: 'tmpfs'; mount: string } | { kind: 'fsize' };

const BIN = packagePath('bin', 'headswap.js');
let dir: string;
let method: Method | undefined;
let why = '';
let vol: string;

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

async function photos(dest: string, from: number, count: number): Promise<void> {
  for (const c of ['hat', 'pants', 'shoes']) {
    const names = (await readdir(join(CLOTHING7, 'train', c))).sort().slice(from, from + count);
    await mkdir(join(dest, c), { recursive: true });
    for (const n of names) await writeFile(join(dest, c, n), readFileSync(join(CLOTHING7, 'train', c, n)));
  }
}

/** Fills the tmpfs until `leave` bytes are free. */
async function fill(leave: number): Promise<string> {
  const filler = join(vol, 'filler');
  const s = statfsSync(vol);
  await writeFile(filler, Buffer.alloc(Math.max(0, s.bavail * s.bsize - leave)));
  return filler;
}

/** `headswap train` in a child, under the file-size limit when that is the method. */
function trainCli(args: readonly string[], cacheDir: string, fsize: number): { code: number | null; stderr: string } {
  const argv = [process.execPath, BIN, 'train', ...args];
  const [cmd, ...rest] = method?.kind === 'fsize' ? ['prlimit', `--fsize=${fsize}`, ...argv] : argv;
  const r = spawnSync(cmd!, rest, { cwd: dir, env: { ...process.env, HEADSWAP_CACHE: cacheDir }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

function assertOneLineFailure(r: { code: number | null; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('headswap: '));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0]!, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at |TypeError|unexpected error/m, 'no stack trace, no crash after the error');
}

// One 1280-float vector per photo: the sizes below are reckoned in those (5 KB each).
const PLAIN = 'plain';
// One backbone: the volume's room is sized for one network's model and cached vectors.
const BASE = 'mobilenet_v2';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-diskfull-'));
  vol = join(dir, 'vol');
  await mkdir(vol);
  // HEADSWAP_TEST_DISK_FULL=fsize tries the fallback where mounting works too.
  const mounted =
    process.env.HEADSWAP_TEST_DISK_FULL === 'fsize'
      ? { status: 1, stderr: 'HEADSWAP_TEST_DISK_FULL=fsize', error: undefined }
      : spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0755', 'headswap-test', vol], { encoding: 'utf8' });
  if (mounted.status === 0) {
    method = { kind: 'tmpfs', mount: vol };
  } else {
    why = `mount -t tmpfs failed (${(mounted.stderr || String(mounted.error)).trim()})`;
    if (spawnSync('prlimit', ['--version']).status === 0) method = { kind: 'fsize' };
    else why += ' and prlimit is not installed';
  }
  await photos(join(dir, 'data'), 0, 6);
  await photos(join(dir, 'data2'), 6, 6);
});
after(async () => {
  if (method?.kind === 'tmpfs') spawnSync('umount', ['-l', method.mount]);
  await rm(dir, { recursive: true, force: true });
});

describe('disk full', () => {
  it('while exporting: one line, the previous model untouched, no temp folder, the cache whole', async (t) => {
    if (!method) return t.skip(why);
    t.diagnostic(`method: ${method.kind}${why ? ` (${why})` : ''}`);
    const cacheDir = join(vol, 'cache');
    const out = join(vol, 'm.model');
    await train({ data: join(dir, 'data'), cacheDir, out, seed: 1, quality: PLAIN, base: BASE });
    const before = sha(join(out, 'model.onnx'));
    // About 1 MB left (or a 1 MB file-size limit): room for the cache, not for a 2.4 MB model.
    const filler = method.kind === 'tmpfs' ? await fill(1 << 20) : undefined;
    try {
      // Another seed, so a model that did get replaced would show.
      const r = trainCli(['data', '--out', out, '--force', '--seed', '2', '--quality', PLAIN, '--base', BASE], cacheDir, 1 << 20);
      assertOneLineFailure(r, method.kind === 'tmpfs' ? /m\.model: disk full while writing the model folder; free some space/ : /m\.model: cannot write the model folder \(EFBIG/);
    } finally {
      if (filler) await rm(filler);
    }
    assert.equal(sha(join(out, 'model.onnx')), before, 'the previous model is intact');
    assert.deepEqual(modelLeftovers(out), []);
    assert.deepEqual(cacheProblems(cacheDir, 1280), []);
  });

  it('while caching features: one line, the cache opens whole, the next run resumes', async (t) => {
    if (!method) return t.skip(why);
    const cacheDir = join(vol, 'cache');
    const out = join(vol, 'm2.model');
    const previous = join(vol, 'm.model');
    const before = existsSync(previous) ? sha(join(previous, 'model.onnx')) : undefined;
    // 40 KB free (or a 60 KB file-size limit): new photos' vectors (5 KB each, 16 per commit) do not fit.
    const filler = method.kind === 'tmpfs' ? await fill(40 << 10) : undefined;
    try {
      const r = trainCli(['data2', '--out', out, '--quality', PLAIN, '--base', BASE], cacheDir, 60_000);
      assertOneLineFailure(r, method.kind === 'tmpfs' ? /headswap\.sqlite: disk full while writing the feature cache; free some space/ : /headswap\.sqlite: cannot write the feature cache \(.*SQLITE_IOERR/);
    } finally {
      if (filler) await rm(filler);
    }
    assert.deepEqual(cacheProblems(cacheDir, 1280), [], 'the cache is whole after the failed write');
    assert.ok(!existsSync(out));
    if (before) assert.equal(sha(join(previous, 'model.onnx')), before, 'the other model is intact');
    const again = await train({ data: join(dir, 'data2'), cacheDir, out, seed: 1, quality: PLAIN, base: BASE });
    assert.equal(again.evaluation.count > 0, true);
    assert.deepEqual(cacheProblems(cacheDir, 1280), []);
  });
});
