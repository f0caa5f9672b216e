import type Database from 'better-sqlite3';
import { openDatabase, withCacheErrors } from '../runtime/database.js';
import type { DatabaseOptions } from '../runtime/database-options.js';
import { databasePath } from '../runtime/download.js';
import type { NewRun, RunRecord } from './types.js';

/** The run history (`headswap runs`): one row per train or compare run, in headswap's SQLite file. */
export class RunStore {
  private constructor(
    readonly path: string,
    private readonly db: Database.Database,
  ) {}

  static open(path: string, options: DatabaseOptions = {}): RunStore {
    return new RunStore(path, openDatabase(path, options));
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

/** Appends one run to the history in the cache folder `root` (opened for this write only); returns its id. */
export function recordRun(run: NewRun, root?: string): number {
  const store = openRunStore(root);
  try {
    return store.recordRun(run);
  } finally {
    store.close();
  }
}

/** The run history in headswap's cache folder `root` (default: `$HEADSWAP_CACHE` or the user cache folder). */
export function openRunStore(root?: string, options: DatabaseOptions = {}): RunStore {
  return RunStore.open(databasePath(root), options);
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

