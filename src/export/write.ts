import { existsSync } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { HeadswapError, describeError } from '../errors.js';
import { tempSibling } from '../util/fs.js';
import { LABELS_FILE, METADATA_FILE, MODEL_FILE, type ModelMetadata } from './metadata.js';

export interface ModelFolder {
  readonly model: Uint8Array;
  readonly metadata: ModelMetadata;
  /** Further files (e.g. report.html) by name. */
  readonly extra?: Readonly<Record<string, Uint8Array | string>>;
}

/** Refuses an existing output (unless `force` and it is a folder), so long work is not wasted. */
export async function assertOutputFree(out: string, force = false): Promise<void> {
  if (!existsSync(out)) return;
  if (!force) throw new HeadswapError(`${out}: already exists; choose another --out or pass --force to replace it`);
  if (!(await stat(out)).isDirectory()) throw new HeadswapError(`${out}: exists and is not a folder; choose another --out`);
}

/**
 * Writes the exported model folder all at once: everything goes into a temp folder beside the
 * target, which is renamed into place only when complete, so a crash never leaves half a model.
 * An existing folder is replaced only with `force`, and then only after the new one is whole.
 */
export async function writeModelFolder(out: string, folder: ModelFolder, force = false): Promise<void> {
  await assertOutputFree(out, force);
  const target = resolve(out);
  const tmp = tempSibling(target);
  try {
    await mkdir(dirname(target), { recursive: true });
    await mkdir(tmp);
    await writeFile(`${tmp}/${MODEL_FILE}`, folder.model);
    await writeFile(`${tmp}/${LABELS_FILE}`, `${JSON.stringify(folder.metadata.classes, null, 2)}\n`);
    await writeFile(`${tmp}/${METADATA_FILE}`, `${JSON.stringify(folder.metadata, null, 2)}\n`);
    for (const [name, data] of Object.entries(folder.extra ?? {})) await writeFile(`${tmp}/${name}`, data);
    if (existsSync(target)) {
      const old = tempSibling(target);
      await rename(target, old);
      await rename(tmp, target);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof HeadswapError) throw err;
    throw new HeadswapError(`${out}: cannot write the model folder (${describeError(err)}); check free space and permissions`);
  }
}
