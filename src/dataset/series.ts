import { readFile } from 'node:fs/promises';
import exifReader from 'exif-reader';
import sharp from 'sharp';
import { HeadswapError } from '../errors.js';
import { pushTo } from '../util/collections.js';
import { errnoCode, errnoText } from '../util/fs.js';
import { byCodePoint, escapeControl } from '../util/text.js';
import { quoteName } from './scan.js';

/**
 * Series: photos of one class that belong together (a burst, one object from three angles) and so
 * must land on the same side of every split and cross-validation fold, or the validation score
 * measures recognising a near-duplicate instead of a new photo. This module finds them from file
 * names, the `_nohash_` marker, a groups file and EXIF capture times, and returns links only; the
 * caller unions links (with feature-similarity ones) into groups.
 */

export interface SeriesFile {
  /** Absolute path. */
  readonly path: string;
  /** '/'-separated, relative to the data root, e.g. 'cat/IMG_0001.jpg'. */
  readonly relPath: string;
  readonly label: number;
}

export type LinkReason = 'marker' | 'groups-file' | 'name' | 'time';

/** Two photos of one class that must stay on the same side of every split. relPaths. */
export interface SeriesLink {
  readonly a: string;
  readonly b: string;
  readonly reason: LinkReason;
}

export interface SeriesOptions {
  /** A groups file (`relPath<TAB or comma>group` per line); its groups are linked. */
  readonly groupsFile?: string;
  /** Read EXIF DateTimeOriginal (default true). */
  readonly readTimes?: boolean;
  /** Largest gap between consecutive capture times of one series, seconds (default SERIES_TIME_GAP_S). */
  readonly timeGapSeconds?: number;
}

/** A burst or a walk around one object takes seconds; the next object usually takes longer. */
export const SERIES_TIME_GAP_S = 10;

/** TensorFlow retrain.py's convention: `<group>_nohash_<anything>` names a member of `<group>`. */
export const NOHASH_MARKER = '_nohash_';

/** Metadata reads at a time: enough to hide file latency, few enough not to hog file handles. */
const METADATA_CONCURRENCY = 8;

/** Placeholder dates ('0000:00:00 00:00:00' parses to 1899) are a camera without a clock, not a time. */
const EARLIEST_CAPTURE_MS = Date.UTC(1900, 0, 1);

/**
 * Every link that keeps series together: marker + name + groups file (when given) + capture times
 * (unless `readTimes` is false). Links may repeat across rules; the caller's union absorbs that.
 */
export async function seriesLinks(files: readonly SeriesFile[], options: SeriesOptions = {}): Promise<SeriesLink[]> {
  const links = nameLinks(files);
  if (options.groupsFile !== undefined) links.push(...(await readGroupsFile(options.groupsFile, files)));
  if (options.readTimes !== false) {
    links.push(...timeLinks(files, await captureTimes(files), options.timeGapSeconds ?? SERIES_TIME_GAP_S));
  }
  return links;
}

/** The file name of a relPath, extension included. */
function baseName(relPath: string): string {
  return relPath.slice(relPath.lastIndexOf('/') + 1);
}

/** The name without its last extension ('a.b.jpg' -> 'a.b'); a leading dot is not an extension. */
function withoutExtension(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

/** Links each member to the next, in relPath order: n - 1 links connect n members. */
function chain(relPaths: readonly string[], reason: LinkReason, out: SeriesLink[]): void {
  const sorted = [...new Set(relPaths)].sort(byCodePoint);
  for (let i = 1; i < sorted.length; i++) out.push({ a: sorted[i - 1] as string, b: sorted[i] as string, reason });
}

/** Groups files by class label, so no rule can ever link across classes. */
function byLabel<T extends { readonly label: number }>(items: readonly T[]): T[][] {
  const out = new Map<number, T[]>();
  for (const item of items) pushTo(out, item.label, item);
  // In label order, so the output does not depend on the order files were given in.
  return [...out.keys()].sort((x, y) => x - y).map((label) => out.get(label) ?? []);
}

/**
 * A name's series part: stem + optional separator (` _-.(`, repeated) + trailing number + optional
 * ')'. The stem is the shortest prefix, so it never ends in a separator and the number is whole.
 */
const NUMBERED = /^(.*?)([ _\-.(]*)(\d+)\)?$/su;
const LETTER = /\p{L}/u;

interface Numbered {
  readonly relPath: string;
  /** Case-folded (and NFC, as macOS stores names decomposed) so 'IMG_1' and 'img_2' match. */
  readonly key: string;
  readonly hasSeparator: boolean;
  readonly stemLength: number;
  readonly digits: string;
}

function parseNumbered(relPath: string): Numbered | undefined {
  const match = NUMBERED.exec(withoutExtension(baseName(relPath)));
  if (!match) return undefined;
  const stem = (match[1] ?? '').normalize('NFC');
  const digits = match[3] ?? '';
  return { relPath, key: stem.toLowerCase(), hasSeparator: (match[2] ?? '') !== '', stemLength: [...stem].length, digits };
}

/** A stem needs this many files (and over half of a class's numbered files) to be a naming scheme. */
const SCHEME_MIN_FILES = 4;
/** Numbers this long are camera counters (IMG_0412, DSC01234), consecutive ones a burst. */
const COUNTER_MIN_DIGITS = 4;
/** Without a separator, stems this short are catalogue prefixes (m31, ic1396, ngc224), not series. */
const CATALOGUE_STEM_MAX = 3;

/**
 * Marker and name links, pure (names only).
 *
 * - Marker: a basename containing `_nohash_` belongs to the group named by everything before the
 *   first marker, within its class (TensorFlow retrain.py's convention, exact case as there). The
 *   user said what belongs together, so these files take no part in name guessing.
 * - Name series: files of a class whose names are `<stem><sep><number>` with the same stem
 *   (case-insensitive, with a letter) are a series, linked all together, e.g. `rose_1`, `rose (2)`,
 *   `Strawberry3`. A stem without a separator must be at least 4 characters long, since `m31` and
 *   `m100` (or `ic1396`, `ngc224`) are different objects of one catalogue.
 * - Naming scheme: a stem with at least 4 files and more than half of the class's numbered files
 *   (`A001..A033`, `flower_01..`, `IMG_0001..`) is how the whole folder was named, not a series.
 *   Only camera counters in it link: numbers of at least 4 digits that differ by exactly 1, i.e.
 *   consecutive shots. Shorter numbers (`A001`) are an index given afterwards and never link.
 */
export function nameLinks(files: readonly SeriesFile[]): SeriesLink[] {
  const links: SeriesLink[] = [];
  for (const members of byLabel(files)) {
    const marked = new Map<string, string[]>();
    const numbered: Numbered[] = [];
    for (const file of members) {
      const name = baseName(file.relPath);
      const at = name.indexOf(NOHASH_MARKER);
      if (at >= 0) {
        pushTo(marked, name.slice(0, at), file.relPath);
        continue;
      }
      const parsed = parseNumbered(file.relPath);
      if (parsed) numbered.push(parsed);
    }
    for (const group of [...marked.keys()].sort(byCodePoint)) chain(marked.get(group) ?? [], 'marker', links);

    const stems = new Map<string, Numbered[]>();
    for (const n of numbered) if (n.key !== '' && LETTER.test(n.key)) pushTo(stems, n.key, n);
    for (const key of [...stems.keys()].sort(byCodePoint)) {
      const series = stems.get(key) ?? [];
      const isScheme = series.length >= SCHEME_MIN_FILES && series.length * 2 > numbered.length;
      // Camera counters link only as consecutive shots, in a scheme or not: IMG_0012 and IMG_0877
      // are two sessions however few of them the folder holds.
      counterLinks(series, links);
      if (!isScheme) chain(series.filter((n) => n.digits.length < COUNTER_MIN_DIGITS && (n.hasSeparator || n.stemLength > CATALOGUE_STEM_MAX)).map((n) => n.relPath), 'name', links);
    }
  }
  return links;
}

/** Links shots whose camera counters (4+ digits) are consecutive (n and n + 1). */
function counterLinks(scheme: readonly Numbered[], out: SeriesLink[]): void {
  const byNumber = new Map<bigint, string[]>();
  // BigInt: a 17-digit counter would round as a double and make unrelated numbers "consecutive".
  for (const n of scheme) if (n.digits.length >= COUNTER_MIN_DIGITS) pushTo(byNumber, BigInt(n.digits), n.relPath);
  const numbers = [...byNumber.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  for (const number of numbers) {
    const next = byNumber.get(number + 1n);
    if (!next) continue;
    const here = [...(byNumber.get(number) ?? [])].sort(byCodePoint);
    next.sort(byCodePoint);
    // Same-number files (IMG_0412.jpg and .png) each link to the neighbour, so all stay connected.
    for (const a of here) out.push({ a, b: next[0] as string, reason: 'name' });
    for (const b of next.slice(1)) out.push({ a: here[0] as string, b, reason: 'name' });
  }
}

/**
 * Links the groups of a groups file: one `relPath<TAB or comma>group` per line, blank lines and
 * `#` comments ignored. A group is per class: photos of two classes under one group name are
 * linked within each class only, since a split can never keep different classes "together" and
 * a label is never to be inferred from it. Files not listed are not linked by it.
 *
 * Throws a one-line HeadswapError for an unreadable file or a line that names no photo of
 * `files`: a typo there would silently leave a series split, which is what the file is for.
 */
export async function readGroupsFile(file: string, files: readonly SeriesFile[]): Promise<SeriesLink[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new HeadswapError(`groups file ${quoteName(file)} does not exist; check the path`, { cause: err });
    }
    throw new HeadswapError(`cannot read groups file ${quoteName(file)} (${errnoText(err)}); check the path and its permissions`, {
      cause: err,
    });
  }
  const labels = new Map<string, number>(files.map((f) => [f.relPath, f.label]));
  const where = escapeControl(file);
  const groups = new Map<string, string[]>();
  text
    .replace(/^\uFEFF/u, '')
    .split(/\r?\n|\r/u)
    .forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const at = `${where}:${index + 1}:`;
      const cut = splitLine(line, labels);
      if (!cut) {
        throw new HeadswapError(`${at} ${quoteName(line)} has no group; write 'relPath<TAB or comma>group' on each line`);
      }
      const label = labels.get(cut.relPath);
      if (label === undefined) {
        throw new HeadswapError(`${at} ${quoteName(cut.relPath)} is not a photo of the data folder; fix the path or remove the line`);
      }
      if (cut.group === '') {
        throw new HeadswapError(`${at} ${quoteName(cut.relPath)} has an empty group name; name its group or remove the line`);
      }
      // Keyed by class too, so a group is per class; a label has no '\0', so keys cannot collide.
      pushTo(groups, `${label}\0${cut.group}`, cut.relPath);
    });
  const links: SeriesLink[] = [];
  for (const key of [...groups.keys()].sort(byCodePoint)) chain(groups.get(key) ?? [], 'groups-file', links);
  return links;
}

/**
 * A line's relPath and group. A tab separates when present (names rarely hold tabs); otherwise the
 * first comma after which the left part is a known photo, since file names may contain commas.
 */
function splitLine(line: string, known: ReadonlyMap<string, number>): { relPath: string; group: string } | undefined {
  const cut = (i: number): { relPath: string; group: string } => ({ relPath: line.slice(0, i).trim(), group: line.slice(i + 1).trim() });
  const tab = line.indexOf('\t');
  if (tab >= 0) return cut(tab);
  const first = line.indexOf(',');
  if (first < 0) return undefined;
  for (let i = first; i >= 0; i = line.indexOf(',', i + 1)) {
    if (known.has(line.slice(0, i).trim())) return cut(i);
  }
  return cut(first);
}

/**
 * EXIF DateTimeOriginal of each photo that has one, as ms (the camera's wall clock read as UTC:
 * only differences matter), with SubSecTimeOriginal when present so a 10 fps burst keeps its order.
 * Photos without EXIF, without the tag, with a placeholder date, or unreadable are absent: decode
 * errors are reported where photos are decoded. Reads headers only, a few at a time.
 */
export async function captureTimes(files: readonly SeriesFile[]): Promise<Map<string, number>> {
  const times = new Map<string, number>();
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < files.length; i = next++) {
      const file = files[i] as SeriesFile;
      const ms = await captureTime(file.path);
      if (ms !== undefined) times.set(file.relPath, ms);
    }
  };
  await Promise.all(Array.from({ length: Math.min(METADATA_CONCURRENCY, files.length) }, worker));
  return times;
}

async function captureTime(path: string): Promise<number | undefined> {
  try {
    // Metadata decodes no pixels, so the pixel limit (a guard for decoding) does not apply here.
    const { exif } = await sharp(path, { limitInputPixels: false }).metadata();
    if (!exif) return undefined;
    const tags = exifReader(exif);
    // The Exif IFD is where the standard puts it; some writers put it in IFD0 instead.
    const original: unknown = tags.Photo?.DateTimeOriginal ?? tags.Image?.DateTimeOriginal;
    if (!(original instanceof Date)) return undefined;
    const ms = original.getTime();
    if (!Number.isFinite(ms) || ms < EARLIEST_CAPTURE_MS) return undefined;
    const subSec: unknown = tags.Photo?.SubSecTimeOriginal;
    const fraction = typeof subSec === 'string' && /^\d+$/u.test(subSec.trim()) ? Number(`0.${subSec.trim()}`) * 1000 : 0;
    return ms + Math.floor(fraction);
  } catch {
    return undefined;
  }
}

/**
 * Within each class, photos with a time in time order (ties by relPath) link to the next one when
 * the gap is at most `gapSeconds`: a chain of short gaps is one burst or one walk around an object.
 */
export function timeLinks(files: readonly SeriesFile[], times: ReadonlyMap<string, number>, gapSeconds: number): SeriesLink[] {
  const links: SeriesLink[] = [];
  const gapMs = gapSeconds * 1000;
  for (const members of byLabel(files)) {
    const timed = members
      .flatMap((f) => {
        const t = times.get(f.relPath);
        return t === undefined ? [] : [{ relPath: f.relPath, t }];
      })
      .sort((x, y) => x.t - y.t || byCodePoint(x.relPath, y.relPath));
    for (let i = 1; i < timed.length; i++) {
      const prev = timed[i - 1] as { relPath: string; t: number };
      const cur = timed[i] as { relPath: string; t: number };
      if (cur.t - prev.t <= gapMs) links.push({ a: prev.relPath, b: cur.relPath, reason: 'time' });
    }
  }
  return links;
}
