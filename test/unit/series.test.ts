import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import {
  captureTimes,
  nameLinks,
  readGroupsFile,
  seriesLinks,
  SERIES_TIME_GAP_S,
  type SeriesFile,
  type SeriesLink,
} from '../../src/dataset/series.js';
import { expectOneLine } from '../helpers/assert.js';
import { HAT_1, SHOE_1 } from '../helpers/images.js';

const temps: string[] = [];
after(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'headswap-series-'));
  temps.push(dir);
  return dir;
}

/** Files from relPaths; the class folder (first segment) gives the label. */
function filesOf(relPaths: readonly string[], root = '/data'): SeriesFile[] {
  const classes = [...new Set(relPaths.map((p) => p.split('/')[0] ?? ''))].sort();
  return relPaths.map((relPath) => ({ path: join(root, relPath), relPath, label: classes.indexOf(relPath.split('/')[0] ?? '') }));
}

/** Links as sorted 'a | b | reason' strings, each pair in order, so tests compare exact sets. */
function show(links: readonly SeriesLink[]): string[] {
  return links.map(({ a, b, reason }) => (a < b ? `${a} | ${b} | ${reason}` : `${b} | ${a} | ${reason}`)).sort();
}

describe('nameLinks: marker', () => {
  test('files sharing the part before _nohash_ link within their class only', () => {
    const files = filesOf([
      'dog/bob_nohash_1.jpg',
      'dog/bob_nohash_2.jpg',
      'dog/bob_nohash_3.jpg',
      'dog/alice_nohash_1.jpg',
      'cat/bob_nohash_9.jpg',
    ]);
    // Marker files take no part in name series, so no 'name' link repeats the marker's.
    assert.deepEqual(show(nameLinks(files)), [
      'dog/bob_nohash_1.jpg | dog/bob_nohash_2.jpg | marker',
      'dog/bob_nohash_2.jpg | dog/bob_nohash_3.jpg | marker',
    ]);
  });
});

describe('nameLinks: name series', () => {
  test('a shared stem links; catalogue-like stems do not', () => {
    const files = filesOf([
      'flower/rose_1.jpg',
      'flower/Rose-02.jpg',
      'flower/rose (3).png',
      'flower/Strawberry1.jpg',
      'flower/Strawberry2.jpg',
      'flower/tulip.jpg',
      'space/m31.jpg',
      'space/m100.jpg',
      'space/ic1396.jpg',
      'space/ic1805.jpg',
      'space/ngc224.jpg',
      'space/ngc7000.jpg',
    ]);
    assert.deepEqual(show(nameLinks(files)), [
      'flower/Rose-02.jpg | flower/rose (3).png | name',
      'flower/Strawberry1.jpg | flower/Strawberry2.jpg | name',
      'flower/rose (3).png | flower/rose_1.jpg | name',
    ]);
  });

  test('a naming scheme does not link, a minority series beside it does', () => {
    const scheme = Array.from({ length: 10 }, (_, i) => `a/A${String(i + 1).padStart(3, '0')}.jpg`);
    const flowers = Array.from({ length: 10 }, (_, i) => `b/flower_${String(i + 1).padStart(2, '0')}.jpg`);
    const files = filesOf([...scheme, 'a/rose_1.jpg', 'a/rose_2.jpg', ...flowers]);
    assert.deepEqual(show(nameLinks(files)), ['a/rose_1.jpg | a/rose_2.jpg | name']);
  });

  test('in a scheme, only camera counters that differ by exactly 1 link', () => {
    const files = filesOf([
      'cam/IMG_0412.jpg',
      'cam/IMG_0413.jpg',
      'cam/IMG_0415.jpg',
      'cam/IMG_0420.jpg',
      'cam/img_0421.JPG',
      'dsc/DSC01234.jpg',
      'dsc/DSC01235.jpg',
      'dsc/DSC01300.jpg',
      'dsc/DSC01302.jpg',
    ]);
    assert.deepEqual(show(nameLinks(files)), [
      'cam/IMG_0412.jpg | cam/IMG_0413.jpg | name',
      'cam/IMG_0420.jpg | cam/img_0421.JPG | name',
      'dsc/DSC01234.jpg | dsc/DSC01235.jpg | name',
    ]);
  });

  test('camera counters outside a scheme link only when consecutive', () => {
    const files = filesOf(['dog/IMG_0012.jpg', 'dog/IMG_0013.jpg', 'dog/IMG_0500.jpg', 'dog/IMG_0877.jpg', 'dog/rex_1.jpg', 'dog/rex_2.jpg', 'dog/rex_3.jpg']);
    assert.deepEqual(show(nameLinks(files)), ['dog/IMG_0012.jpg | dog/IMG_0013.jpg | name', 'dog/rex_1.jpg | dog/rex_2.jpg | name', 'dog/rex_2.jpg | dog/rex_3.jpg | name']);
  });

  test('nothing links across classes', () => {
    const files = filesOf([
      'cat/rose_1.jpg',
      'dog/rose_2.jpg',
      'cat/IMG_0412.jpg',
      'cat/IMG_0414.jpg',
      'cat/IMG_0416.jpg',
      'cat/IMG_0418.jpg',
      'cat/IMG_0420.jpg',
      'dog/IMG_0413.jpg',
      'cat/x_nohash_1.jpg',
      'dog/x_nohash_2.jpg',
    ]);
    assert.deepEqual(show(nameLinks(files)), []);
    // Sanity check that the same names do link inside one class.
    const oneClass = files.map((f) => ({ ...f, label: 0 }));
    assert.deepEqual(show(nameLinks(oneClass)), [
      'cat/IMG_0412.jpg | dog/IMG_0413.jpg | name',
      'cat/IMG_0414.jpg | dog/IMG_0413.jpg | name',
      'cat/rose_1.jpg | dog/rose_2.jpg | name',
      'cat/x_nohash_1.jpg | dog/x_nohash_2.jpg | marker',
    ]);
  });
});

describe('readGroupsFile', () => {
  const files = filesOf(['cat/a.jpg', 'cat/b.jpg', 'cat/c.jpg', 'cat/d, 2.jpg', 'dog/e.jpg', 'dog/f.jpg', 'dog/g.jpg']);

  test('links each group within each class, ignoring comments and blank lines', async () => {
    const dir = await tempDir();
    const path = join(dir, 'groups.csv');
    const lines = [
      '\uFEFF# relPath,group',
      '',
      'cat/a.jpg,sofa',
      'cat/c.jpg\tsofa',
      '  # an indented comment',
      'dog/e.jpg,sofa',
      'dog/f.jpg , sofa ',
      'cat/d, 2.jpg,garden, west',
      'cat/b.jpg,garden, west',
    ];
    await writeFile(path, `${lines.join('\r\n')}\r\n`);
    assert.deepEqual(show(await readGroupsFile(path, files)), [
      'cat/a.jpg | cat/c.jpg | groups-file',
      'cat/b.jpg | cat/d, 2.jpg | groups-file',
      'dog/e.jpg | dog/f.jpg | groups-file',
    ]);
  });

  test('a path that is no photo is a one-line error with the line number', async () => {
    const dir = await tempDir();
    const path = join(dir, 'groups.csv');
    await writeFile(path, ['# header', 'cat/a.jpg,1', '', 'cat/b.jpg,1', '# more', 'cat/c.jpg,2', 'cat/x.jpg,2', 'dog/e.jpg,2'].join('\n'));
    await expectOneLine(readGroupsFile(path, files), /groups\.csv:7: 'cat\/x\.jpg' is not a photo of the data folder; fix the path or remove the line$/);
  });

  test('a line without a group and a missing file are one-line errors', async () => {
    const dir = await tempDir();
    const path = join(dir, 'groups.txt');
    await writeFile(path, 'cat/a.jpg,1\ncat/b.jpg\n');
    await expectOneLine(readGroupsFile(path, files), /groups\.txt:2: 'cat\/b\.jpg' has no group/);
    await expectOneLine(readGroupsFile(join(dir, 'nope.csv'), files), /groups file '.*nope\.csv' does not exist; check the path/);
  });
});

/** A real photo re-encoded by sharp, with DateTimeOriginal (and sub-seconds) when given. */
async function photo(src: string, dest: string, time?: string, subSec?: string): Promise<void> {
  await mkdir(join(dest, '..'), { recursive: true });
  const exif: Record<string, string> = {};
  if (time !== undefined) exif.DateTimeOriginal = time;
  if (subSec !== undefined) exif.SubSecTimeOriginal = subSec;
  const image = sharp(src);
  await (time === undefined ? image : image.withExif({ IFD2: exif })).jpeg().toFile(dest);
}

describe('captureTimes and time links (real photos)', () => {
  test('reads DateTimeOriginal; close shots link, distant ones and other classes do not', async () => {
    const root = await tempDir();
    const rel = ['shoe/alpha.jpg', 'shoe/beta.jpg', 'shoe/gamma.jpg', 'shoe/plain.jpg', 'shoe/noclock.jpg', 'shoe/burst.jpg', 'hat/delta.jpg'];
    const files = filesOf([...rel, 'shoe/broken.jpg'], root);
    await photo(SHOE_1, join(root, 'shoe/alpha.jpg'), '2024:05:01 10:00:00');
    await photo(SHOE_1, join(root, 'shoe/beta.jpg'), '2024:05:01 10:00:05');
    await photo(SHOE_1, join(root, 'shoe/gamma.jpg'), '2024:05:01 10:03:00');
    await photo(SHOE_1, join(root, 'shoe/plain.jpg'));
    await photo(SHOE_1, join(root, 'shoe/noclock.jpg'), '0000:00:00 00:00:00');
    await photo(SHOE_1, join(root, 'shoe/burst.jpg'), '2024:05:01 10:00:05', '250');
    await photo(HAT_1, join(root, 'hat/delta.jpg'), '2024:05:01 10:00:02');
    await writeFile(join(root, 'shoe/broken.jpg'), 'not a photo\n');

    const times = await captureTimes(files);
    const at = (hms: string): number => Date.parse(`2024-05-01T${hms}Z`);
    assert.deepEqual(
      [...times].sort(([x], [y]) => (x < y ? -1 : 1)),
      [
        ['hat/delta.jpg', at('10:00:02')],
        ['shoe/alpha.jpg', at('10:00:00')],
        ['shoe/beta.jpg', at('10:00:05')],
        ['shoe/burst.jpg', at('10:00:05') + 250],
        ['shoe/gamma.jpg', at('10:03:00')],
      ],
    );

    assert.equal(SERIES_TIME_GAP_S, 10);
    assert.deepEqual(show(await seriesLinks(files)), [
      'shoe/alpha.jpg | shoe/beta.jpg | time',
      'shoe/beta.jpg | shoe/burst.jpg | time',
    ]);
    assert.deepEqual(show(await seriesLinks(files, { timeGapSeconds: 4 })), ['shoe/beta.jpg | shoe/burst.jpg | time']);
    assert.deepEqual(show(await seriesLinks(files, { timeGapSeconds: 200 })), [
      'shoe/alpha.jpg | shoe/beta.jpg | time',
      'shoe/beta.jpg | shoe/burst.jpg | time',
      'shoe/burst.jpg | shoe/gamma.jpg | time',
    ]);
    assert.deepEqual(await seriesLinks(files, { readTimes: false }), []);
  });
});

describe('seriesLinks', () => {
  test('joins marker, name and groups-file links; missing photos are skipped silently', async () => {
    const dir = await tempDir();
    const groups = join(dir, 'groups.tsv');
    await writeFile(groups, 'cat/one.jpg\tg\ncat/two.jpg\tg\n');
    // None of these paths exist: reading capture times must skip them without throwing.
    const files = filesOf(['cat/one.jpg', 'cat/two.jpg', 'cat/rose_1.jpg', 'cat/rose_2.jpg', 'cat/k_nohash_a.jpg', 'cat/k_nohash_b.jpg'], dir);
    assert.deepEqual(show(await seriesLinks(files, { groupsFile: groups })), [
      'cat/k_nohash_a.jpg | cat/k_nohash_b.jpg | marker',
      'cat/one.jpg | cat/two.jpg | groups-file',
      'cat/rose_1.jpg | cat/rose_2.jpg | name',
    ]);
  });
});
