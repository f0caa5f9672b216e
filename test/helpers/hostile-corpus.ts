/**
 * A data set folder full of bad input, with a few real photos per class so training still works,
 * and what headswap should do with each entry. Used by test/hostile.test.ts; also a script:
 *   node --import tsx test/helpers/hostile-corpus.ts <dir> [--svg-url http://127.0.0.1:PORT] [--empty-dirs N]
 * writes the corpus into <dir> (which must not exist yet) and prints one line per case.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp, { type Sharp } from 'sharp';
import { CLOTHING7 } from './dataset.js';
import { pixelBombPng } from './images.js';

/**
 * What a command does with an entry: `used` (decoded and classified / trained on), `ignored`
 * (never listed: folders, non-image names in a folder walk), `omit` (not passed as an argument),
 * or a pattern the skip reason must match (the file is named on the same line).
 */
export type Outcome = 'used' | 'ignored' | 'omit' | RegExp;

export interface HostileCase {
  /** Short id, unique, e.g. 'truncated-jpeg-60%'. */
  readonly id: string;
  /** Absolute path of the entry. */
  readonly path: string;
  /** `train <root>`: used for training/evaluation, skipped with a reason, or ignored. */
  readonly train: Outcome;
  /** `predict <model> <root>` and `classify <root>`: the folder walk. */
  readonly predict: Outcome;
  /** `predict <model> <path>`: the entry given as a file argument. */
  readonly explicit: Outcome;
  /** For decodable images: a file with the same picture upright and plain, to check the pixels. */
  readonly reference?: string;
}

export interface HostileCorpus {
  /** The data set folder: root/<class>/<image>. */
  readonly root: string;
  /** A folder beside it that symlinks point into. */
  readonly outside: string;
  readonly classes: readonly string[];
  /** Plain real photos, all used. */
  readonly good: readonly string[];
  readonly cases: readonly HostileCase[];
  /** Why a case is missing here (e.g. mkfifo unavailable). */
  readonly notes: readonly string[];
}

export interface HostileOptions {
  /** Base URL the SVG files reference (point it at a test server to prove nothing is fetched). */
  readonly svgUrl?: string;
  /** Empty folders at the top level, where class folders go. */
  readonly emptyDirs?: number;
  /** Real photos per class. */
  readonly perClass?: number;
}

export const HOSTILE_CLASSES = ['hat', 'pants', 'shoes'] as const;

const SKIP = {
  empty: /empty file \(0 bytes\)/,
  unreadable: /not a readable image|cannot decode image/,
  unknown: /not a readable image \(its content is not JPEG, PNG, WebP, GIF, AVIF or TIFF/,
  svg: /not a readable image \(SVG vector graphics are not read/,
  bomb: /50000x50000 pixels is over the limit/,
  extension: /^not an image file \(extension\)$/,
  loop: /^broken or looping symlink \(ELOOP\)$/,
  broken: /^broken or looping symlink \(ENOENT\)$/,
  outside: /^symlink points outside the dataset folder$/,
  dirLink: /^symlinked folder not followed$/,
  notRegular: /not a regular file/,
  loose: /^not in a class folder$/,
  denied: /cannot read \(EACCES/,
} as const;

/** Deterministic bytes, so the corpus is the same on every run. */
function noise(length: number, seed: string): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i * 32 < length; i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, i * 32);
  // Make sure no magic number of a supported format sneaks in.
  out[0] = 0x00;
  return out;
}

async function photos(className: string, n: number, skip = 0): Promise<string[]> {
  const dir = join(CLOTHING7, 'train', className);
  return (await readdir(dir)).sort().slice(skip, skip + n).map((f) => join(dir, f));
}

/** The stored pixels whose EXIF orientation `o` displays as `upright` (the inverse of the tag's transform). */
async function storedFor(upright: Buffer, o: number): Promise<Buffer> {
  const step = async (buf: Buffer, op: (s: Sharp) => Sharp): Promise<Buffer> => op(sharp(buf)).png().toBuffer();
  switch (o) {
    case 2: return step(upright, (s) => s.flop());
    case 3: return step(upright, (s) => s.rotate(180));
    case 4: return step(upright, (s) => s.flip());
    case 5: return step(await step(upright, (s) => s.rotate(90)), (s) => s.flop()); // transpose
    case 6: return step(upright, (s) => s.rotate(270));
    case 7: return step(await step(upright, (s) => s.rotate(270)), (s) => s.flop()); // transverse
    case 8: return step(upright, (s) => s.rotate(90));
    default: return upright;
  }
}

function svg(base: string, outsideFile: string): string {
  // Every way an SVG can reach out: an image, a <use>, CSS @import, XInclude and an external entity.
  return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg [ <!ENTITY ext SYSTEM "${base}/entity.txt"> ]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xi="http://www.w3.org/2001/XInclude" width="224" height="224">
  <style>@import url(${base}/style.css);</style>
  <image href="${base}/image.png" x="0" y="0" width="224" height="224"/>
  <image xlink:href="${pathToFileURL(outsideFile).href}" x="0" y="0" width="224" height="224"/>
  <use href="${base}/sprite.svg#shape"/>
  <xi:include href="${base}/xinclude.xml"/>
  <text x="10" y="20">&ext;</text>
</svg>
`;
}

/** Writes the corpus into `dir` (created; must not exist) and returns its manifest. */
export async function writeHostileCorpus(dir: string, options: HostileOptions = {}): Promise<HostileCorpus> {
  if (existsSync(dir)) throw new Error(`${dir} already exists; give a new folder`);
  const root = resolve(dir, 'data');
  const outside = resolve(dir, 'outside');
  const svgUrl = (options.svgUrl ?? 'http://127.0.0.1:9').replace(/\/+$/, '');
  const perClass = options.perClass ?? 5;
  const cases: HostileCase[] = [];
  const notes: string[] = [];
  const good: string[] = [];
  const add = (c: HostileCase): void => void cases.push(c);

  await mkdir(outside, { recursive: true });
  for (const c of HOSTILE_CLASSES) {
    await mkdir(join(root, c), { recursive: true });
    for (const [i, src] of (await photos(c, perClass)).entries()) {
      const dest = join(root, c, `good-${i}.jpg`);
      await copyFile(src, dest);
      await chmod(dest, 0o644); // the packaged photos are read-only
      good.push(dest);
    }
  }
  const hat = join(root, 'hat');
  const shoes = join(root, 'shoes');
  const [photoA, photoB, photoC, photoD] = await photos('hat', 4, perClass);
  const shoePhotos = await photos('shoes', 6, perClass);
  const upright = await readFile(photoA!);
  const uprightPng = join(outside, 'upright-reference.png');
  await writeFile(uprightPng, await sharp(upright).png().toBuffer());

  // Broken content.
  const zero = join(hat, 'zero-byte.jpg');
  await writeFile(zero, Buffer.alloc(0));
  add({ id: 'zero-byte', path: zero, train: SKIP.empty, predict: SKIP.empty, explicit: SKIP.empty });

  const formats: Record<string, Buffer> = {
    jpeg: await sharp(upright).jpeg({ quality: 90 }).toBuffer(),
    png: await sharp(upright).png().toBuffer(),
    webp: await sharp(upright).webp({ quality: 90 }).toBuffer(),
  };
  for (const [format, bytes] of Object.entries(formats)) {
    for (const cut of [16, 0.3, 0.6, 0.9]) {
      const n = cut < 1 ? Math.floor(bytes.length * cut) : cut;
      const label = cut < 1 ? `${Math.round(cut * 100)}%` : `${cut}B`;
      const path = join(hat, `truncated-${format}-${label}.${format === 'jpeg' ? 'jpg' : format}`);
      await writeFile(path, bytes.subarray(0, n));
      add({ id: `truncated-${format}-${label}`, path, train: SKIP.unreadable, predict: SKIP.unreadable, explicit: SKIP.unreadable });
    }
  }
  // Only the 2-byte end marker missing: every pixel is there, so it decodes to the same picture.
  const noEoi = join(hat, 'truncated-jpeg-no-end-marker.jpg');
  await writeFile(noEoi, formats.jpeg!.subarray(0, formats.jpeg!.length - 2));
  add({ id: 'truncated-jpeg-no-end-marker', path: noEoi, train: 'used', predict: 'used', explicit: 'used', reference: uprightPng });

  const random = join(hat, 'random-bytes.jpg');
  await writeFile(random, noise(4096, 'random-bytes'));
  add({ id: 'random-bytes', path: random, train: SKIP.unknown, predict: SKIP.unknown, explicit: SKIP.unknown });
  const text = join(hat, 'text.png');
  await writeFile(text, 'this is a text file, not a photo\n');
  add({ id: 'text-named-png', path: text, train: SKIP.unknown, predict: SKIP.unknown, explicit: SKIP.unknown });

  // Misnamed but valid.
  const pngAsJpg = join(hat, 'png-named.jpg');
  await writeFile(pngAsJpg, await sharp(photoB!).png().toBuffer());
  add({ id: 'png-named-jpg', path: pngAsJpg, train: 'used', predict: 'used', explicit: 'used', reference: photoB! });
  const jpgAsPng = join(hat, 'jpeg-named.png');
  await copyFile(photoC!, jpgAsPng);
  await chmod(jpgAsPng, 0o644);
  add({ id: 'jpeg-named-png', path: jpgAsPng, train: 'used', predict: 'used', explicit: 'used', reference: photoC! });

  // A tiny PNG whose hand-made IHDR (with a correct CRC) declares 50000x50000 pixels.
  const bomb = join(hat, 'pixel-bomb.png');
  await writeFile(bomb, pixelBombPng(50000, 50000));
  add({ id: 'pixel-bomb-50000x50000', path: bomb, train: SKIP.bomb, predict: SKIP.bomb, explicit: SKIP.bomb });

  // Unusual but valid encodings of a real photo.
  const encodings: [string, string, Sharp][] = [
    ['cmyk-jpeg', 'cmyk.jpg', sharp(photoD!).toColourspace('cmyk').jpeg({ quality: 95 })],
    ['16-bit-png', 'rgb16.png', sharp(photoD!).toColourspace('rgb16').png()],
    ['grey-alpha-png', 'grey-alpha.png', sharp(photoD!).greyscale().ensureAlpha(0.6).png()],
  ];
  for (const [id, name, pipeline] of encodings) {
    const path = join(hat, name);
    await writeFile(path, await pipeline.toBuffer());
    add({ id, path, train: 'used', predict: 'used', explicit: 'used' });
  }
  const frames = await Promise.all([photoA!, photoB!].map((p) => sharp(p).resize(120, 160, { fit: 'fill' }).png().toBuffer()));
  const gif = join(hat, 'animated.gif');
  await writeFile(gif, await sharp(frames, { join: { animated: true } }).gif({ delay: [100, 100], loop: 0 }).toBuffer());
  add({ id: 'animated-gif', path: gif, train: 'used', predict: 'used', explicit: 'used' });
  const tiny = join(hat, 'one-pixel.png');
  await writeFile(tiny, await sharp({ create: { width: 1, height: 1, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer());
  add({ id: '1x1', path: tiny, train: 'used', predict: 'used', explicit: 'used' });
  const panorama = join(hat, 'panorama-10000x50.jpg');
  await writeFile(panorama, await sharp(upright).resize(10000, 50, { fit: 'fill' }).jpeg({ quality: 80 }).toBuffer());
  add({ id: 'panorama-10000x50', path: panorama, train: 'used', predict: 'used', explicit: 'used' });
  for (let o = 1; o <= 8; o++) {
    const path = join(hat, `exif-orientation-${o}.jpg`);
    await writeFile(path, await sharp(await storedFor(upright, o)).jpeg({ quality: 100 }).withMetadata({ orientation: o }).toBuffer());
    add({ id: `exif-orientation-${o}`, path, train: 'used', predict: 'used', explicit: 'used', reference: uprightPng });
  }

  // SVG that tries to reach a server and a file outside: never rendered.
  const secret = join(outside, 'secret.png');
  await copyFile(uprightPng, secret);
  const svgFile = join(hat, 'external.svg');
  await writeFile(svgFile, svg(svgUrl, secret));
  add({ id: 'svg-external-refs', path: svgFile, train: SKIP.extension, predict: 'ignored', explicit: SKIP.svg });
  const svgAsPng = join(hat, 'svg-named.png');
  await writeFile(svgAsPng, svg(svgUrl, secret));
  add({ id: 'svg-named-png', path: svgAsPng, train: SKIP.svg, predict: SKIP.svg, explicit: SKIP.svg });

  // Links.
  await symlink('loop-b.jpg', join(hat, 'loop-a.jpg'));
  await symlink('loop-a.jpg', join(hat, 'loop-b.jpg'));
  for (const name of ['loop-a.jpg', 'loop-b.jpg']) {
    add({ id: `symlink-loop-${name}`, path: join(hat, name), train: SKIP.loop, predict: SKIP.loop, explicit: /cannot read \(ELOOP/ });
  }
  await symlink('..', join(hat, 'loop-dir'));
  add({ id: 'symlink-folder-loop', path: join(hat, 'loop-dir'), train: SKIP.dirLink, predict: SKIP.dirLink, explicit: 'omit' });
  await symlink(join(hat, 'does-not-exist.jpg'), join(hat, 'broken-link.jpg'));
  add({ id: 'symlink-broken', path: join(hat, 'broken-link.jpg'), train: SKIP.broken, predict: SKIP.broken, explicit: /cannot read \(ENOENT/ });
  const elsewhere = join(outside, 'elsewhere.jpg');
  await copyFile(photoB!, elsewhere);
  await chmod(elsewhere, 0o644);
  await symlink(elsewhere, join(hat, 'outside-link.jpg'));
  // train keeps to the data set folder; predict follows links to files, as it was asked to read them.
  add({ id: 'symlink-outside', path: join(hat, 'outside-link.jpg'), train: SKIP.outside, predict: 'used', explicit: 'used' });

  // Not a regular file: reading a FIFO would block forever.
  const fifo = join(hat, 'fifo.jpg');
  const made = spawnSync('mkfifo', [fifo], { encoding: 'utf8' });
  if (made.status === 0) {
    add({ id: 'fifo', path: fifo, train: /^not a regular file$/, predict: /^not a regular file$/, explicit: SKIP.notRegular });
    await symlink('fifo.jpg', join(hat, 'fifo-link.jpg'));
    add({ id: 'symlink-to-fifo', path: join(hat, 'fifo-link.jpg'), train: /symlink to something that is not a regular file/, predict: /symlink to something that is not a regular file/, explicit: SKIP.notRegular });
  } else {
    notes.push(`fifo: mkfifo failed (${(made.stderr || String(made.error)).trim()})`);
  }

  // No read permission. Root reads it anyway (file modes do not bind root), so then it is used.
  const locked = join(hat, 'no-read-permission.jpg');
  await copyFile(photoD!, locked);
  await chmod(locked, 0o000);
  const asRoot = process.getuid?.() === 0;
  if (asRoot) notes.push('no-read-permission: running as root, which can read a mode-000 file, so it is expected to be used');
  add({
    id: 'no-read-permission',
    path: locked,
    train: asRoot ? 'used' : /cannot read \(EACCES\); check its permissions/,
    predict: asRoot ? 'used' : SKIP.denied,
    explicit: asRoot ? 'used' : SKIP.denied,
  });

  // Odd names on real photos: all fine.
  const names: [string, string][] = [
    ['name-with-spaces', 'a photo with  spaces.jpg'],
    ['name-unicode', 'ünïcødé 猫 👟 ﬁle.jpg'],
    ['name-newline', 'new\nline.jpg'],
    ['name-leading-dash', '-leading-dash.jpg'],
    ['name-double-dash', '--help.jpg'],
    ['name-escape-sequence', 'esc\u001b[31mred\u001b[0m.jpg'],
  ];
  for (const [i, [id, name]] of names.entries()) {
    const path = join(shoes, name);
    await copyFile(shoePhotos[i]!, path);
    await chmod(path, 0o644);
    add({ id, path, train: 'used', predict: 'used', explicit: 'used', reference: shoePhotos[i]! });
  }

  // Where class folders go: a regular file, an image, and many empty folders.
  const fileAsClass = join(root, 'socks');
  await writeFile(fileAsClass, 'a file where a class folder was expected\n');
  add({ id: 'class-folder-is-a-file', path: fileAsClass, train: SKIP.loose, predict: 'ignored', explicit: SKIP.unknown });
  const loose = join(root, 'loose.jpg');
  await copyFile(photoB!, loose);
  await chmod(loose, 0o644);
  add({ id: 'image-outside-class-folders', path: loose, train: SKIP.loose, predict: 'used', explicit: 'used' });
  const emptyDirs = options.emptyDirs ?? 10_000;
  for (let i = 0; i < emptyDirs; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, emptyDirs - i) }, (_, j) => mkdir(join(root, `empty-${String(i + j).padStart(5, '0')}`))),
    );
  }
  if (emptyDirs > 0) add({ id: `${emptyDirs}-empty-folders`, path: join(root, 'empty-00000'), train: 'ignored', predict: 'ignored', explicit: 'omit' });

  return { root, outside, classes: HOSTILE_CLASSES, good, cases, notes };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const dir = args[0];
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (!dir || dir.startsWith('--')) {
    process.stderr.write('usage: node --import tsx test/helpers/hostile-corpus.ts <new-dir> [--svg-url URL] [--empty-dirs N]\n');
    process.exit(2);
  }
  const emptyDirs = flag('--empty-dirs');
  const corpus = await writeHostileCorpus(dir, { svgUrl: flag('--svg-url'), emptyDirs: emptyDirs === undefined ? undefined : Number(emptyDirs) });
  const show = (o: Outcome): string => (typeof o === 'string' ? o : `skip /${o.source}/`);
  for (const c of corpus.cases) process.stdout.write(`${c.id}\t${JSON.stringify(c.path)}\ttrain: ${show(c.train)}\tpredict: ${show(c.predict)}\n`);
  for (const n of corpus.notes) process.stdout.write(`note: ${n}\n`);
  process.stdout.write(`${corpus.good.length} good photos, ${corpus.cases.length} cases in ${corpus.root}\n`);
}
