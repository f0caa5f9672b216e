import { existsSync } from 'node:fs';
import type { Command, Option } from 'commander';
import { HeadswapError } from '../errors.js';
import { table } from '../evaluate/format.js';
import { cacheSizeWarning, formatMb, openFeatureCache, type BackboneUsage, type FeatureCache, type PruneResult } from '../features/cache.js';
import { databasePath } from '../runtime/download.js';
import { escapeControl } from '../util/text.js';
import { info, warn } from './output.js';
import { num } from './parse.js';
import { cacheDirOption } from './usage.js';

interface ShowFlags {
  cacheDir?: string;
  json?: boolean;
}

interface PruneFlags extends ShowFlags {
  backbone?: string;
  olderThan?: number;
  maxMb?: number;
  dryRun?: boolean;
}

const CACHE_DIR = (): Option => cacheDirOption('cache folder');

/** The cache in `dir`, or undefined when there is no file yet (one is not created just to look at it). */
function withCache<T>(dir: string | undefined, fn: (cache: FeatureCache) => T): T | undefined {
  if (!existsSync(databasePath(dir))) return undefined;
  const cache = openFeatureCache(dir);
  try {
    return fn(cache);
  } finally {
    cache.close();
  }
}

const label = (b: { label: string | undefined }): string => b.label ?? '(unnamed)';

const short = (fingerprint: string): string => fingerprint.slice(0, 8);

function variants(list: readonly string[]): string {
  const names = list.map((v) => (v === '' ? 'plain' : v));
  return names.length <= 3 ? names.join(', ') : `${names.slice(0, 3).join(', ')} +${names.length - 3}`;
}

const day = (epochSeconds: number | undefined): string => (epochSeconds === undefined ? '-' : new Date(epochSeconds * 1000).toISOString().slice(0, 10));

function stored(b: BackboneUsage): string {
  return b.f16Rows === b.rows ? 'f16' : b.f16Rows === 0 ? 'f32' : 'f16+f32';
}

function show(f: ShowFlags): void {
  const path = databasePath(f.cacheDir);
  const usage = withCache(f.cacheDir, (c) => c.usage());
  if (f.json) {
    const out = usage ?? { path, fileBytes: 0, walBytes: 0, rows: 0, backbones: [] };
    process.stdout.write(`${JSON.stringify({ exists: usage !== undefined, ...out }, null, 2)}\n`);
  } else if (!usage) {
    process.stdout.write(`no feature cache at ${escapeControl(path)} yet\n`);
  } else {
    const lines = [
      `${escapeControl(usage.path)}: ${formatMb(usage.fileBytes + usage.walBytes)} MB on disk (file ${formatMb(usage.fileBytes)} MB + log ${formatMb(usage.walBytes)} MB), ${usage.rows} cached vectors`,
    ];
    if (usage.backbones.length > 0) {
      const rows = usage.backbones.map((b) => [escapeControl(label(b)), short(b.fingerprint), b.dims.join(','), String(b.rows), escapeControl(variants(b.variants)), stored(b), formatMb(b.bytes), day(b.lastUsed)]);
      lines.push(table([['backbone', 'fingerprint', 'dims', 'rows', 'variants', 'stored', 'MB', 'last used'], ...rows], ['l', 'l', 'r', 'r', 'l', 'l', 'r', 'l']));
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  const warning = cacheSizeWarning(f.cacheDir);
  if (warning) warn(warning);
}

function prune(f: PruneFlags): void {
  if (f.backbone === undefined && f.olderThan === undefined && f.maxMb === undefined) {
    throw new HeadswapError("cache prune needs --backbone <name>, --older-than <days> or --max-mb <n>; 'headswap cache' shows what is cached");
  }
  const path = databasePath(f.cacheDir);
  const result = withCache(f.cacheDir, (c) => c.prune({ backbone: f.backbone, olderThanDays: f.olderThan, maxMb: f.maxMb, dryRun: f.dryRun }));
  if (!result) {
    if (f.json) process.stdout.write(`${JSON.stringify({ path, exists: false }, null, 2)}\n`);
    else process.stdout.write(`no feature cache at ${escapeControl(path)}; nothing to prune\n`);
    return;
  }
  if (f.json) process.stdout.write(`${JSON.stringify({ path, exists: true, ...result }, null, 2)}\n`);
  else process.stdout.write(`${pruneLines(result, f).join('\n')}\n`);
  if (result.vacuum && !result.vacuum.ok) {
    const { reason, code } = result.vacuum;
    const fix = code.startsWith('SQLITE_BUSY')
      ? 'another headswap process is using the cache: run the prune again when it is done'
      : `VACUUM needs about ${formatMb(result.bytesBefore)} MB of free disk space: free some and run the prune again`;
    throw new HeadswapError(`${path}: VACUUM failed (${reason}, ${code}): the deleted rows' space is reused by new rows, but the file did not shrink; ${fix}`);
  }
  if (result.reachedMaxMb === false) {
    warn(`the cache is still over ${f.maxMb} MB: ${f.backbone === undefined ? 'the run history and names take the rest' : `the rest is not ${f.backbone}'s`}`);
  }
}

function pruneLines(r: PruneResult, f: PruneFlags): string[] {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  if (r.rows === 0) {
    const shrunk = r.vacuum?.ok ? ` (compacted: ${formatMb(r.bytesBefore)} MB -> ${formatMb(r.bytesAfter)} MB)` : '';
    return [`nothing to delete${shrunk}; ${r.rowsLeft} cached vectors, ${formatMb(r.bytesAfter)} MB`];
  }
  const lines = [`${verb} ${r.rows} cached vectors (${r.rowsLeft} left):`];
  lines.push(table(r.backbones.map((b) => ['  ' + escapeControl(label(b)), short(b.fingerprint), `${b.rows} rows`, `~${formatMb(b.bytes)} MB`]), ['l', 'l', 'r', 'r']));
  lines.push(
    r.dryRun
      ? `feature cache: ${formatMb(r.bytesBefore)} MB now, ~${formatMb(r.bytesAfter)} MB after (--dry-run: nothing deleted)`
      : `feature cache: ${formatMb(r.bytesBefore)} MB -> ${formatMb(r.bytesAfter)} MB${f.maxMb === undefined ? '' : ` (--max-mb ${f.maxMb})`}`,
  );
  return lines;
}

export function registerCache(program: Command): void {
  const cache = program.command('cache').description('the feature cache: what it holds per backbone, and pruning it');
  cache
    .command('show', { isDefault: true })
    .description('the cache file, its size, and per backbone: rows, variants, MB, last use')
    .addOption(CACHE_DIR())
    .option('--json', 'print JSON')
    .action(show);
  cache
    .command('prune')
    .description('delete cached vectors, then VACUUM so the file shrinks; the run history is kept')
    .option('--backbone <name>', "only this backbone's rows (all of them unless --older-than or --max-mb narrows it): its name as 'headswap cache' shows it, or a fingerprint prefix")
    .option('--older-than <days>', 'rows not used for this many days', num(0, Infinity))
    .option('--max-mb <n>', 'then the least recently used rows, until the file is at most n MB (10^6 bytes)', num(0, Infinity))
    .option('--dry-run', 'say what would be deleted, delete nothing')
    .addOption(CACHE_DIR())
    .option('--json', 'print JSON')
    .action(prune);
}
