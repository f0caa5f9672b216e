import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { HeadswapError } from '../../src/errors.js';
import { scanDataset, type ImageFile } from '../../src/dataset/scan.js';
import { DEFAULT_SPLIT_OPTIONS, splitDataset, splitUnit, type SplitName, type SplitOptions } from '../../src/dataset/split.js';
import { packagePath } from '../../src/util/paths.js';

const REAL = packagePath('data', 'clothing7', 'train');
const DEFAULTS = DEFAULT_SPLIT_OPTIONS;
const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];

const temps: string[] = [];
after(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'headswap-dataset-'));
  temps.push(dir);
  return dir;
}

/** Real JPEGs of a clothing7 class, so the fixtures are actual photos rather than fake bytes. */
async function realPhotos(className: string, count: number): Promise<string[]> {
  const names = (await readdir(join(REAL, className))).sort().slice(0, count);
  assert.equal(names.length, count, `clothing7/${className} has fewer than ${count} photos`);
  return names.map((name) => join(REAL, className, name));
}

/** Copies a photo; the packaged data is read-only, and copyFile keeps the mode. */
async function putPhoto(src: string, dest: string): Promise<void> {
  await copyFile(src, dest);
  await chmod(dest, 0o644);
}

async function rejectsHeadswap(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HeadswapError, `expected HeadswapError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'user-facing errors are one line');
    assert.match(err.message, pattern);
    return true;
  });
}

function throwsHeadswap(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof HeadswapError, `expected HeadswapError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, pattern);
    return true;
  });
}

function reasonOf(skipped: readonly { path: string; reason: string }[], path: string): string | undefined {
  return skipped.find((s) => s.path === path)?.reason;
}

describe('scanDataset', () => {
  test('reads the real clothing7 train set', async () => {
    const ds = await scanDataset(REAL);
    assert.deepEqual(ds.classes, ['dress', 'hat', 'pants', 'shoes', 'shorts', 'skirt', 't-shirt']);
    assert.equal(ds.files.length, 150);
    assert.deepEqual(ds.skipped, []);
    assert.deepEqual(ds.warnings, []);
    for (const file of ds.files) {
      assert.equal(file.className, ds.classes[file.label]);
      assert.equal(file.relPath, `${file.className}/${file.path.slice(file.path.lastIndexOf('/') + 1)}`);
      assert.equal(file.path, join(REAL, file.relPath));
    }
    const keys = ds.files.map((f) => `${f.label}\t${f.relPath}`);
    assert.deepEqual(keys, [...keys].sort((a, b) => Number(a.split('\t')[0]) - Number(b.split('\t')[0]) || (a < b ? -1 : 1)));
  });

  test('survives a hostile folder: junk, hidden, nested, odd names, symlinks, unreadable', async () => {
    const root = await tempRoot();
    const outside = await tempRoot();
    const [h1, h2, h3, h4, h5] = await realPhotos('hat', 5);
    const [s1, s2, s3] = await realPhotos('shoes', 3);
    assert.ok(h1 && h2 && h3 && h4 && h5 && s1 && s2 && s3);

    const cats = join(root, 'cats');
    await mkdir(join(cats, 'sub', 'deeper'), { recursive: true });
    await mkdir(join(cats, '.hiddendir'));
    await putPhoto(h1, join(cats, 'a.jpg'));
    await putPhoto(h2, join(cats, 'UPPER.JPG'));
    await putPhoto(h3, join(cats, 'sub', 'deeper', 'nested.jpeg'));
    await putPhoto(h4, join(cats, '.hidden.jpg'));
    await putPhoto(h5, join(cats, '.hiddendir', 'x.jpg'));
    await writeFile(join(cats, 'zero.jpg'), ''); // kept: content is checked at decode time
    await writeFile(join(cats, 'notes.txt'), 'not a photo');
    await writeFile(join(cats, 'photo.jpg.bak'), 'backup');
    for (const junk of ['.DS_Store', 'Thumbs.db', 'desktop.ini', 'THUMBS.DB']) await writeFile(join(cats, junk), 'junk');

    const dogs = join(root, 'dogs with spaces');
    await mkdir(dogs);
    await putPhoto(s1, join(dogs, 'ünï cødé 猫.png'));
    await putPhoto(s2, join(dogs, '-leading-dash.webp'));
    await putPhoto(s3, join(dogs, 'new\nline.jpg'));

    await mkdir(join(root, '-dash class'));
    await putPhoto(s1, join(root, '-dash class', 'one.jpg'));
    await mkdir(join(root, 'Zebra')); // upper case sorts before lower case (code points)
    await putPhoto(h1, join(root, 'Zebra', 'z.tif'));
    await mkdir(join(root, 'empty'));
    await mkdir(join(root, 'only-text'));
    await writeFile(join(root, 'only-text', 'readme.txt'), 'no photos here');
    await mkdir(join(root, '.git'));
    await putPhoto(h1, join(root, '.git', 'ignored.jpg'));

    await putPhoto(h2, join(root, 'loose.jpg'));
    await writeFile(join(root, '.hidden-root-file'), 'x');
    await writeFile(join(root, 'Thumbs.db'), 'junk');

    await putPhoto(s1, join(outside, 'elsewhere.jpg'));
    await symlink(join(outside, 'elsewhere.jpg'), join(cats, 'outside.jpg'));
    await symlink(join(cats, 'does-not-exist.jpg'), join(cats, 'broken.jpg'));
    await symlink('..', join(cats, 'loop'));
    await symlink('ping.jpg', join(cats, 'pong.jpg'));
    await symlink('pong.jpg', join(cats, 'ping.jpg'));
    await symlink(join('..', 'dogs with spaces', '-leading-dash.webp'), join(cats, 'inside.webp'));
    await symlink('cats', join(root, 'linked-class'));

    const locked = join(cats, 'locked.jpg');
    await putPhoto(h5, locked);
    await chmod(locked, 0o000);

    const ds = await scanDataset(root);
    assert.deepEqual(ds.classes, ['-dash class', 'Zebra', 'cats', 'dogs with spaces']);

    // Root runs ignore file modes, so the chmod 000 file is readable and counts as an image there.
    const asRoot = process.getuid?.() === 0;
    const expectedCats = ['cats/UPPER.JPG', 'cats/a.jpg', 'cats/inside.webp', ...(asRoot ? ['cats/locked.jpg'] : []), 'cats/sub/deeper/nested.jpeg', 'cats/zero.jpg'];
    assert.deepEqual(
      ds.files.map((f) => [f.label, f.className, f.relPath]),
      [
        [0, '-dash class', '-dash class/one.jpg'],
        [1, 'Zebra', 'Zebra/z.tif'],
        ...expectedCats.map((relPath) => [2, 'cats', relPath]),
        [3, 'dogs with spaces', 'dogs with spaces/-leading-dash.webp'],
        [3, 'dogs with spaces', 'dogs with spaces/new\nline.jpg'],
        [3, 'dogs with spaces', 'dogs with spaces/ünï cødé 猫.png'],
      ],
    );
    for (const file of ds.files) assert.equal(file.path, join(root, ...file.relPath.split('/')));

    const skipped = ds.skipped;
    assert.equal(reasonOf(skipped, join(cats, 'notes.txt')), 'not an image file (extension)');
    assert.equal(reasonOf(skipped, join(cats, 'photo.jpg.bak')), 'not an image file (extension)');
    assert.equal(reasonOf(skipped, join(root, 'only-text', 'readme.txt')), 'not an image file (extension)');
    assert.equal(reasonOf(skipped, join(root, 'loose.jpg')), 'not in a class folder');
    assert.equal(reasonOf(skipped, join(cats, 'outside.jpg')), 'symlink points outside the dataset folder');
    assert.match(reasonOf(skipped, join(cats, 'broken.jpg')) ?? '', /broken or looping symlink \(ENOENT\)/);
    assert.match(reasonOf(skipped, join(cats, 'ping.jpg')) ?? '', /broken or looping symlink \(ELOOP\)/);
    assert.match(reasonOf(skipped, join(cats, 'pong.jpg')) ?? '', /broken or looping symlink \(ELOOP\)/);
    assert.equal(reasonOf(skipped, join(cats, 'loop')), 'symlinked folder not followed');
    assert.equal(reasonOf(skipped, join(root, 'linked-class')), 'symlinked folder not followed');
    if (!asRoot) assert.match(reasonOf(skipped, locked) ?? '', /cannot read \(EACCES\)/);
    // Hidden entries and OS junk are ignored silently: neither files nor skipped.
    const silent = /\/\.|Thumbs\.db|THUMBS\.DB|desktop\.ini/;
    assert.deepEqual(skipped.filter((s) => silent.test(s.path)), []);
    assert.deepEqual(skipped.map((s) => s.path), [...skipped.map((s) => s.path)].sort());

    assert.equal(ds.warnings.length, 4, ds.warnings.join('\n'));
    assert.ok(ds.warnings.some((w) => /1 file\(s\) directly in .* not in a class folder/.test(w)));
    assert.ok(ds.warnings.some((w) => w.includes("class 'cats' includes images from nested folders ('cats/sub/deeper')")));
    assert.ok(ds.warnings.some((w) => w.includes("class folder 'empty' has no images")));
    assert.ok(ds.warnings.some((w) => w.includes("class folder 'only-text' has no images")));
    for (const w of ds.warnings) assert.doesNotMatch(w, /\n/);
    await chmod(locked, 0o644);
  });

  test('unreadable class sub-folder is skipped with a reason, not thrown', async (t) => {
    if (process.getuid?.() === 0) return t.skip('running as root: chmod 000 does not stop root from reading');
    const root = await tempRoot();
    const [a, b] = await realPhotos('pants', 2);
    assert.ok(a && b);
    await mkdir(join(root, 'x', 'locked'), { recursive: true });
    await mkdir(join(root, 'y'));
    await putPhoto(a, join(root, 'x', 'a.jpg'));
    await putPhoto(b, join(root, 'y', 'b.jpg'));
    await chmod(join(root, 'x', 'locked'), 0o000);
    try {
      const ds = await scanDataset(root);
      assert.deepEqual(ds.files.map((f) => f.relPath), ['x/a.jpg', 'y/b.jpg']);
      assert.match(reasonOf(ds.skipped, join(root, 'x', 'locked')) ?? '', /cannot read folder \(EACCES\)/);
    } finally {
      await chmod(join(root, 'x', 'locked'), 0o755);
    }
  });

  test('folder-level problems are one-line HeadswapErrors naming the folder and the fix', async () => {
    const missing = join(await tempRoot(), 'nope');
    await rejectsHeadswap(scanDataset(missing), /dataset folder '.*nope' does not exist; check the path/);

    const fileRoot = join(await tempRoot(), 'file.jpg');
    await writeFile(fileRoot, 'x');
    await rejectsHeadswap(scanDataset(fileRoot), /'.*file\.jpg' is not a folder; pass a folder with one sub-folder per class/);

    const flat = await tempRoot();
    const [p1, p2] = await realPhotos('dress', 2);
    assert.ok(p1 && p2);
    await putPhoto(p1, join(flat, 'a.jpg'));
    await putPhoto(p2, join(flat, 'b.jpg'));
    await rejectsHeadswap(scanDataset(flat), /holds 2 image\(s\) but no class sub-folders; put each class's photos in a sub-folder named after the class: '.*\/cat\/\*\.jpg', '.*\/dog\/\*\.jpg'$/);

    const oneClass = await tempRoot();
    await mkdir(join(oneClass, 'dress'));
    await mkdir(join(oneClass, 'empty'));
    await putPhoto(p1, join(oneClass, 'dress', 'a.jpg'));
    await rejectsHeadswap(scanDataset(oneClass), /only one class 'dress' has images; a classifier needs at least 2/);

    const noImages = await tempRoot();
    await mkdir(join(noImages, 'a'));
    await mkdir(join(noImages, 'b'));
    await writeFile(join(noImages, 'b', 'notes.txt'), 'x');
    await rejectsHeadswap(scanDataset(noImages), /has class folders but no images in them/);

    // A newline in a name must not break the one-line rule.
    const oddName = await tempRoot();
    await mkdir(join(oddName, 'two\nlines'));
    await putPhoto(p1, join(oddName, 'two\nlines', 'a.jpg'));
    await rejectsHeadswap(scanDataset(oddName), /only one class "two\\nlines" has images/);
  });

  test('forced class list (separate test dir) keeps the given labels', async () => {
    const root = await tempRoot();
    const [a, b, c] = await realPhotos('skirt', 3);
    assert.ok(a && b && c);
    for (const name of ['b', 'a', 'stray']) await mkdir(join(root, name));
    await putPhoto(a, join(root, 'a', '1.jpg'));
    await putPhoto(b, join(root, 'b', '2.jpg'));
    await putPhoto(c, join(root, 'stray', '3.jpg'));

    const classes = ['c', 'b', 'a'] as const; // 'c' has no folder here: fine
    const ds = await scanDataset(root, { classes });
    assert.deepEqual(ds.classes, ['c', 'b', 'a']);
    assert.deepEqual(ds.files.map((f) => [f.label, f.relPath]), [[1, 'b/2.jpg'], [2, 'a/1.jpg']]);
    // One line for the unknown folder, not one per photo in it.
    assert.equal(ds.skipped.filter((s) => s.path.includes('stray')).length, 0);
    assert.deepEqual(ds.warnings.filter((w) => w.includes('stray')), [`folder 'stray' in '${root}' is not one of the model's classes; its 1 image(s) were not used (rename it to a class of the training data or remove it)`]);

    // One class alone is a valid test set; no images of any known class is not.
    assert.equal((await scanDataset(root, { classes: ['a', 'z'] })).files.length, 1);
    await rejectsHeadswap(scanDataset(root, { classes: ['x', 'y'] }), /has no images in any of the classes 'x', 'y'/);
  });
});

type Parts<T> = Record<SplitName, T[]>;

function countsByClass<T extends { label: number }>(parts: Parts<T>, label: number): Record<SplitName, number> {
  return {
    train: parts.train.filter((f) => f.label === label).length,
    validation: parts.validation.filter((f) => f.label === label).length,
    test: parts.test.filter((f) => f.label === label).length,
  };
}

function assignment<T extends { relPath: string }>(parts: Parts<T>): Map<string, SplitName> {
  const map = new Map<string, SplitName>();
  for (const name of SPLITS) for (const f of parts[name]) map.set(f.relPath, name);
  return map;
}

/** The split a file gets from its own hash, before any per-class repair. */
function hashSplit(seed: number, relPath: string, opts: SplitOptions = DEFAULTS): SplitName {
  const u = splitUnit(seed, relPath);
  return u < opts.testPct / 100 ? 'test' : u < (opts.testPct + opts.valPct) / 100 ? 'validation' : 'train';
}

function synthetic(classSizes: readonly number[], prefix = 'img'): { relPath: string; label: number }[] {
  return classSizes.flatMap((n, label) => Array.from({ length: n }, (_, i) => ({ relPath: `c${label}/${prefix}-${i}.jpg`, label })));
}

describe('splitDataset', async () => {
  const real = await scanDataset(REAL);

  test('defaults are 10% validation, 10% test, seed 0', () => {
    assert.deepEqual(DEFAULTS, { valPct: 10, testPct: 10, seed: 0 });
  });

  test('about 80/10/10 on clothing7, stratified, complete and sorted', () => {
    const parts = splitDataset(real.files, real.classes, DEFAULTS);
    const all = [...parts.train, ...parts.validation, ...parts.test];
    assert.equal(all.length, 150);
    assert.equal(new Set(all.map((f) => f.relPath)).size, 150, 'no file in two splits');
    assert.ok(parts.train.length >= 105 && parts.train.length <= 130, `train ${parts.train.length}`);
    for (const name of ['validation', 'test'] as const) {
      assert.ok(parts[name].length >= 8 && parts[name].length <= 25, `${name} ${parts[name].length}`);
    }
    real.classes.forEach((_, label) => {
      const c = countsByClass(parts, label);
      assert.ok(c.train >= 1 && c.validation >= 1 && c.test >= 1, `class ${label}: ${JSON.stringify(c)}`);
    });
    for (const name of SPLITS) {
      const keys = parts[name].map((f: ImageFile) => [f.label, f.relPath] as const);
      const sorted = [...keys].sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
      assert.deepEqual(keys, sorted);
    }
  });

  test('deterministic regardless of input order; the seed changes it', () => {
    const a = splitDataset(real.files, real.classes, DEFAULTS);
    const b = splitDataset([...real.files].reverse(), real.classes, DEFAULTS);
    assert.deepEqual(b, a);
    const other = splitDataset(real.files, real.classes, { ...DEFAULTS, seed: 1 });
    assert.notDeepEqual(assignment(other), assignment(a));
  });

  test('adding photos does not move old ones between splits', () => {
    for (const seed of [0, 1, 2, 3]) {
      const opts = { ...DEFAULTS, seed };
      const before = splitDataset(real.files, real.classes, opts);
      const added = real.classes.flatMap((className, label) =>
        Array.from({ length: 12 }, (_, i) => ({ ...real.files[0]!, label, className, relPath: `${className}/new-${i}.jpg` })),
      );
      const after = splitDataset([...real.files, ...added], real.classes, opts);
      const old = assignment(before);
      const now = assignment(after);

      // Only a class whose hash left some split empty was repaired; all other classes are untouched.
      const repaired = new Set(real.files.filter((f) => old.get(f.relPath) !== hashSplit(seed, f.relPath)).map((f) => f.label));
      let moved = 0;
      for (const f of real.files) {
        if (now.get(f.relPath) === old.get(f.relPath)) continue;
        moved++;
        assert.ok(repaired.has(f.label), `seed ${seed}: ${f.relPath} moved although its class needed no repair`);
      }
      assert.ok(moved <= 2 * repaired.size, `seed ${seed}: ${moved} old files moved`);
    }

    // Large classes never need a repair, so nothing old moves at all.
    const big = synthetic([60, 80]);
    const bigAfter = [...big, ...synthetic([40, 40], 'more')];
    const old = assignment(splitDataset(big, ['x', 'y'], DEFAULTS));
    const now = assignment(splitDataset(bigAfter, ['x', 'y'], DEFAULTS));
    for (const f of big) assert.equal(now.get(f.relPath), old.get(f.relPath), f.relPath);
  });

  test('tiny classes still get one train, one validation and one test file, for every seed', () => {
    const files = synthetic([3, 4, 5, 200]);
    const classes = ['a', 'b', 'c', 'd'];
    for (let seed = 0; seed < 40; seed++) {
      const parts = splitDataset(files, classes, { ...DEFAULTS, seed });
      assert.deepEqual(countsByClass(parts, 0), { train: 1, validation: 1, test: 1 }, `seed ${seed}`);
      for (const label of [1, 2, 3]) {
        const c = countsByClass(parts, label);
        assert.ok(c.train >= 1 && c.validation >= 1 && c.test >= 1, `seed ${seed} class ${label}: ${JSON.stringify(c)}`);
      }
      assert.equal(parts.train.length + parts.validation.length + parts.test.length, files.length);
    }
  });

  test('with a separate test dir: no test split, classes need 2 images', () => {
    const opts = { ...DEFAULTS, hasSeparateTest: true };
    const parts = splitDataset(real.files, real.classes, opts);
    assert.equal(parts.test.length, 0);
    assert.ok(parts.validation.length >= 7 && parts.validation.length <= 30, `validation ${parts.validation.length}`);
    for (let seed = 0; seed < 20; seed++) {
      const pair = splitDataset(synthetic([2, 2]), ['a', 'b'], { ...opts, seed });
      assert.deepEqual(countsByClass(pair, 0), { train: 1, validation: 1, test: 0 });
      assert.deepEqual(countsByClass(pair, 1), { train: 1, validation: 1, test: 0 });
    }
    throwsHeadswap(() => splitDataset(synthetic([1, 5]), ['lonely', 'b'], opts), /class 'lonely' has 1 image\(s\); it needs at least 2 \(validation \+ train\) — add photos$/);
  });

  test('too-small classes and bad percentages are HeadswapErrors naming the fix', () => {
    throwsHeadswap(() => splitDataset(synthetic([10, 2]), ['a', 'few'], DEFAULTS), /class 'few' has 2 image\(s\); it needs at least 3 .*add photos or give a separate testDir/);
    throwsHeadswap(() => splitDataset(synthetic([10, 0]), ['a', 'none'], DEFAULTS), /class 'none' has 0 image\(s\)/);
    throwsHeadswap(() => splitDataset(synthetic([10, 10]), ['a', 'b'], { ...DEFAULTS, valPct: 60, testPct: 40 }), /make their sum less than 100/);
    throwsHeadswap(() => splitDataset(synthetic([10, 10]), ['a', 'b'], { ...DEFAULTS, valPct: -1 }), /valPct: -1 is out of range/);
    throwsHeadswap(() => splitDataset(synthetic([10, 10]), ['a', 'b'], { ...DEFAULTS, testPct: Number.NaN }), /testPct: NaN is out of range/);
  });

  test('a percentage of 0 turns that split off', () => {
    const parts = splitDataset(synthetic([2, 30]), ['a', 'b'], { ...DEFAULTS, testPct: 0 });
    assert.equal(parts.test.length, 0);
    assert.deepEqual(countsByClass(parts, 0), { train: 1, validation: 1, test: 0 });
  });
});
