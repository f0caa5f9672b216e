import { endianness } from 'node:os';
import type Database from 'better-sqlite3';
import { openDatabase, withCacheErrors, type DatabaseOptions } from '../runtime/database.js';
import { databasePath } from '../runtime/download.js';

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
  static open(path: string, options: DatabaseOptions = {}): FeatureCache {
    return new FeatureCache(path, openDatabase(path, options));
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

  close(): void {
    this.db.close();
  }
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

/** The feature cache in headswap's cache folder `root` (default: `$HEADSWAP_CACHE` or the user cache folder). */
export function openFeatureCache(root?: string, options: DatabaseOptions = {}): FeatureCache {
  return FeatureCache.open(databasePath(root), options);
}
