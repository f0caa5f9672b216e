import { endianness } from 'node:os';
import { basename } from 'node:path';
import type Database from 'better-sqlite3';
import { HeadswapError, msg, option } from '../errors.js';
import { databaseBytes, openDatabase, tryOptionalWrite, vacuum, withCacheErrors } from '../runtime/database.js';
import type { DatabaseOptions } from '../runtime/database-options.js';
import { cacheMaxMb, databasePath } from '../runtime/download.js';
import { fromHalf, toHalfExact } from '../util/half.js';

/** Identifies one cached feature vector. */
export interface FeatureKey {
  /** Backbone fingerprint (model sha256 + feature cut + preprocessing); opaque here. */
  backbone: string;
  /** sha256 hex of the image bytes. */
  image: string;
  /** Augmentation id; '' (the default) is the un-augmented image. */
  variant?: string;
}

export interface FeatureEntry {
  key: FeatureKey;
  vector: Float32Array;
}

/** How a row's vector is stored: little-endian float32s, or float16s (half the bytes). */
export type Encoding = 'f32' | 'f16';

export interface FeatureCacheOptions extends DatabaseOptions {
  /** The clock of last-used times, in epoch seconds (default: the system clock); for tests. */
  now?: () => number;
}

/**
 * A lookup rewrites a row's last-used time only when it is older than this: a rerun within the
 * hour writes nothing, and pruning by days or by least recent use needs no finer time.
 */
export const LAST_USED_RESOLUTION_S = 3600;

/** 1 MB, as sizes are printed and `--max-mb` / `HEADSWAP_CACHE_MAX_MB` are read. */
export const MB = 1_000_000;

/** One backbone's rows in the cache, for `headswap cache`. */
export interface BackboneUsage {
  fingerprint: string;
  /** The backbone's zoo id ('mobilenet_v2') or 'custom'; undefined when no run named it (rows from before names were kept). */
  name: string | undefined;
  /** Zoo id, file path or URL it was loaded from. */
  origin: string | undefined;
  /** How a person knows it (backboneLabel); undefined when unnamed. */
  label: string | undefined;
  rows: number;
  /** Rows stored as float16. */
  f16Rows: number;
  /** Augmentation ids, sorted; '' is the plain photo. */
  variants: string[];
  /** Vector lengths (one, unless the fingerprint was reused oddly). */
  dims: number[];
  /** Estimated bytes of its rows in the file once compacted (what pruning it frees, after VACUUM). */
  bytes: number;
  /** Epoch seconds of the most recent use; undefined when every row predates last-used times. */
  lastUsed: number | undefined;
}

export interface CacheUsage {
  path: string;
  /** Bytes of the SQLite file and of its write-ahead log. */
  fileBytes: number;
  walBytes: number;
  rows: number;
  /** Sorted by label (unnamed ones last), then fingerprint. */
  backbones: BackboneUsage[];
}

export interface PruneOptions {
  /** Limit pruning to one backbone: its name ('mobilenet_v2'), its origin, or a fingerprint prefix (4+ hex digits). Alone, it deletes all its rows. */
  backbone?: string;
  /** Delete rows (of that backbone, if given) not used for this many days. */
  olderThanDays?: number;
  /** Then delete the least recently used rows (of that backbone, if given) until the file is at most this many MB. */
  maxMb?: number;
  /** Only say what would go. */
  dryRun?: boolean;
}

export interface PrunedBackbone {
  fingerprint: string;
  /** backboneLabel; undefined when unnamed. */
  label: string | undefined;
  rows: number;
  /** Estimated bytes of those rows once compacted. */
  bytes: number;
}

export interface PruneResult {
  dryRun: boolean;
  /** Rows deleted (or that would be). */
  rows: number;
  backbones: PrunedBackbone[];
  /** Rows left in the cache. */
  rowsLeft: number;
  /** File + write-ahead log before; after (measured, or estimated for a dry run). */
  bytesBefore: number;
  bytesAfter: number;
  /** VACUUM's outcome; undefined when it did not run (dry run, nothing deleted). */
  vacuum?: { ok: true } | { ok: false; reason: string; code: string };
  /** With maxMb: false when even deleting every row in scope leaves the file over it. */
  reachedMaxMb?: boolean;
}

interface VectorRow {
  dim: number;
  vector: Buffer;
  encoding: string;
  last_used: number;
}

interface PrunePlan {
  rowids: number[];
  perBackbone: Map<string, PrunedBackbone>;
  /** Rows kept. */
  rowsLeft: number;
  /** Estimated file size once the rows are gone and the file is compacted, and the part of it that is not features. */
  predictedBytes: number;
  otherBytes: number;
  /** Whether rows in scope are kept that a further maxMb pass could delete. */
  scopeLeft: boolean;
}

/** A row as the features_by_use index holds it: enough to size and select it without reading its vector. */
type IndexRow = [rowid: number, backbone: string, variant: string, dim: number, encoding: string, lastUsed: number];

/**
 * Backbone feature vectors kept in one SQLite file, so a rerun skips the backbone for
 * images it has already seen. Safe to share between processes: WAL lets readers run while
 * one process writes, and writers wait up to the busy timeout for each other.
 *
 * A vector is stored as float16 when that is exact (extract.ts rounds every vector to float16
 * first, so its rows take half the bytes) and as float32 otherwise: the cache never changes a
 * vector, so a rerun from it sees the same bits a fresh computation gave.
 */
export class FeatureCache {
  private readonly selectOne: Database.Statement<[string, string, string], VectorRow>;
  private readonly countAll: Database.Statement<[], number>;
  private readonly countBackbone: Database.Statement<[string], number>;
  private readonly touchRows: Database.Statement<[number, string, string, string, number]>;
  private readonly insertAll: Database.Transaction<(entries: readonly FeatureEntry[], now: number) => void>;
  private readonly selectMany: Database.Transaction<
    (backbone: string, images: readonly string[], variant: string, stale: number) => { found: Map<string, Float32Array>; stale: string[] }
  >;
  private readonly now: () => number;

  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
    options: FeatureCacheOptions,
  ) {
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.selectOne = db.prepare(
      'SELECT dim, vector, encoding, last_used FROM features WHERE backbone = ? AND image = ? AND variant = ?',
    );
    this.countAll = db.prepare<[], number>('SELECT count(*) FROM features').pluck();
    this.countBackbone = db.prepare<[string], number>('SELECT count(*) FROM features WHERE backbone = ?').pluck();
    this.touchRows = db.prepare(
      'UPDATE features SET last_used = ? WHERE backbone = ? AND variant = ? AND image IN (SELECT value FROM json_each(?)) AND last_used < ?',
    );
    const insert = db.prepare<[string, string, string, number, Buffer, Encoding, number]>(
      'INSERT OR REPLACE INTO features (backbone, image, variant, dim, vector, encoding, last_used) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.insertAll = db.transaction((entries, now) => {
      for (const { key, vector } of entries) {
        const { encoding, blob } = encodeVector(vector);
        insert.run(key.backbone, key.image, key.variant ?? '', vector.length, blob, encoding, now);
      }
    });
    // One read transaction for the whole lookup: a single snapshot, and no lock round trip per row.
    this.selectMany = db.transaction((backbone, images, variant, staleBefore) => {
      const found = new Map<string, Float32Array>();
      const stale: string[] = [];
      for (const image of images) {
        const row = this.selectOne.get(backbone, image, variant);
        const vector = row && decodeRow(row);
        if (!vector) continue;
        found.set(image, vector);
        if (row.last_used < staleBefore) stale.push(image);
      }
      return { found, stale };
    });
  }

  /**
   * Opens the cache file, creating it unless read-only. Checks that it is a SQLite database
   * (this catches foreign and truncated files) with a schema this version understands. It does
   * not run PRAGMA quick_check, which reads the whole file (seconds for a large cache on a cold
   * disk); damage found later by any method is reported with the same "corrupted" error.
   */
  static open(path: string, options: FeatureCacheOptions = {}): FeatureCache {
    return new FeatureCache(path, openDatabase(path, options), options);
  }

  /** The cached vector, or undefined if absent (or stored with a length that does not match). */
  get(key: FeatureKey): Float32Array | undefined {
    if (!this.db.open) return undefined;
    const { backbone, image, variant = '' } = key;
    const row = withCacheErrors(this.path, () => this.selectOne.get(backbone, image, variant));
    const vector = row && decodeRow(row);
    const now = this.now();
    if (vector && row.last_used < now - LAST_USED_RESOLUTION_S) this.touch(backbone, variant, [image], now);
    return vector;
  }

  /**
   * Cached vectors for many images of one backbone/variant, keyed by image; absent ones are left out.
   * The rows found get the current time as their last use (one UPDATE right after the read, and
   * only for rows not already used within LAST_USED_RESOLUTION_S; given up if the file is locked,
   * read-only or full). A closed cache has nothing: a read-ahead still in flight when a failed
   * run closed the cache (e.g. the disk filled up) then finishes quietly instead of crashing the process.
   */
  getMany(backbone: string, images: readonly string[], variant = ''): Map<string, Float32Array> {
    if (!this.db.open) return new Map();
    const now = this.now();
    const { found, stale } = withCacheErrors(this.path, () => this.selectMany(backbone, images, variant, now - LAST_USED_RESOLUTION_S));
    if (stale.length > 0) this.touch(backbone, variant, stale, now);
    return found;
  }

  private touch(backbone: string, variant: string, images: readonly string[], now: number): void {
    if (this.db.readonly) return;
    tryOptionalWrite(this.path, () => this.touchRows.run(now, backbone, variant, JSON.stringify(images), now - LAST_USED_RESOLUTION_S));
  }

  /**
   * Stores vectors in one transaction, replacing existing ones: after a crash either all of
   * this call's entries are in the file or none are, and every earlier call's are. Each row's
   * last use is now.
   */
  putMany(entries: readonly FeatureEntry[]): void {
    if (entries.length === 0) return;
    // IMMEDIATE takes the write lock up front, so waiting for another writer goes through the busy timeout.
    withCacheErrors(this.path, () => this.insertAll.immediate(entries, this.now()));
  }

  /**
   * Records which backbone a fingerprint stands for, for `headswap cache`: its zoo id (or
   * 'custom') and where it was loaded from. Writes only when that changed or was last recorded
   * over LAST_USED_RESOLUTION_S ago; like last-used times, given up if the file is locked,
   * read-only or full.
   */
  nameBackbone(fingerprint: string, name: string, origin: string): void {
    if (!this.db.open || this.db.readonly) return;
    const now = this.now();
    const known = withCacheErrors(this.path, () =>
      this.db.prepare<[string], { name: string; origin: string; last_seen: number }>('SELECT name, origin, last_seen FROM backbones WHERE fingerprint = ?').get(fingerprint),
    );
    if (known && known.name === name && known.origin === origin && known.last_seen >= now - LAST_USED_RESOLUTION_S) return;
    tryOptionalWrite(this.path, () =>
      this.db
        .prepare(
          'INSERT INTO backbones (fingerprint, name, origin, first_seen, last_seen) VALUES (?, ?, ?, ?, ?) ' +
            'ON CONFLICT (fingerprint) DO UPDATE SET name = excluded.name, origin = excluded.origin, last_seen = excluded.last_seen',
        )
        .run(fingerprint, name, origin, now, now),
    );
  }

  /** Number of stored vectors, for one backbone or all. */
  count(backbone?: string): number {
    const counted = withCacheErrors(this.path, () =>
      backbone === undefined ? this.countAll.get() : this.countBackbone.get(backbone),
    );
    return counted ?? 0;
  }

  /** What the file holds per backbone, from the index alone (no vector is read). */
  usage(): CacheUsage {
    return withCacheErrors(this.path, () => {
      const names = this.names();
      const model = this.rowModel();
      const groups = this.db
        .prepare<[], { backbone: string; variant: string; dim: number; encoding: string; rows: number; last_used: number }>(
          'SELECT backbone, variant, dim, encoding, count(*) AS rows, max(last_used) AS last_used FROM features INDEXED BY features_by_use GROUP BY backbone, variant, dim, encoding',
        )
        .all();
      const byBackbone = new Map<string, BackboneUsage>();
      for (const g of groups) {
        let b = byBackbone.get(g.backbone);
        if (!b) {
          const named = names.get(g.backbone);
          b = { fingerprint: g.backbone, name: named?.name, origin: named?.origin, label: named?.label, rows: 0, f16Rows: 0, variants: [], dims: [], bytes: 0, lastUsed: undefined };
          byBackbone.set(g.backbone, b);
        }
        b.rows += g.rows;
        if (g.encoding === 'f16') b.f16Rows += g.rows;
        if (!b.variants.includes(g.variant)) b.variants.push(g.variant);
        if (!b.dims.includes(g.dim)) b.dims.push(g.dim);
        b.bytes += g.rows * model.rowBytes(g.backbone, g.variant, g.dim, g.encoding);
        if (g.last_used > 0) b.lastUsed = Math.max(b.lastUsed ?? 0, g.last_used);
      }
      const backbones = [...byBackbone.values()].sort(byLabel);
      for (const b of backbones) {
        b.variants.sort();
        b.dims.sort((x, y) => x - y);
        b.bytes = Math.round(b.bytes);
      }
      const { file, wal } = databaseBytes(this.path);
      return { path: this.path, fileBytes: file, walBytes: wal, rows: backbones.reduce((n, b) => n + b.rows, 0), backbones };
    });
  }

  /** Fingerprints of cached rows whose backbone `selector` names: its label, name or origin, or a fingerprint prefix of 4+ hex digits. */
  matchBackbone(selector: string): string[] {
    return withCacheErrors(this.path, () => {
      const names = this.names();
      const fingerprints = this.db.prepare<[], string>('SELECT DISTINCT backbone FROM features').pluck().all();
      const prefix = /^[0-9a-f]{4,}$/i.test(selector) ? selector.toLowerCase() : undefined;
      return fingerprints.filter((f) => {
        const named = names.get(f);
        const byName = named !== undefined && [named.label, named.name, named.origin].includes(selector);
        return byName || (prefix !== undefined && f.toLowerCase().startsWith(prefix));
      });
    });
  }

  /**
   * Deletes rows: those of `backbone` (all of them, unless another selector narrows it), not
   * used for `olderThanDays`, then the least recently used until the file is at most `maxMb`;
   * then VACUUMs so the file shrinks. The run history and other tables are kept. With `dryRun`,
   * deletes nothing and estimates the size after.
   */
  prune(options: PruneOptions): PruneResult {
    const { backbone, olderThanDays, maxMb } = options;
    const dryRun = options.dryRun ?? false;
    if (backbone === undefined && olderThanDays === undefined && maxMb === undefined) {
      throw new HeadswapError(msg`prune needs at least one of ${option('backbone')}, ${option('olderThanDays')}, ${option('maxMb')} (rows to delete)`);
    }
    const scope = backbone === undefined ? undefined : new Set(this.matchBackbone(backbone));
    if (scope?.size === 0) throw new HeadswapError(`no cached backbone matches '${backbone}'; 'headswap cache' lists them (name or fingerprint prefix)`);
    const total = (): number => {
      const { file, wal } = databaseBytes(this.path);
      return file + wal;
    };
    const bytesBefore = total();
    const target = maxMb === undefined ? undefined : maxMb * MB;
    const deleted = new Map<string, PrunedBackbone>();
    let scale = 1;
    let vacuumed: PruneResult['vacuum'];
    let plan: PrunePlan;
    // With maxMb the sizes are estimates: after a VACUUM the file is measured, and if it is still
    // over, the next pass scales the estimate by how far off it was and deletes more.
    for (let pass = 0; ; pass++) {
      const select = { scope, olderThanDays, target, scale };
      plan = withCacheErrors(this.path, () =>
        dryRun
          ? this.db.transaction(() => this.selectForPrune(select)).deferred()
          : this.db
              .transaction(() => {
                const chosen = this.selectForPrune(select);
                this.deleteRows(chosen.rowids);
                return chosen;
              })
              .immediate(),
      );
      for (const d of plan.perBackbone.values()) {
        const sum = deleted.get(d.fingerprint) ?? { ...d, rows: 0, bytes: 0 };
        sum.rows += d.rows;
        sum.bytes += d.bytes;
        deleted.set(d.fingerprint, sum);
      }
      // Nothing new to delete still VACUUMs a file whose free pages are a megabyte or a tenth of
      // it (left by a prune whose VACUUM failed): rerunning the prune then finishes the job.
      if (dryRun || (plan.rowids.length === 0 && (pass > 0 || this.freeBytes() < Math.min(MB, bytesBefore / 10)))) break;
      vacuumed = vacuum(this.db);
      if (!vacuumed.ok || target === undefined || pass === 2 || !plan.scopeLeft) break;
      const measured = databaseBytes(this.path).file;
      const keptEstimate = plan.predictedBytes - plan.otherBytes;
      if (measured <= target || keptEstimate <= 0) break;
      scale *= Math.max(1.01, (measured - plan.otherBytes) / keptEstimate);
    }
    const backbones = [...deleted.values()].map((d) => ({ ...d, bytes: Math.round(d.bytes) })).sort(byLabel);
    const rows = backbones.reduce((n, d) => n + d.rows, 0);
    const bytesAfter = dryRun && rows > 0 ? Math.round(plan.predictedBytes) : total();
    return {
      dryRun,
      rows,
      backbones,
      rowsLeft: plan.rowsLeft,
      bytesBefore,
      bytesAfter,
      vacuum: vacuumed,
      ...(target === undefined ? {} : { reachedMaxMb: bytesAfter <= target }),
    };
  }

  /** The rows a prune deletes, by one walk of the features_by_use index (most recent use first). */
  private selectForPrune(args: { scope: Set<string> | undefined; olderThanDays: number | undefined; target: number | undefined; scale: number }): PrunePlan {
    const { scope, olderThanDays, target, scale } = args;
    const now = this.now();
    const names = this.names();
    const model = this.rowModel();
    // Rows written before last-used times existed count as used when the file was upgraded.
    const since = Number(this.db.prepare<[], string>("SELECT value FROM meta WHERE key = 'last_used_since'").pluck().get() ?? 0) || 0;
    const cutoff = olderThanDays === undefined ? undefined : now - olderThanDays * 86_400;
    const onlyScope = olderThanDays === undefined && target === undefined;
    const rowids: number[] = [];
    const perBackbone = new Map<string, PrunedBackbone>();
    const remove = (row: IndexRow, bytes: number): void => {
      rowids.push(row[0]);
      const d = perBackbone.get(row[1]) ?? { fingerprint: row[1], label: names.get(row[1])?.label, rows: 0, bytes: 0 };
      d.rows++;
      d.bytes += bytes;
      perBackbone.set(row[1], d);
    };
    let keptBytes = 0;
    let rowsLeft = 0;
    const candidates: { row: IndexRow; bytes: number }[] = [];
    const walk = this.db
      .prepare<[], IndexRow>('SELECT rowid, backbone, variant, dim, encoding, last_used FROM features INDEXED BY features_by_use ORDER BY last_used DESC')
      .raw()
      .iterate();
    for (const row of walk) {
      const bytes = model.rowBytes(row[1], row[2], row[3], row[4]) * scale;
      const inScope = scope === undefined || scope.has(row[1]);
      const lastUsed = row[5] > 0 ? row[5] : since;
      if (inScope && (onlyScope || (cutoff !== undefined && lastUsed < cutoff))) remove(row, bytes);
      else if (inScope && target !== undefined) candidates.push({ row, bytes });
      else {
        keptBytes += bytes;
        rowsLeft++;
      }
    }
    const otherBytes = this.otherBytes();
    // Most recently used first: keep rows while the estimate fits, delete the rest.
    let full = target !== undefined && otherBytes + keptBytes > target;
    let scopeKept = 0;
    for (const c of candidates) {
      if (!full && otherBytes + keptBytes + c.bytes <= target!) {
        keptBytes += c.bytes;
        rowsLeft++;
        scopeKept++;
      } else {
        full = true;
        remove(c.row, c.bytes);
      }
    }
    // scopeLeft: rows a further maxMb pass could still delete.
    return { rowids, perBackbone, rowsLeft, predictedBytes: otherBytes + keptBytes, otherBytes, scopeLeft: scopeKept > 0 };
  }

  /** Bytes of the file's free pages (what VACUUM gives back). */
  private freeBytes(): number {
    return Number(this.db.pragma('freelist_count', { simple: true })) * Number(this.db.pragma('page_size', { simple: true }));
  }

  private deleteRows(rowids: readonly number[]): void {
    const remove = this.db.prepare<[string]>('DELETE FROM features WHERE rowid IN (SELECT value FROM json_each(?))');
    for (let i = 0; i < rowids.length; i += 10_000) remove.run(JSON.stringify(rowids.slice(i, i + 10_000)));
    // A name is kept only while the backbone has rows.
    this.db.prepare('DELETE FROM backbones WHERE NOT EXISTS (SELECT 1 FROM features WHERE backbone = backbones.fingerprint)').run();
  }

  /** Recorded names by fingerprint. */
  private names(): Map<string, { name: string; origin: string; label: string }> {
    const rows = this.db.prepare<[], { fingerprint: string; name: string; origin: string }>('SELECT fingerprint, name, origin FROM backbones').all();
    return new Map(rows.map((r) => [r.fingerprint, { name: r.name, origin: r.origin, label: backboneLabel(r.name, r.origin) }]));
  }

  /** Pages of everything but the features table and its indexes (the run history, names, the schema), in bytes. */
  private otherBytes(): number {
    const objects = this.db
      .prepare<[], string>("SELECT name FROM sqlite_schema WHERE rootpage > 0 AND tbl_name <> 'features'")
      .pluck()
      .all();
    const size = this.db.prepare<[string], number>('SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ? AND aggregate = TRUE').pluck();
    return ['sqlite_schema', ...objects].reduce((sum, name) => sum + (size.get(name) ?? 0), 0);
  }

  private rowModel(): RowModel {
    return new RowModel(Number(this.db.pragma('page_size', { simple: true })), this.now());
  }

  close(): void {
    this.db.close();
  }
}

/** By label (unnamed ones last), then fingerprint. */
function byLabel(a: { label: string | undefined; fingerprint: string }, b: { label: string | undefined; fingerprint: string }): number {
  return (a.label ?? '\uffff').localeCompare(b.label ?? '\uffff') || a.fingerprint.localeCompare(b.fingerprint);
}

// The file format is little-endian so a cache copied to another machine stays valid.
const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

function encodeVector(vector: Float32Array): { encoding: Encoding; blob: Buffer } {
  const halves = toHalfExact(vector);
  if (halves) {
    const bytes = Buffer.from(halves.buffer, halves.byteOffset, halves.byteLength);
    return { encoding: 'f16', blob: HOST_IS_LITTLE_ENDIAN ? bytes : bytes.swap16() };
  }
  const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
  return { encoding: 'f32', blob: HOST_IS_LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32() };
}

/** A fresh, aligned Float32Array that owns its memory, or undefined if the blob is the wrong size for its encoding. */
function decodeRow(row: VectorRow): Float32Array | undefined {
  // A damaged record can decode as another type, hence the type check despite the STRICT table.
  if (!Buffer.isBuffer(row.vector)) return undefined;
  if (row.encoding === 'f16') {
    if (row.vector.length !== row.dim * 2) return undefined;
    // The blob's own memory when it is aligned for 16-bit reads (decoding copies anyway).
    if (HOST_IS_LITTLE_ENDIAN && row.vector.byteOffset % 2 === 0) return fromHalf(new Uint16Array(row.vector.buffer, row.vector.byteOffset, row.dim));
    const halves = new Uint16Array(row.dim);
    const bytes = Buffer.from(halves.buffer);
    row.vector.copy(bytes);
    if (!HOST_IS_LITTLE_ENDIAN) bytes.swap16();
    return fromHalf(halves);
  }
  if (row.encoding !== 'f32' || row.vector.length !== row.dim * 4) return undefined;
  const vector = new Float32Array(row.dim);
  const bytes = Buffer.from(vector.buffer);
  row.vector.copy(bytes);
  if (!HOST_IS_LITTLE_ENDIAN) bytes.swap32();
  return vector;
}

/**
 * Bytes a features row takes in a compacted file: its table cell (and overflow pages) and its two
 * index entries, on pages of `pageSize` filled as VACUUM fills them. Whole pages matter: with
 * 4 KB pages a 1280-float16 row (2.7 KB) has a page to itself. Interior pages are left out (~1%).
 */
class RowModel {
  private readonly cached = new Map<string, number>();

  constructor(
    private readonly pageSize: number,
    private readonly now: number,
  ) {}

  rowBytes(fingerprint: string, variant: string, dim: number, encoding: string): number {
    const key = `${fingerprint.length}/${Buffer.byteLength(variant)}/${dim}/${encoding}`;
    let bytes = this.cached.get(key);
    if (bytes === undefined) {
      bytes = this.estimate(fingerprint.length, Buffer.byteLength(variant), dim, encoding === 'f16' ? 2 : 4);
      this.cached.set(key, bytes);
    }
    return bytes;
  }

  private estimate(fingerprint: number, variant: number, dim: number, bytesPerValue: number): number {
    const u = this.pageSize;
    const rowid = 3; // rowids below 8 million
    const image = 64; // sha256 hex
    const row = recordBytes([text(fingerprint), text(image), text(variant), int(dim), blob(dim * bytesPerValue), text(3), int(this.now)]);
    // SQLite's split of a large record between the leaf and overflow pages (fileformat2, "Cell Payload Overflow Pages").
    const maxLocal = u - 35;
    const minLocal = Math.floor(((u - 12) * 32) / 255) - 23;
    let local = row;
    let overflowPages = 0;
    if (row > maxLocal) {
      const surplus = minLocal + ((row - minLocal) % (u - 4));
      local = surplus <= maxLocal ? surplus : minLocal;
      overflowPages = Math.ceil((row - local) / (u - 4));
    }
    const tableCell = varintBytes(row) + varintBytes(1 << 22) + local + (overflowPages > 0 ? 4 : 0) + 2;
    const primary = recordBytes([text(fingerprint), text(image), text(variant), { header: 1, body: rowid }]);
    const byUse = recordBytes([int(this.now), text(fingerprint), text(variant), int(dim), text(3), { header: 1, body: rowid }]);
    const onPages = (cell: number): number => u / Math.max(1, Math.floor((u - 8) / cell));
    return onPages(tableCell) + overflowPages * u + onPages(varintBytes(primary) + primary + 2) + onPages(varintBytes(byUse) + byUse + 2);
  }
}

interface Column {
  header: number;
  body: number;
}

function recordBytes(columns: readonly Column[]): number {
  const header = columns.reduce((n, c) => n + c.header, 0);
  return varintBytes(header + 1) + header + columns.reduce((n, c) => n + c.body, 0);
}

function text(bytes: number): Column {
  return { header: varintBytes(13 + 2 * bytes), body: bytes };
}

function blob(bytes: number): Column {
  return { header: varintBytes(12 + 2 * bytes), body: bytes };
}

function int(value: number): Column {
  const a = Math.abs(value);
  const body = a <= 1 ? 0 : a < 2 ** 7 ? 1 : a < 2 ** 15 ? 2 : a < 2 ** 23 ? 3 : a < 2 ** 31 ? 4 : a < 2 ** 47 ? 6 : 8;
  return { header: 1, body };
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 128 && bytes < 9) {
    n = Math.floor(n / 128);
    bytes++;
  }
  return bytes;
}

/** How a person knows a backbone: its zoo id, or for a custom network its file name or URL. */
export function backboneLabel(name: string, origin: string): string {
  if (name !== 'custom' || origin === '') return name;
  return /^[a-z][\w+.-]*:\/\//i.test(origin) ? origin : basename(origin);
}

/** The feature cache in headswap's cache folder `root` (default: `$HEADSWAP_CACHE` or the user cache folder). */
export function openFeatureCache(root?: string, options: FeatureCacheOptions = {}): FeatureCache {
  return FeatureCache.open(databasePath(root), options);
}

/**
 * One warning line when the cache's SQLite file (with its write-ahead log) in `root` is over
 * `$HEADSWAP_CACHE_MAX_MB`, naming the command that brings it back under; undefined when it is
 * not, or the variable is unset. A malformed variable is the warning.
 */
export function cacheSizeWarning(root?: string): string | undefined {
  let limit: number | undefined;
  try {
    limit = cacheMaxMb();
  } catch (err) {
    if (err instanceof HeadswapError) return err.message;
    throw err;
  }
  if (limit === undefined) return undefined;
  const { file, wal } = databaseBytes(databasePath(root));
  if (file + wal <= limit * MB) return undefined;
  const folder = root === undefined ? '' : ` --cache-dir ${shellQuote(root)}`;
  return `feature cache is ${formatMb(file + wal)} MB, over HEADSWAP_CACHE_MAX_MB=${limit}; 'headswap cache prune --max-mb ${limit}${folder}' frees it`;
}

/** Bytes as MB (10^6) for messages: no decimals from 10 MB up, one from 1 MB, two below. */
export function formatMb(bytes: number): string {
  const mb = bytes / MB;
  return mb >= 10 ? mb.toFixed(0) : mb >= 1 ? mb.toFixed(1) : mb.toFixed(2);
}

/** The folder as typed in a command; quoted (with double quotes, as the line is in single ones) when it has to be. */
function shellQuote(s: string): string {
  return /^[\w./:@%+=,-]+$/.test(s) ? s : JSON.stringify(s);
}
