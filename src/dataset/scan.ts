import type { Dirent } from 'node:fs';
import { constants } from 'node:fs';
import { access, lstat, readdir, realpath, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { HeadswapError, describeError } from '../errors.js';

export interface ImageFile {
  /** Absolute path (through the dataset root as given, not symlink-resolved). */
  path: string;
  /** Relative to the dataset root, '/'-separated; stable key for splits and caches. */
  relPath: string;
  /** Index into `ScannedDataset.classes`. */
  label: number;
  className: string;
}

export interface Skipped {
  path: string;
  reason: string;
}

export interface ScannedDataset {
  root: string;
  /**
   * Class names sorted by plain code-point order (not locale-aware), so labels are identical on
   * every machine regardless of ICU data or locale. With `options.classes`, that list as given.
   */
  classes: string[];
  /** Sorted by (label, relPath). */
  files: ImageFile[];
  /** Sorted by path. */
  skipped: Skipped[];
  warnings: string[];
}

export interface ScanOptions {
  /**
   * Force this class list and order (e.g. a `--test-dir` must use the trained model's labels).
   * Folders not in it are skipped with a reason; classes without a folder are fine. Only "no
   * images at all" is then an error, since a test set may cover some classes only.
   */
  classes?: readonly string[];
}

/** Content is validated at decode time; here the extension is the whole test. */
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff']);
/** Lower-cased: Windows and macOS create these with varying case. */
const OS_JUNK = new Set(['thumbs.db', 'desktop.ini', '.ds_store']);

const NOT_IN_CLASS = 'not in a class folder';
const NOT_IMAGE = 'not an image file (extension)';

export function isImageFileName(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

function ignored(name: string): boolean {
  return name.startsWith('.') || OS_JUNK.has(name.toLowerCase());
}

/** Quotes a name for a one-line message: newlines and other control characters are escaped. */
export function quoteName(name: string): string {
  return /[\u0000-\u001f\u007f']/.test(name) ? JSON.stringify(name) : `'${name}'`;
}

function code(err: unknown): string {
  const c = (err as NodeJS.ErrnoException | null)?.code;
  return typeof c === 'string' ? c : describeError(err);
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

type Kind = 'file' | 'dir' | 'symlink' | 'other';

/** Dirent types can be unknown on some filesystems (all predicates false); lstat then. */
async function kindOf(entry: Dirent, path: string): Promise<Kind> {
  if (entry.isSymbolicLink()) return 'symlink';
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'dir';
  if (entry.isBlockDevice() || entry.isCharacterDevice() || entry.isFIFO() || entry.isSocket()) return 'other';
  const s = await lstat(path);
  return s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
}

/** What a symlink may be used as: a file inside root, or a reason to skip it. */
async function checkSymlink(path: string, rootReal: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  let target: string;
  try {
    target = await realpath(path);
  } catch (err) {
    return { ok: false, reason: `broken or looping symlink (${code(err)})` };
  }
  if (target !== rootReal && !target.startsWith(rootReal + sep)) return { ok: false, reason: 'symlink points outside the dataset folder' };
  // Following directory links could revisit folders or loop; files reached via links are enough.
  const info = await stat(target);
  if (info.isDirectory()) return { ok: false, reason: 'symlinked folder not followed' };
  // A link to a FIFO or device would block or never end when read.
  if (!info.isFile()) return { ok: false, reason: 'symlink to something that is not a regular file' };
  return { ok: true };
}

interface Walk {
  images: { path: string; relPath: string }[];
  skipped: Skipped[];
  /** relPaths of the nested folders that held images, for the per-class warning. */
  nestedWithImages: string[];
}

/** Collects image files under a class folder, recursively; never throws for a bad entry. */
async function walkClass(dir: string, relDir: string, rootReal: string, out: Walk, depth: number): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    out.skipped.push({ path: dir, reason: `cannot read folder (${code(err)}); check its permissions` });
    return;
  }
  let direct = 0; // images directly in this folder; `out` is shared with concurrent sibling walks
  await Promise.all(
    entries.map(async (entry) => {
      if (ignored(entry.name)) return;
      const path = join(dir, entry.name);
      const relPath = `${relDir}/${entry.name}`;
      try {
        const kind = await kindOf(entry, path);
        if (kind === 'dir') return walkClass(path, relPath, rootReal, out, depth + 1);
        if (kind === 'other') return void out.skipped.push({ path, reason: 'not a regular file' });
        if (kind === 'symlink') {
          const link = await checkSymlink(path, rootReal);
          if (!link.ok) return void out.skipped.push({ path, reason: link.reason });
        }
        if (!isImageFileName(entry.name)) return void out.skipped.push({ path, reason: NOT_IMAGE });
        await access(path, constants.R_OK);
        out.images.push({ path, relPath });
        direct++;
      } catch (err) {
        out.skipped.push({ path, reason: `cannot read (${code(err)}); check its permissions` });
      }
    }),
  );
  if (depth > 0 && direct > 0) out.nestedWithImages.push(relDir);
}

/** Empty class folders named one per line up to this many; beyond it, one line for all. */
const EMPTY_CLASS_LINES = 5;

/** One warning per empty class folder, or a single summary line when there are many (e.g. 10 000). */
function emptyClassWarnings(names: readonly string[]): string[] {
  if (names.length <= EMPTY_CLASS_LINES) return names.map((name) => `class folder ${quoteName(name)} has no images and was ignored`);
  const shown = names.slice(0, 3).map(quoteName).join(', ');
  return [`${names.length} class folders have no images and were ignored (${shown}, …)`];
}

/**
 * Lists the images of a dataset folder laid out as `<root>/<class>/…/<image>`.
 * Throws HeadswapError only for problems that make the folder unusable as a whole; single bad
 * entries end up in `skipped` (with a reason) or are ignored silently (hidden files, OS junk).
 */
export async function scanDataset(root: string, options: ScanOptions = {}): Promise<ScannedDataset> {
  const absRoot = resolve(root);
  const inClass = (tail: string): string => quoteName(`${absRoot}${sep}<class>${sep}${tail}`);
  let rootReal: string;
  try {
    if (!(await stat(absRoot)).isDirectory()) {
      throw new HeadswapError(`${quoteName(absRoot)} is not a folder; pass a folder with one sub-folder per class`);
    }
    rootReal = await realpath(absRoot);
  } catch (err) {
    if (err instanceof HeadswapError) throw err;
    if (code(err) === 'ENOENT') {
      throw new HeadswapError(`dataset folder ${quoteName(absRoot)} does not exist; check the path`, { cause: err });
    }
    throw new HeadswapError(`cannot open dataset folder ${quoteName(absRoot)} (${code(err)}); check its permissions`, { cause: err });
  }

  let entries: Dirent[];
  try {
    entries = await readdir(absRoot, { withFileTypes: true });
  } catch (err) {
    throw new HeadswapError(`cannot read dataset folder ${quoteName(absRoot)} (${code(err)}); check its permissions`, { cause: err });
  }

  const skipped: Skipped[] = [];
  const warnings: string[] = [];
  const classDirs: string[] = [];
  let looseFiles = 0;
  for (const entry of entries) {
    if (ignored(entry.name)) continue;
    const path = join(absRoot, entry.name);
    try {
      const kind = await kindOf(entry, path);
      if (kind === 'dir') {
        classDirs.push(entry.name);
      } else if (kind === 'symlink') {
        const link = await checkSymlink(path, rootReal);
        skipped.push({ path, reason: link.ok ? NOT_IN_CLASS : link.reason });
        if (link.ok) looseFiles++;
      } else {
        skipped.push({ path, reason: NOT_IN_CLASS });
        looseFiles++;
      }
    } catch (err) {
      skipped.push({ path, reason: `cannot read (${code(err)}); check its permissions` });
    }
  }
  if (looseFiles > 0) {
    warnings.push(`${looseFiles} file(s) directly in ${quoteName(absRoot)} are not in a class folder and were skipped; move them into ${inClass('')}`);
  }
  if (classDirs.length === 0) {
    throw new HeadswapError(`${quoteName(absRoot)} has no class sub-folders; put images in ${inClass('…')}`);
  }
  classDirs.sort(byCodePoint);

  const forced = options.classes;
  const found = new Map<string, { path: string; relPath: string }[]>();
  const emptyClasses: string[] = [];
  for (const name of classDirs) {
    const walk: Walk = { images: [], skipped, nestedWithImages: [] };
    await walkClass(join(absRoot, name), name, rootReal, walk, 0);
    if (forced && !forced.includes(name)) {
      warnings.push(`folder ${quoteName(name)} in ${quoteName(absRoot)} is not one of the model's classes; its images were skipped`);
      for (const image of walk.images) skipped.push({ path: image.path, reason: `class ${quoteName(name)} is not one of the model's classes` });
      continue;
    }
    if (walk.images.length === 0) {
      emptyClasses.push(name);
      continue;
    }
    if (walk.nestedWithImages.length > 0) {
      walk.nestedWithImages.sort(byCodePoint);
      warnings.push(`class ${quoteName(name)} includes images from nested folders (${walk.nestedWithImages.map(quoteName).join(', ')}); they were counted as ${quoteName(name)}`);
    }
    found.set(name, walk.images);
  }

  warnings.push(...emptyClassWarnings(emptyClasses));

  const classes = forced ? [...forced] : [...found.keys()];
  if (forced) {
    if (found.size === 0) {
      throw new HeadswapError(`${quoteName(absRoot)} has no images in any of the classes ${classes.map(quoteName).join(', ')}; put images in ${inClass('…')}`);
    }
  } else if (classes.length === 0) {
    throw new HeadswapError(`${quoteName(absRoot)} has class folders but no images in them; put images in ${inClass('<image>.jpg')}`);
  } else if (classes.length === 1) {
    throw new HeadswapError(`${quoteName(absRoot)}: only one class ${quoteName(classes[0] ?? '')} has images; a classifier needs at least 2 — add another class folder with images`);
  }

  const files: ImageFile[] = [];
  classes.forEach((className, label) => {
    for (const image of found.get(className) ?? []) files.push({ ...image, label, className });
  });
  files.sort((a, b) => a.label - b.label || byCodePoint(a.relPath, b.relPath));
  skipped.sort((a, b) => byCodePoint(a.path, b.path));
  return { root: absRoot, classes, files, skipped, warnings };
}
