import { mkdirSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { HeadswapError, describeError } from '../errors.js';
import type { NewRun, RunRecord } from '../runs/types.js';

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

export interface FeatureCacheOptions {
  readonly?: boolean;
  /** How long to wait for another process's write lock before failing; default 10 s. */
  busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/**
 * Schema changes, applied in order to bring a file from any older version to the newest.
 * Append new entries (e.g. the run history table); never edit a released one, since files
 * already at that version will not run it again.
 */
const MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      ) STRICT;
      CREATE TABLE IF NOT EXISTS features (
        backbone TEXT NOT NULL,
        image TEXT NOT NULL,
        variant TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL, -- dim little-endian float32s
        PRIMARY KEY (backbone, image, variant)
      ) STRICT;`,
  },
  {
    version: 2,
    sql: `
      CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        test_dir TEXT,
        base TEXT NOT NULL,
        options TEXT NOT NULL, -- JSON
        fingerprint TEXT NOT NULL,
        metrics TEXT NOT NULL, -- JSON
        timings TEXT NOT NULL, -- JSON
        out TEXT
      ) STRICT;`,
  },
];

const SCHEMA_VERSION = Math.max(...MIGRATIONS.map((m) => m.version));

/** Where the cache lives inside headswap's cache folder. */
export function defaultCachePath(cacheDir: string): string {
  return join(cacheDir, 'headswap.sqlite');
}

interface VectorRow {
  dim: number;
  vector: Buffer;
}

/**
 * Backbone feature vectors kept in one SQLite file, so a rerun skips the backbone for
 * images it has already seen. Safe to share between processes: WAL lets readers run while
 * one process writes, and writers wait up to the busy timeout for each other.
 */
export class FeatureCache {
  private readonly selectOne: Database.Statement<[string, string, string], VectorRow>;
  private readonly countAll: Database.Statement<[], number>;
  private readonly countBackbone: Database.Statement<[string], number>;
  private readonly insertAll: Database.Transaction<(entries: readonly FeatureEntry[]) => void>;
  private readonly selectMany: Database.Transaction<
    (backbone: string, images: readonly string[], variant: string) => Map<string, Float32Array>
  >;

  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {
    this.selectOne = db.prepare(
      'SELECT dim, vector FROM features WHERE backbone = ? AND image = ? AND variant = ?',
    );
    this.countAll = db.prepare<[], number>('SELECT count(*) FROM features').pluck();
    this.countBackbone = db.prepare<[string], number>('SELECT count(*) FROM features WHERE backbone = ?').pluck();
    const insert = db.prepare<[string, string, string, number, Buffer]>(
      'INSERT OR REPLACE INTO features (backbone, image, variant, dim, vector) VALUES (?, ?, ?, ?, ?)',
    );
    this.insertAll = db.transaction((entries) => {
      for (const { key, vector } of entries) {
        insert.run(key.backbone, key.image, key.variant ?? '', vector.length, encodeVector(vector));
      }
    });
    // One read transaction for the whole lookup: a single snapshot, and no lock round trip per row.
    this.selectMany = db.transaction((backbone, images, variant) => {
      const found = new Map<string, Float32Array>();
      for (const image of images) {
        const row = this.selectOne.get(backbone, image, variant);
        const vector = row && decodeRow(row);
        if (vector) found.set(image, vector);
      }
      return found;
    });
  }

  /**
   * Opens the cache file, creating it unless read-only. Checks that it is a SQLite database
   * (this catches foreign and truncated files) with a schema this version understands. It does
   * not run PRAGMA quick_check, which reads the whole file (seconds for a large cache on a cold
   * disk); damage found later by any method is reported with the same "corrupted" error.
   */
  static open(path: string, options: FeatureCacheOptions = {}): FeatureCache {
    const readonly = options.readonly ?? false;
    if (!readonly) {
      try {
        mkdirSync(dirname(path), { recursive: true });
      } catch (err) {
        throw new HeadswapError(
          `${dirname(path)}: cannot create the feature cache folder (${describeError(err)}); ` +
            'set HEADSWAP_CACHE to a writable folder',
          { cause: err },
        );
      }
    }
    return withCacheErrors(path, () => {
      const timeout = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
      const db = new Database(path, { readonly, fileMustExist: readonly, timeout });
      try {
        if (!readonly) {
          // WAL: readers never wait for a writer. NORMAL: a killed process loses nothing committed;
          // only a power cut can drop the last few commits, which just means recomputing them.
          db.pragma('journal_mode = WAL');
          db.pragma('synchronous = NORMAL');
        }
        migrate(db, path, readonly);
        return new FeatureCache(path, db);
      } catch (err) {
        db.close();
        throw err;
      }
    });
  }

  /** The cached vector, or undefined if absent (or stored with a length that does not match). */
  get(key: FeatureKey): Float32Array | undefined {
    if (!this.db.open) return undefined;
    const { backbone, image, variant = '' } = key;
    const row = withCacheErrors(this.path, () => this.selectOne.get(backbone, image, variant));
    return row && decodeRow(row);
  }

  /**
   * Cached vectors for many images of one backbone/variant, keyed by image; absent ones are left out.
   * A closed cache has nothing: a read-ahead still in flight when a failed run closed the cache
   * (e.g. the disk filled up) then finishes quietly instead of crashing the process.
   */
  getMany(backbone: string, images: readonly string[], variant = ''): Map<string, Float32Array> {
    if (!this.db.open) return new Map();
    return withCacheErrors(this.path, () => this.selectMany(backbone, images, variant));
  }

  /**
   * Stores vectors in one transaction, replacing existing ones: after a crash either all of
   * this call's entries are in the file or none are, and every earlier call's are.
   */
  putMany(entries: readonly FeatureEntry[]): void {
    if (entries.length === 0) return;
    // IMMEDIATE takes the write lock up front, so waiting for another writer goes through the busy timeout.
    withCacheErrors(this.path, () => this.insertAll.immediate(entries));
  }

  /** Number of stored vectors, for one backbone or all. */
  count(backbone?: string): number {
    const counted = withCacheErrors(this.path, () =>
      backbone === undefined ? this.countAll.get() : this.countBackbone.get(backbone),
    );
    return counted ?? 0;
  }

  /** Appends a run to the history; returns its id. */
  recordRun(run: NewRun): number {
    const insert = this.db.prepare(
      'INSERT INTO runs (created_at, kind, data, test_dir, base, options, fingerprint, metrics, timings, out) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const result = withCacheErrors(this.path, () =>
      insert.run(new Date().toISOString(), run.kind, run.data, run.testDir, run.base, JSON.stringify(run.options), run.fingerprint, JSON.stringify(run.metrics), JSON.stringify(run.timings), run.out),
    );
    return Number(result.lastInsertRowid);
  }

  /** Recorded runs, newest first. */
  listRuns(limit = 50): RunRecord[] {
    const rows = withCacheErrors(this.path, () => this.db.prepare<[number], RunRow>('SELECT * FROM runs ORDER BY id DESC LIMIT ?').all(limit));
    return rows.map(decodeRun);
  }

  getRun(id: number): RunRecord | undefined {
    const row = withCacheErrors(this.path, () => this.db.prepare<[number], RunRow>('SELECT * FROM runs WHERE id = ?').get(id));
    return row && decodeRun(row);
  }

  close(): void {
    this.db.close();
  }
}

interface RunRow {
  id: number;
  created_at: string;
  kind: string;
  data: string;
  test_dir: string | null;
  base: string;
  options: string;
  fingerprint: string;
  metrics: string;
  timings: string;
  out: string | null;
}

function decodeRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    createdAt: r.created_at,
    kind: r.kind === 'compare' ? 'compare' : 'train',
    data: r.data,
    testDir: r.test_dir,
    base: r.base,
    options: JSON.parse(r.options) as Record<string, unknown>,
    fingerprint: r.fingerprint,
    metrics: JSON.parse(r.metrics) as Record<string, number>,
    timings: JSON.parse(r.timings) as Record<string, number>,
    out: r.out,
  };
}

function migrate(db: Database.Database, path: string, readonly: boolean): void {
  let version = readSchemaVersion(db, path);
  if (version < SCHEMA_VERSION && !readonly) {
    version = db
      .transaction(() => {
        // Re-read under the write lock: another process may have migrated since the check above.
        const current = readSchemaVersion(db, path);
        if (current >= SCHEMA_VERSION) return current;
        for (const m of MIGRATIONS) if (m.version > current) db.exec(m.sql);
        db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)")
          .run(String(SCHEMA_VERSION));
        return SCHEMA_VERSION;
      })
      .immediate();
  }
  if (version > SCHEMA_VERSION) {
    throw new HeadswapError(
      `${path}: feature cache was written by a newer headswap (schema ${version}, this one knows up to ` +
        `${SCHEMA_VERSION}); upgrade headswap or set HEADSWAP_CACHE to another folder`,
    );
  }
  if (version < SCHEMA_VERSION) {
    throw new HeadswapError(
      `${path}: feature cache needs a schema upgrade (${version} to ${SCHEMA_VERSION}) but was opened ` +
        'read-only; run headswap once with write access to it',
    );
  }
}

/** 0 for a fresh file. Reading sqlite_schema is also what detects a non-database or truncated file. */
function readSchemaVersion(db: Database.Database, path: string): number {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'").pluck().get();
  if (hasMeta === undefined) return 0;
  const value = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get();
  const version = Number(value);
  if (!Number.isInteger(version) || version < 0) {
    throw corrupted(path, `unreadable schema version ${String(value)}`);
  }
  return version;
}

// The file format is little-endian so a cache copied to another machine stays valid.
const HOST_IS_LITTLE_ENDIAN = endianness() === 'LE';

function encodeVector(vector: Float32Array): Buffer {
  const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
  return HOST_IS_LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32();
}

/** A fresh, aligned Float32Array that owns its memory, or undefined if the blob is the wrong size. */
function decodeRow(row: VectorRow): Float32Array | undefined {
  // A damaged record can decode as another type, hence the type check despite the STRICT table.
  if (!Buffer.isBuffer(row.vector) || row.vector.length !== row.dim * 4) return undefined;
  const vector = new Float32Array(row.dim);
  const bytes = Buffer.from(vector.buffer);
  row.vector.copy(bytes);
  if (!HOST_IS_LITTLE_ENDIAN) bytes.swap32();
  return vector;
}

function corrupted(path: string, reason: string, cause?: unknown): HeadswapError {
  return new HeadswapError(
    `${path}: feature cache is corrupted (${reason}); delete it to rebuild (it holds only cached features and the run history)`,
    { cause },
  );
}

/** Runs a database call, turning SQLite failures into one-line errors that name the file and the fix. */
function withCacheErrors<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof Database.SqliteError)) throw err;
    const reason = describeError(err);
    const code = err.code;
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
      throw corrupted(path, reason, err);
    }
    if (code.startsWith('SQLITE_BUSY')) {
      throw new HeadswapError(
        `${path}: feature cache is locked; another headswap process is using it; ` +
          'wait or set HEADSWAP_CACHE to another folder',
        { cause: err },
      );
    }
    if (code.startsWith('SQLITE_READONLY')) {
      throw new HeadswapError(
        `${path}: cannot write the feature cache (${reason}); ` +
          'make it writable or set HEADSWAP_CACHE to another folder',
        { cause: err },
      );
    }
    if (code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM') {
      throw new HeadswapError(
        `${path}: cannot open the feature cache (${reason}); ` +
          "check the folder's permissions or set HEADSWAP_CACHE to another folder",
        { cause: err },
      );
    }
    if (code.startsWith('SQLITE_FULL')) {
      throw new HeadswapError(
        `${path}: disk full while writing the feature cache; free some space or set HEADSWAP_CACHE to another folder`,
        { cause: err },
      );
    }
    // A write the OS refused (e.g. a file size limit, EFBIG, or a failing disk): nothing was committed.
    if (code.startsWith('SQLITE_IOERR')) {
      throw new HeadswapError(
        `${path}: cannot write the feature cache (${reason}, ${code}); check free space and the disk, or set HEADSWAP_CACHE to another folder`,
        { cause: err },
      );
    }
    throw new HeadswapError(`${path}: feature cache error (${reason})`, { cause: err });
  }
}
