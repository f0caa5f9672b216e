/**
 * Fashion-MNIST (Debian `dataset-fashion-mnist`, Expat license by Zalando SE) as folders of class
 * folders of PNG files, for bench/scale.ts:
 *   ${HEADSWAP_BENCH_DATA:-~/.cache/headswap-bench}/fashion-mnist/
 *     LICENSE                      the package's /usr/share/doc/dataset-fashion-mnist/copyright
 *     <N>/train/<class>/<index>.png the first N/10 training images of each class, in file order
 *     <N>/manifest.json            what <N>/train holds (written last)
 *     test/<class>/<index>.png     the first 100 t10k images of each class, in file order
 *     test.manifest.json           what test/ holds (outside test/: a loose file there is a warning)
 * <index> is the image's index in its IDX file, zero-padded to 5 digits; every PNG is the 28x28
 * greyscale image as sharp writes it. A folder whose manifest matches (recipe, package version,
 * counts) and whose files are all there is skipped, so a run is idempotent. Missing Debian
 * package: installed when run as root (apt-get), otherwise the command is printed.
 * From a bench script: `await fashionMnist({ sizes: [1000, 5000] })`.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { benchDataRoot, ensureDebian, exists } from './eval-sets.js';

const run = promisify(execFile);

/** Bump when the conversion changes: every folder is then rebuilt. */
const RECIPE_VERSION = 1;
export const PACKAGE = 'dataset-fashion-mnist';
const COPYRIGHT = `/usr/share/doc/${PACKAGE}/copyright`;
/** Class names in label order (0-9). */
export const FASHION_CLASSES = ['t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot'] as const;
export const DEFAULT_SIZES: readonly number[] = [1000, 5000, 10000, 20000];
export const TEST_PER_CLASS = 100;
/** Images per class in the package's train and t10k files. */
const AVAILABLE = { train: 6000, t10k: 1000 } as const;

export interface FashionMnistOptions {
  /** Training-set sizes (multiples of 10; default DEFAULT_SIZES). */
  readonly sizes?: readonly number[];
  /** Install the Debian package when missing and root (default true). */
  readonly install?: boolean;
  readonly log?: (line: string) => void;
}

export interface FashionMnistFolder {
  /** Folder of class folders. */
  readonly dir: string;
  readonly photos: number;
  /** Converted in this call (false: it was complete already). */
  readonly built: boolean;
  readonly seconds: number;
}

export interface FashionMnist {
  readonly root: string;
  readonly version: string;
  readonly license: string;
  readonly classes: readonly string[];
  /** By training-set size. */
  readonly train: ReadonlyMap<number, FashionMnistFolder>;
  readonly test: FashionMnistFolder;
  /** Wall seconds of the whole call (install, parsing, conversion). */
  readonly seconds: number;
}

interface Manifest {
  readonly recipe: number;
  readonly source: { readonly package: string; readonly version: string; readonly file: string };
  readonly perClass: number;
  readonly classes: Record<string, number>;
  readonly total: number;
}

// ---- Debian package -----------------------------------------------------------------------------

/** The package's files by base name, from `dpkg -L`. */
async function packageFiles(pkg: string): Promise<Map<string, string>> {
  const { stdout } = await run('dpkg', ['-L', pkg], { maxBuffer: 16 << 20 });
  return new Map(stdout.split('\n').filter((l) => l.endsWith('.gz')).map((l) => [basename(l), l]));
}

// ---- IDX ----------------------------------------------------------------------------------------

/** An IDX file of unsigned bytes: magic 0x0000 08 <dims>, then one big-endian uint32 per dim, then the data. */
export function parseIdx(buf: Buffer, expectDims: number): { dims: number[]; data: Uint8Array } {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new Error('not an IDX file');
  if (buf[2] !== 0x08) throw new Error(`IDX element type 0x${buf[2]!.toString(16)}, expected 0x08 (unsigned byte)`);
  const n = buf[3]!;
  if (n !== expectDims) throw new Error(`IDX file has ${n} dimensions, expected ${expectDims}`);
  const dims = Array.from({ length: n }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * n;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== offset + size) throw new Error(`IDX file is ${buf.length} bytes, expected ${offset + size}`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, size) };
}

interface Split {
  readonly file: string;
  readonly width: number;
  readonly height: number;
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

async function readSplit(files: Map<string, string>, prefix: 'train' | 't10k'): Promise<Split> {
  const path = (kind: string): string => {
    const p = files.get(`${prefix}-${kind}.gz`);
    if (!p) throw new Error(`${PACKAGE} has no ${prefix}-${kind}.gz (dpkg -L ${PACKAGE})`);
    return p;
  };
  const imagesFile = path('images-idx3-ubyte');
  const images = parseIdx(gunzipSync(await readFile(imagesFile)), 3);
  const labels = parseIdx(gunzipSync(await readFile(path('labels-idx1-ubyte'))), 1);
  const [count, height, width] = images.dims as [number, number, number];
  if (labels.dims[0] !== count) throw new Error(`${prefix}: ${count} images but ${labels.dims[0]} labels`);
  for (const l of labels.data) if (l >= FASHION_CLASSES.length) throw new Error(`${prefix}: label ${l} out of range`);
  return { file: basename(imagesFile), width, height, images: images.data, labels: labels.data };
}

/** Per class, the indices of its first `perClass` images in file order. */
function firstPerClass(split: Split, perClass: number): number[][] {
  const out: number[][] = FASHION_CLASSES.map(() => []);
  for (let i = 0; i < split.labels.length; i++) {
    const list = out[split.labels[i]!]!;
    if (list.length < perClass) list.push(i);
  }
  for (const [c, list] of out.entries()) if (list.length < perClass) throw new Error(`${split.file}: class ${FASHION_CLASSES[c]} has ${list.length} images, ${perClass} asked`);
  return out;
}

// ---- folders ------------------------------------------------------------------------------------


async function readManifest(path: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** Complete: the manifest is this recipe's for this version and count, and every class folder holds its count of PNGs. */
async function complete(dir: string, manifestPath: string, version: string, perClass: number): Promise<boolean> {
  const m = await readManifest(manifestPath);
  if (!m || m.recipe !== RECIPE_VERSION || m.source.version !== version || m.perClass !== perClass) return false;
  for (const cls of FASHION_CLASSES) {
    try {
      const files = (await readdir(join(dir, cls))).filter((f) => f.endsWith('.png'));
      if (files.length !== perClass || m.classes[cls] !== perClass) return false;
    } catch {
      return false;
    }
  }
  return true;
}

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

/** PNG bytes of one image, encoded once per split and index even when several sizes hold it. */
function encoder(split: Split): (index: number) => Promise<Buffer> {
  const memo = new Map<number, Promise<Buffer>>();
  const pixels = split.width * split.height;
  return (index) => {
    let png = memo.get(index);
    if (!png) {
      const raw = split.images.subarray(index * pixels, (index + 1) * pixels);
      png = sharp(Buffer.from(raw), { raw: { width: split.width, height: split.height, channels: 1 } }).toColourspace('b-w').png().toBuffer();
      memo.set(index, png);
    }
    return png;
  };
}

/**
 * Writes `perClass` images of each class into `<dir>` (via a temp folder renamed into place), then
 * its manifest at `manifestPath`; skipped when complete.
 */
async function buildFolder(dir: string, manifestPath: string, split: () => Promise<Split>, encode: (s: Split) => (i: number) => Promise<Buffer>, perClass: number, version: string, log: (l: string) => void): Promise<FashionMnistFolder> {
  const t0 = performance.now();
  const photos = perClass * FASHION_CLASSES.length;
  if (await complete(dir, manifestPath, version, perClass)) return { dir, photos, built: false, seconds: 0 };
  const s = await split();
  const png = encode(s);
  const picked = firstPerClass(s, perClass);
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  const jobs: { index: number; to: string }[] = [];
  for (const [c, cls] of FASHION_CLASSES.entries()) {
    await mkdir(join(tmp, cls), { recursive: true });
    for (const index of picked[c]!) jobs.push({ index, to: join(tmp, cls, `${String(index).padStart(5, '0')}.png`) });
  }
  log(`fashion-mnist: writing ${photos} PNGs to ${dir}`);
  await pool(jobs, 16, async ({ index, to }) => writeFile(to, await png(index)));
  await rm(manifestPath, { force: true });
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  const manifest: Manifest = {
    recipe: RECIPE_VERSION,
    source: { package: PACKAGE, version, file: s.file },
    perClass,
    classes: Object.fromEntries(FASHION_CLASSES.map((c) => [c, perClass])),
    total: photos,
  };
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 1)}\n`);
  return { dir, photos, built: true, seconds: (performance.now() - t0) / 1000 };
}

/** The Fashion-MNIST folders, converted where missing or incomplete. */
export async function fashionMnist(options: FashionMnistOptions = {}): Promise<FashionMnist> {
  const t0 = performance.now();
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const sizes = [...new Set(options.sizes ?? DEFAULT_SIZES)].sort((a, b) => a - b);
  for (const n of sizes) {
    if (!Number.isInteger(n) || n <= 0 || n % FASHION_CLASSES.length !== 0 || n / FASHION_CLASSES.length > AVAILABLE.train) {
      throw new Error(`fashion-mnist size ${n}: must be a multiple of ${FASHION_CLASSES.length} up to ${AVAILABLE.train * FASHION_CLASSES.length}`);
    }
  }
  const version = await ensureDebian(PACKAGE, options.install ?? true, log);
  const root = join(benchDataRoot(), 'fashion-mnist');
  await mkdir(root, { recursive: true });
  const license = join(root, 'LICENSE');
  const copyright = await readFile(COPYRIGHT);
  if (!(await exists(license)) || !(await readFile(license)).equals(copyright)) await copyFile(COPYRIGHT, license);

  // Parsed lazily and once: a run with every folder complete reads no IDX file.
  let files: Promise<Map<string, string>> | undefined;
  const lazy = (prefix: 'train' | 't10k'): (() => Promise<Split>) => {
    let p: Promise<Split> | undefined;
    return () => (p ??= (files ??= packageFiles(PACKAGE)).then((f) => readSplit(f, prefix)));
  };
  const memo = <T extends object, R>(f: (x: T) => R): ((x: T) => R) => {
    const m = new WeakMap<T, R>();
    return (x) => {
      if (!m.has(x)) m.set(x, f(x));
      return m.get(x)!;
    };
  };
  const encode = memo(encoder);
  const trainSplit = lazy('train');
  const train = new Map<number, FashionMnistFolder>();
  for (const n of sizes) {
    const folder = await buildFolder(join(root, String(n), 'train'), join(root, String(n), 'manifest.json'), trainSplit, encode, n / FASHION_CLASSES.length, version, log);
    train.set(n, folder);
  }
  const test = await buildFolder(join(root, 'test'), join(root, 'test.manifest.json'), lazy('t10k'), encode, TEST_PER_CLASS, version, log);
  return { root, version, license, classes: FASHION_CLASSES, train, test, seconds: (performance.now() - t0) / 1000 };
}
