import { constants } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { HeadswapError, msg, option } from '../errors.js';
import { errnoCode, errnoText } from '../util/fs.js';
import { byCodePoint } from '../util/text.js';
import { cannotRead, readFolder, walk, type Entry, type WalkOptions } from './walk.js';

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
  /** The option the folder was given as (e.g. 'testDir'), named in errors about the folder. */
  option?: string;
}

/** Content is validated at decode time; here the extension is the whole test. */
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff']);

const NOT_IN_CLASS = 'not in a class folder';
const NOT_IMAGE = 'not an image file (extension)';

export function isImageFileName(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Quotes a name for a one-line message: newlines and other control characters are escaped. */
export function quoteName(name: string): string {
  return /[\u0000-\u001f\u007f']/.test(name) ? JSON.stringify(name) : `'${name}'`;
}

interface ClassWalk {
  images: { path: string; relPath: string }[];
  skipped: Skipped[];
  /** relPaths of the nested folders that held images, for the per-class warning. */
  nestedWithImages: string[];
}

/** Collects image files under a class folder, recursively; never throws for a bad entry. */
async function walkClass(className: string, absRoot: string, links: WalkOptions): Promise<ClassWalk> {
  const images: ClassWalk['images'] = [];
  const skipped: Skipped[] = [];
  const nested = new Set<string>();
  // Started as the walk goes and awaited together: one access() per image is most of a scan's time.
  const checks: Promise<void>[] = [];
  for await (const entry of walk(join(absRoot, className), links)) {
    const { path } = entry;
    if (entry.kind === 'skip') {
      skipped.push({ path, reason: entry.reason });
    } else if (!isImageFileName(entry.name)) {
      skipped.push({ path, reason: NOT_IMAGE });
    } else {
      const relPath = `${className}/${entry.relPath}`;
      const check = access(path, constants.R_OK).then(
        () => {
          images.push({ path, relPath });
          const slash = entry.relPath.lastIndexOf('/');
          if (slash >= 0) nested.add(`${className}/${entry.relPath.slice(0, slash)}`);
        },
        (err: unknown) => void skipped.push({ path, reason: cannotRead(err) }),
      );
      checks.push(check);
    }
  }
  await Promise.all(checks);
  return { images, skipped, nestedWithImages: [...nested] };
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
  // The folder as errors name it: with the option it was given as, if any.
  const given = options.option === undefined ? undefined : msg`${option(options.option)} ${quoteName(absRoot)}`;
  const named = given ?? quoteName(absRoot);
  const folder = given ?? `dataset folder ${quoteName(absRoot)}`;
  let rootReal: string;
  try {
    if (!(await stat(absRoot)).isDirectory()) {
      throw new HeadswapError(msg`${named} is not a folder; pass a folder with one sub-folder per class`);
    }
    rootReal = await realpath(absRoot);
  } catch (err) {
    if (err instanceof HeadswapError) throw err;
    if (errnoCode(err) === 'ENOENT') {
      throw new HeadswapError(msg`${folder} does not exist; check the path`, { cause: err });
    }
    throw new HeadswapError(msg`cannot open ${folder} (${errnoText(err)}); check its permissions`, { cause: err });
  }
  const links: WalkOptions = { linksWithin: rootReal };

  let entries: Entry[];
  try {
    entries = await readFolder(absRoot, links);
  } catch (err) {
    throw new HeadswapError(msg`cannot read ${folder} (${errnoText(err)}); check its permissions`, { cause: err });
  }

  const skipped: Skipped[] = [];
  const warnings: string[] = [];
  const classDirs: string[] = [];
  let looseFiles = 0;
  for (const entry of entries) {
    if (entry.kind === 'dir') {
      classDirs.push(entry.name);
    } else if (entry.kind === 'file' || entry.cause === 'special') {
      // A file (a pipe too) that belongs in a class folder; links not followed keep their own reason.
      skipped.push({ path: entry.path, reason: NOT_IN_CLASS });
      looseFiles++;
    } else {
      skipped.push({ path: entry.path, reason: entry.reason });
    }
  }
  if (looseFiles > 0) {
    warnings.push(`${looseFiles} file(s) directly in ${quoteName(absRoot)} are not in a class folder and were skipped; move them into ${inClass('')}`);
  }
  if (classDirs.length === 0) {
    const images = entries.filter((e) => e.kind === 'file' && isImageFileName(e.name)).length;
    const found = images > 0 ? `holds ${images} image(s) but no class sub-folders` : 'holds no images and no class sub-folders';
    const example = ['cat', 'dog'].map((c) => quoteName(join(absRoot, c, '*.jpg'))).join(', ');
    throw new HeadswapError(msg`${named} ${found}; put each class's photos in a sub-folder named after the class: ${example}`);
  }
  classDirs.sort(byCodePoint);

  const forced = options.classes;
  const found = new Map<string, { path: string; relPath: string }[]>();
  const emptyClasses: string[] = [];
  // Class folders are walked concurrently, since each walk reads its folders one at a time.
  const walks = await Promise.all(classDirs.map(async (name) => ({ name, walked: await walkClass(name, absRoot, links) })));
  for (const { name, walked } of walks) {
    for (const s of walked.skipped) skipped.push(s);
    if (forced && !forced.includes(name)) {
      // One line for the folder, not one per photo: the fix is the same for all of them.
      if (walked.images.length > 0) warnings.push(`folder ${quoteName(name)} in ${quoteName(absRoot)} is not one of the model's classes; its ${walked.images.length} image(s) were not used (rename it to a class of the training data or remove it)`);
      continue;
    }
    if (walked.images.length === 0) {
      emptyClasses.push(name);
      continue;
    }
    if (walked.nestedWithImages.length > 0) {
      walked.nestedWithImages.sort(byCodePoint);
      warnings.push(`class ${quoteName(name)} includes images from nested folders (${walked.nestedWithImages.map(quoteName).join(', ')}); they were counted as ${quoteName(name)}`);
    }
    found.set(name, walked.images);
  }

  warnings.push(...emptyClassWarnings(emptyClasses));

  const classes = forced ? [...forced] : [...found.keys()];
  if (forced) {
    if (found.size === 0) {
      throw new HeadswapError(msg`${named} has no images in any of the classes ${classes.map(quoteName).join(', ')}; put images in ${inClass('…')}`);
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
