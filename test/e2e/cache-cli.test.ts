import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FeatureCache } from '../../src/features/cache.js';
import { databasePath } from '../../src/runtime/download.js';
import { roundToHalf } from '../../src/util/half.js';
import { createRng } from '../../src/util/random.js';
import { assertOneLineError } from '../helpers/assert.js';
import { packagePath } from '../../src/util/paths.js';
import { copySubset } from '../helpers/dataset.js';

// `headswap cache` on the built package (npm test builds it first), after a real training run.
const BIN = packagePath('bin', 'headswap.js');
let dir: string;
let cacheDir: string;
let env: NodeJS.ProcessEnv;

function headswap(args: readonly string[], extraEnv: NodeJS.ProcessEnv = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env: { ...env, ...extraEnv }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}


interface Shown {
  exists: boolean;
  path: string;
  fileBytes: number;
  rows: number;
  backbones: { label: string; fingerprint: string; rows: number; f16Rows: number; variants: string[]; dims: number[]; lastUsed: number }[];
}

function show(args: readonly string[] = []): Shown {
  const r = headswap(['cache', '--json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Shown;
}

function runCount(): number {
  const r = headswap(['runs', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as unknown[]).length;
}

const PER_CLASS = 4;
const PHOTOS = 2 * PER_CLASS;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-cache-cli-'));
  cacheDir = join(dir, 'cache');
  env = { ...process.env, HEADSWAP_CACHE: cacheDir };
  delete env.HEADSWAP_CACHE_MAX_MB;
  assert.ok(existsSync(packagePath('dist', 'cli', 'main.js')), 'run `npm run build` before this test');
  await copySubset('train', ['hat', 'shoes'], PER_CLASS, join(dir, 'photos'));
});
after(() => rm(dir, { recursive: true, force: true }));

describe('headswap cache', () => {
  it('before any run: says there is no cache, and creates none', () => {
    const r = headswap(['cache']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no feature cache at .*headswap\.sqlite yet$/m);
    assert.equal(show().exists, false);
    assert.equal(existsSync(cacheDir), false);
  });

  it('after a training run: both bundled backbones with their rows, as text and JSON', () => {
    const t = headswap(['train', 'photos', '--out', 'photos.model']);
    assert.equal(t.code, 0, t.stderr);
    const shown = show();
    assert.equal(shown.exists, true);
    assert.equal(shown.rows, 2 * PHOTOS);
    assert.deepEqual(
      shown.backbones.map((b) => [b.label, b.rows, b.f16Rows, b.variants, b.dims]),
      [
        ['mobilenet_edgetpu', PHOTOS, PHOTOS, [''], [1280]],
        ['mobilenet_v2', PHOTOS, PHOTOS, [''], [1280]],
      ],
    );
    for (const b of shown.backbones) assert.ok(Math.abs(b.lastUsed - Date.now() / 1000) < 600, `last used ${b.lastUsed}`);

    const text = headswap(['cache']);
    assert.equal(text.code, 0, text.stderr);
    assert.equal(text.stderr, '');
    const lines = text.stdout.trim().split('\n');
    assert.match(lines[0]!, new RegExp(`headswap\\.sqlite: [\\d.]+ MB on disk \\(file [\\d.]+ MB \\+ log [\\d.]+ MB\\), ${2 * PHOTOS} cached vectors$`));
    assert.match(lines[1]!, /^backbone\s+fingerprint\s+dims\s+rows\s+variants\s+stored\s+MB\s+last used$/);
    const today = new Date().toISOString().slice(0, 10);
    for (const b of shown.backbones) {
      assert.ok(
        lines.some((l) => new RegExp(`^${b.label}\\s+${b.fingerprint.slice(0, 8)}\\s+1280\\s+${PHOTOS}\\s+plain\\s+f16\\s+[\\d.]+\\s+${today}$`).test(l)),
        `no row for ${b.label} in:\n${text.stdout}`,
      );
    }
  });

  it('warns past HEADSWAP_CACHE_MAX_MB, and --cache-dir reads another folder', () => {
    const r = headswap(['cache'], { HEADSWAP_CACHE_MAX_MB: '0.001' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^warning: feature cache is [\d.]+ MB, over HEADSWAP_CACHE_MAX_MB=0\.001; 'headswap cache prune --max-mb 0\.001' frees it\n$/);
    // The same cache, named with --cache-dir while $HEADSWAP_CACHE points at an empty folder.
    const other = spawnSync(process.execPath, [BIN, 'cache', '--json', '--cache-dir', cacheDir], { cwd: dir, env: { ...env, HEADSWAP_CACHE: join(dir, 'empty') }, encoding: 'utf8' });
    assert.equal(other.status, 0, other.stderr);
    assert.equal((JSON.parse(other.stdout) as Shown).rows, 2 * PHOTOS);
    assert.equal(show(['--cache-dir', join(dir, 'empty')]).exists, false);
  });

  it('prune --backbone mobilenet_v2 --dry-run deletes nothing; without it, that backbone\'s rows go and the history stays', () => {
    const before = show();
    const size = statSync(join(cacheDir, 'headswap.sqlite')).size;
    const dry = headswap(['cache', 'prune', '--backbone', 'mobilenet_v2', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`^would delete ${PHOTOS} cached vectors \\(${PHOTOS} left\\):$`, 'm'));
    assert.match(dry.stdout, new RegExp(`^  mobilenet_v2\\s+[0-9a-f]{8}\\s+${PHOTOS} rows\\s+~[\\d.]+ MB$`, 'm'));
    assert.match(dry.stdout, /^feature cache: [\d.]+ MB now, ~[\d.]+ MB after \(--dry-run: nothing deleted\)$/m);
    assert.deepEqual(show().backbones.map((b) => b.rows), before.backbones.map((b) => b.rows));
    assert.equal(statSync(join(cacheDir, 'headswap.sqlite')).size, size);

    const pruned = headswap(['cache', 'prune', '--backbone', 'mobilenet_v2']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, new RegExp(`^deleted ${PHOTOS} cached vectors \\(${PHOTOS} left\\):$`, 'm'));
    assert.match(pruned.stdout, /^feature cache: [\d.]+ MB -> [\d.]+ MB$/m);
    const after = show();
    assert.deepEqual(after.backbones.map((b) => [b.label, b.rows]), [['mobilenet_edgetpu', PHOTOS]]);
    assert.equal(runCount(), 1, 'the run history is kept');

    // The next run recomputes only what was pruned.
    const again = headswap(['train', 'photos', '--out', 'photos.model', '--force']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`features: ${PHOTOS} computed, ${PHOTOS} from cache`));
    assert.equal(show().rows, 2 * PHOTOS);
  });

  it('prune --max-mb and --older-than by JSON', () => {
    const kept = headswap(['cache', 'prune', '--older-than', '1', '--json']);
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal((JSON.parse(kept.stdout) as { rows: number }).rows, 0, 'every row was used today');
    const all = headswap(['cache', 'prune', '--max-mb', '0', '--json']);
    assert.equal(all.code, 0, all.stderr);
    const result = JSON.parse(all.stdout) as { rows: number; rowsLeft: number; reachedMaxMb: boolean; bytesBefore: number; bytesAfter: number; vacuum: { ok: boolean } };
    assert.deepEqual([result.rows, result.rowsLeft, result.reachedMaxMb, result.vacuum.ok], [2 * PHOTOS, 0, false, true]);
    assert.ok(result.bytesAfter < result.bytesBefore, `${result.bytesBefore} -> ${result.bytesAfter} bytes`);
    assert.match(all.stderr, /^warning: the cache is still over 0 MB: the run history and names take the rest\n$/);
    assert.equal(show().rows, 0);
    assert.equal(runCount(), 2);
  });

  it('a VACUUM that cannot write its copy: one line after the deletion, and a rerun finishes it', (t) => {
    if (spawnSync('prlimit', ['--version']).status !== 0) return t.skip('prlimit is not installed');
    // 300 rows of 1280 seeded float16s (1.3 MB), a third of one fingerprint, the rest of another.
    const big = join(dir, 'big-cache');
    const cache = FeatureCache.open(databasePath(big));
    const rng = createRng(5);
    for (let i = 0; i < 300; i += 50) {
      cache.putMany(Array.from({ length: 50 }, (_, k) => ({ key: { backbone: i < 100 ? 'aaaa'.repeat(16) : 'bbbb'.repeat(16), image: String(i + k).padStart(64, '0') }, vector: roundToHalf(Float32Array.from({ length: 1280 }, () => rng() * 6)) })));
    }
    cache.close();
    const size = statSync(databasePath(big)).size;
    // A file-size limit well under the file: deleting writes a few pages to the log, VACUUM's copy does not fit.
    const limited = spawnSync('prlimit', [`--fsize=${Math.round(size / 4)}`, process.execPath, BIN, 'cache', 'prune', '--backbone', 'bbbb', '--cache-dir', big], { cwd: dir, env, encoding: 'utf8' });
    assert.equal(limited.status, 1, limited.stderr);
    assert.match(limited.stdout, /^deleted 200 cached vectors \(100 left\):$/m);
    assertOneLineError({ code: limited.status ?? -1, stderr: limited.stderr }, /headswap\.sqlite: VACUUM failed \(.+\): the deleted rows' space is reused by new rows, but the file did not shrink; VACUUM needs about [\d.]+ MB of free disk space: free some and run the prune again$/);
    const rerun = headswap(['cache', 'prune', '--backbone', 'aaaa', '--older-than', '1', '--cache-dir', big]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stdout, /^nothing to delete \(compacted: [\d.]+ MB -> [\d.]+ MB\); 100 cached vectors, [\d.]+ MB$/m);
    assert.ok(statSync(databasePath(big)).size < size / 2, `${size} -> ${statSync(databasePath(big)).size} bytes`);
  });

  it('a bad flag or a missing selector: one line, non-zero exit', () => {
    assertOneLineError(headswap(['cache', 'prune', '--frob']), /^headswap: unknown option '--frob'; see 'headswap cache prune --help'$/);
    assertOneLineError(headswap(['cache', 'prune', '--max-mb', 'lots']), /^headswap: --max-mb lots is not a number ≥ 0; see 'headswap cache prune --help'$/);
    assertOneLineError(headswap(['cache', 'show', '--limit', '3']), /unknown option '--limit'; see 'headswap cache show --help'$/);
    assertOneLineError(headswap(['cache', 'prune']), /cache prune needs --backbone <name>, --older-than <days> or --max-mb <n>/);
    assertOneLineError(headswap(['cache', 'prune', '--backbone', 'resnet50']), /no cached backbone matches 'resnet50'; 'headswap cache' lists them/);
  });
});
