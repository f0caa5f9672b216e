import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { HeadswapError, describeError } from '../errors.js';
import type { DatabaseOptions } from './database-options.js';

/**
 * headswap's SQLite file (cached features and the run history): opening it, its schema and
 * migrations, and turning SQLite failures into one-line errors. FeatureCache (features/cache.ts)
 * and RunStore (runs/store.ts) each hold a connection to it.
 */

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
  {
    // float16 rows, last-used times and readable backbone names (features/cache.ts). Rows written
    // before this keep 'f32' and a last_used of 0, read as "used at the upgrade" (meta
    // last_used_since); the index serves pruning and per-backbone sums without reading vectors.
    version: 3,
    sql: `
      ALTER TABLE features ADD COLUMN encoding TEXT NOT NULL DEFAULT 'f32' CHECK (encoding IN ('f32', 'f16')); -- 'f16': dim little-endian float16s
      ALTER TABLE features ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0; -- epoch seconds
      CREATE INDEX IF NOT EXISTS features_by_use ON features (last_used, backbone, variant, dim, encoding);
      CREATE TABLE IF NOT EXISTS backbones (
        fingerprint TEXT PRIMARY KEY,
        name TEXT NOT NULL, -- zoo id, or 'custom'
        origin TEXT NOT NULL, -- zoo id, file path or URL
        first_seen INTEGER NOT NULL, -- epoch seconds
        last_seen INTEGER NOT NULL
      ) STRICT;
      INSERT OR REPLACE INTO meta (key, value) VALUES ('last_used_since', CAST(unixepoch() AS TEXT));`,
  },
];

const SCHEMA_VERSION = Math.max(...MIGRATIONS.map((m) => m.version));

/**
 * Opens the file, creating it unless read-only. Checks that it is a SQLite database (this catches
 * foreign and truncated files) with a schema this version understands. It does not run PRAGMA
 * quick_check, which reads the whole file (seconds for a large cache on a cold disk); damage found
 * later by any method is reported with the same "corrupted" error.
 */
export function openDatabase(path: string, options: DatabaseOptions = {}): Database.Database {
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
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
  });
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

function corrupted(path: string, reason: string, cause?: unknown): HeadswapError {
  return new HeadswapError(
    `${path}: feature cache is corrupted (${reason}); delete it to rebuild (it holds only cached features and the run history)`,
    { cause },
  );
}

/** Runs a database call, turning SQLite failures into one-line errors that name the file and the fix. */
export function withCacheErrors<T>(path: string, fn: () => T): T {
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

/** Sizes in bytes of the database file and its write-ahead log (0 for a missing file). */
export function databaseBytes(path: string): { file: number; wal: number } {
  const size = (p: string): number => {
    try {
      return statSync(p).size;
    } catch {
      return 0;
    }
  };
  return { file: size(path), wal: size(`${path}-wal`) };
}

/**
 * VACUUM (rewrite the file without its free pages, so it shrinks), then fold the write-ahead
 * log back in and truncate it. Needs free disk space about the file's size, for the rewritten
 * copy; when that (or anything else) fails, the reason, with the file unchanged.
 */
export function vacuum(db: Database.Database): { ok: true } | { ok: false; reason: string; code: string } {
  try {
    db.exec('VACUUM');
  } catch (err) {
    if (!(err instanceof Database.SqliteError)) throw err;
    return { ok: false, reason: describeError(err), code: err.code };
  }
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
  } catch (err) {
    // Another process reading keeps the log; it is folded in by a later checkpoint.
    if (!(err instanceof Database.SqliteError)) throw err;
  }
  return { ok: true };
}

/**
 * Runs a write that only bookkeeping depends on (last-used times, names): returns false
 * instead of failing when the file is locked past the busy timeout, read-only or the disk is
 * full, since the data a caller asked for is fine without it. Other failures are
 * withCacheErrors's one-line errors.
 */
export function tryOptionalWrite(path: string, fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (err instanceof Database.SqliteError && /^SQLITE_(BUSY|READONLY|FULL)/.test(err.code)) return false;
    return withCacheErrors(path, () => {
      throw err;
    });
  }
}
