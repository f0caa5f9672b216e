import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { HeadswapError, describeError, msg, option } from '../errors.js';
import { errnoCode, processAlive, tempSibling } from '../util/fs.js';
import { LABELS_FILE, METADATA_FILE, MODEL_FILE, type ModelMetadata } from './metadata.js';

export interface ModelFolder {
  readonly model: Uint8Array;
  readonly metadata: ModelMetadata;
  /** Further files (e.g. report.html) by name. */
  readonly extra?: Readonly<Record<string, Uint8Array | string>>;
}

/**
 * Refuses an existing output (unless `force` and it is a folder), so long work is not wasted.
 * Sweeps what killed runs left beside it first, since that can bring a previous model back.
 */
export async function assertOutputFree(out: string, force = false): Promise<void> {
  await sweepStaleModelTemps(resolve(out));
  if (!existsSync(out)) return;
  if (!force) throw new HeadswapError(msg`${out}: already exists; choose another ${option('out')} or pass ${option('force', true)} to replace it`);
  if (!(await stat(out)).isDirectory()) throw new HeadswapError(msg`${out}: exists and is not a folder; choose another ${option('out')}`);
}

/** Where a replaced model waits until the new one is in place; named apart from temp folders so a sweep can tell them apart. */
function backupSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.old-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/**
 * Removes what a killed writer of `target` left beside it: temp folders (`.<name>.tmp-<pid>-<hex>`)
 * and backups of a replaced model (`.<name>.old-<pid>-<hex>`) of processes that no longer run.
 * A backup is moved back into place when the crash came between moving the old model aside and
 * moving the new one in, so a killed `--force` run never loses the previous model.
 */
export async function sweepStaleModelTemps(target: string): Promise<void> {
  const dir = dirname(target);
  const name = basename(target);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return; // no folder yet: nothing to sweep
  }
  const prefix = `.${name}.`;
  for (const entry of entries.sort()) {
    if (!entry.startsWith(prefix)) continue;
    const m = /^(tmp|old)-(\d+)-[0-9a-f]+$/.exec(entry.slice(prefix.length));
    if (!m || Number(m[2]) === process.pid || processAlive(Number(m[2]))) continue;
    const path = join(dir, entry);
    try {
      if (m[1] === 'old' && !existsSync(target)) await rename(path, target);
      else await rm(path, { recursive: true, force: true });
    } catch {
      // Another process swept it first; leftovers are harmless (hidden, and ignored by readers).
    }
  }
}

/** Writes a file and flushes it to disk, so the folder renamed into place never holds unwritten data after a power cut. */
async function writeDurable(path: string, data: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Writes the exported model folder all at once: everything goes into a temp folder beside the
 * target, which is renamed into place only when complete, so a crash never leaves half a model.
 * An existing folder is replaced only with `force`, and then only after the new one is whole.
 * Temp folders of killed runs are swept first.
 */
export async function writeModelFolder(out: string, folder: ModelFolder, force = false): Promise<void> {
  const target = resolve(out);
  await assertOutputFree(out, force);
  const tmp = tempSibling(target);
  const backups: string[] = [];
  try {
    await mkdir(dirname(target), { recursive: true });
    await mkdir(tmp);
    await writeDurable(`${tmp}/${MODEL_FILE}`, folder.model);
    await writeDurable(`${tmp}/${LABELS_FILE}`, `${JSON.stringify(folder.metadata.classes, null, 2)}\n`);
    await writeDurable(`${tmp}/${METADATA_FILE}`, `${JSON.stringify(folder.metadata, null, 2)}\n`);
    for (const [name, data] of Object.entries(folder.extra ?? {})) await writeDurable(`${tmp}/${name}`, data);
    // Retried because another process may write the same folder at the same moment: its rename
    // can land between our check and ours (ENOTEMPTY), or move the old folder first (ENOENT).
    for (let attempt = 0; ; attempt++) {
      if (existsSync(target)) {
        if (!force) throw new HeadswapError(msg`${out}: already exists; choose another ${option('out')} or pass ${option('force', true)} to replace it`);
        const old = backupSibling(target);
        try {
          await rename(target, old);
          backups.push(old);
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw err;
        }
      }
      try {
        await rename(tmp, target);
        break;
      } catch (err) {
        const code = errnoCode(err);
        if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || attempt >= 10) throw err;
      }
    }
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    // Put the previous model back if ours did not make it into place.
    if (backups.length > 0 && !existsSync(target)) await rename(backups.pop()!, target).catch(() => undefined);
    if (err instanceof HeadswapError) throw err;
    if (errnoCode(err) === 'ENOSPC' || errnoCode(err) === 'EDQUOT') {
      throw new HeadswapError(msg`${out}: disk full while writing the model folder; free some space or choose another ${option('out')} (any previous model there is unchanged)`);
    }
    throw new HeadswapError(`${out}: cannot write the model folder (${describeError(err)}); check free space and permissions`);
  } finally {
    for (const old of backups) await rm(old, { recursive: true, force: true });
  }
}
