import { existsSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { describeError } from '../errors.js';
import { loadClassifier, type Classifier } from '../export/classifier.js';
import { LABELS_FILE, METADATA_FILE, MODEL_FILE, readModelMetadata, type ModelMetadata } from '../export/metadata.js';
import { REPORT_FILE } from '../report/write.js';
import { isId, slug } from './names.js';

/** The files of a model folder a client may fetch; anything else in the folder stays private. */
export const MODEL_FILES = [MODEL_FILE, LABELS_FILE, METADATA_FILE] as const;
export type ModelFileName = (typeof MODEL_FILES)[number];
/** What the download archive holds: the model, the report and its chart images. */
const ARCHIVE_FILES = [...MODEL_FILES, REPORT_FILE, 'confusion.png', 'learningCurves.png', 'compare.png'];

export interface ModelEntry {
  readonly id: string;
  readonly dir: string;
  /** Given on the command line (read-only), or trained by a job of this server. */
  readonly source: 'cli' | 'trained';
  /** What the page shows: the job's name for a trained model, the folder's for a command-line one. */
  readonly name: string;
  readonly metadata: ModelMetadata;
}

/** Regular files only: a symlink in a model folder could point anywhere on the machine. */
async function isRegularFile(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * The models a server answers for. Models are opened for inference on first use and kept;
 * ids are lowercase slugs, so an id from a URL never reaches the filesystem as a path.
 */
export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry>();
  private readonly sessions = new Map<string, Promise<Classifier>>();

  private constructor(private readonly threads: number | undefined) {}

  /** Command-line folders first (a bad one is an error), then the trained models in `modelsDir`. */
  static async open(cliDirs: readonly string[], modelsDir: string, options: { threads?: number; onWarning?: (m: string) => void } = {}): Promise<ModelRegistry> {
    const registry = new ModelRegistry(options.threads);
    for (const dir of cliDirs) {
      const abs = resolve(dir);
      const metadata = await readModelMetadata(abs);
      const folder = basename(abs).replace(/\.model$/, '');
      const base = slug(folder, 'model');
      let id = base;
      for (let n = 2; registry.entries.has(id); n++) id = `${base}-${n}`;
      registry.entries.set(id, { id, dir: abs, source: 'cli', name: folder || id, metadata });
    }
    const names = existsSync(modelsDir) ? (await readdir(modelsDir)).sort() : [];
    for (const name of names) {
      if (!isId(name) || registry.entries.has(name)) continue;
      try {
        // Named by its job once the jobs are read (nameFromJob); the id until then.
        registry.entries.set(name, { id: name, dir: join(modelsDir, name), source: 'trained', name, metadata: await readModelMetadata(join(modelsDir, name)) });
      } catch (err) {
        options.onWarning?.(`skipped model folder ${name}: ${describeError(err)}`);
      }
    }
    return registry;
  }

  list(): ModelEntry[] {
    return [...this.entries.values()];
  }

  get(id: string): ModelEntry | undefined {
    return this.entries.get(id);
  }

  /** Gives a trained model the name its job was given. */
  nameFromJob(id: string, name: string): void {
    const entry = this.entries.get(id);
    if (entry?.source === 'trained' && name) this.entries.set(id, { ...entry, name });
  }

  async add(id: string, dir: string, name: string): Promise<ModelEntry> {
    const entry: ModelEntry = { id, dir, source: 'trained', name: name || id, metadata: await readModelMetadata(dir) };
    this.entries.set(id, entry);
    // A job re-run after a crash replaces its model: a session of the old files must not be reused.
    const old = this.sessions.get(id);
    this.sessions.delete(id);
    await (await old?.catch(() => undefined))?.release();
    return entry;
  }

  /** The loaded classifier; concurrent first requests share one load. */
  classifier(entry: ModelEntry): Promise<Classifier> {
    let session = this.sessions.get(entry.id);
    if (!session) {
      session = loadClassifier(entry.dir, this.threads === undefined ? {} : { threads: this.threads });
      // A failed load is not cached, so a fixed folder works without a restart.
      session.catch(() => this.sessions.delete(entry.id));
      this.sessions.set(entry.id, session);
    }
    return session;
  }

  /** Whether the folder has this file as a regular file (not a symlink). */
  hasFile(entry: ModelEntry, file: string): Promise<boolean> {
    return isRegularFile(join(entry.dir, file));
  }

  /** The archive's file list: the known files that exist as regular files. */
  async archiveFiles(entry: ModelEntry): Promise<string[]> {
    const present = await Promise.all(ARCHIVE_FILES.map(async (f) => ((await isRegularFile(join(entry.dir, f))) ? f : undefined)));
    return present.filter((f): f is string => f !== undefined);
  }

  async close(): Promise<void> {
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map(async (s) => (await s.catch(() => undefined))?.release()));
  }
}
