/**
 * Node, the browser and Python on the same photo files (bench/README.md, section "Node, browser
 * and Python parity"; docs/PREPROCESSING.md). Prints JSON. Parts (`--parts`, default all):
 *
 * - `pixels`: a model trained on clothing7; photos of many shapes and encodings
 *   (test/helpers/parity.ts). Per photo: how far the browser's decode is from sharp's (full size,
 *   before any resize), how far the old resizes were from the shared one, and the probabilities
 *   of Node (`Classifier.predict`), of the page (web/src/browser-model.ts in Chromium) and of the
 *   old paths (sharp's libvips resize with JPEG shrink-on-load; the page's old canvas drawImage),
 *   the old ones run through the same onnxruntime-node session.
 * - `python`: docs/PREPROCESSING.md's numpy code (read from the file) and Pillow's own resize on
 *   sharp's decoded pixels, and Pillow's decode end to end, against Node's bytes.
 * - `speed`: decode + resize ms/image, old (sharp resize) against new (full decode + shared
 *   resize), interleaved, on clothing7 and on 12-megapixel JPEGs; and cold feature extraction
 *   images/s through both bundled backbones.
 * - `accuracy`: `train()` at default settings, `--test-dir`, on clothing7 and the evaluation
 *   sets, on the plain-view features of each resize of `--variants` (written to the feature cache
 *   first, so train() reads them; default: the old sharp path against the shipped one), for each
 *   seed of `--seeds` (validation split and head initialisation); per set the top-1 of every seed
 *   and the median of the paired differences from the first variant.
 *
 * `node --import tsx bench/parity.ts [--parts pixels,python,speed,accuracy] [--rounds 5] [--sets a,b] [--photos a.jpg,b.png] [--seeds 0,1,2] [--variants sharp-linear,lanczos,bilinear,bicubic,sharp-cubic,sharp-lanczos3]`
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Sharp } from 'sharp';
import sharp from 'sharp';
import { Backbone } from '../src/backbone/backbone.js';
import { loadClassifier } from '../src/export/classifier.js';
import { PLAIN_VIEW, extractViewsOf, type View } from '../src/features/extract.js';
import { openFeatureCache } from '../src/features/cache.js';
import { checkImage, decodePixels, decodeRgb, loadRgb, type ImageInput } from '../src/image/preprocess.js';
import { flattenOnWhite, modelInput, type ResizeFilter } from '../src/image/resize.js';
import type { Preprocessing, RgbImage } from '../src/image/types.js';
import { train } from '../src/pipeline/train.js';
import { packagePath } from '../src/util/paths.js';
import { launchChromium } from '../test/helpers/browser.js';
import { makeParityPhotos, openHarness, type ParityPhoto } from '../test/helpers/parity.js';
import { startHeadswap } from '../test/helpers/serve.js';
import { materializeClothing10 } from './accuracy-data.js';
import { evalSets } from './eval-sets.js';

const { values } = parseArgs({ options: { parts: { type: 'string', default: 'pixels,python,speed,accuracy' }, rounds: { type: 'string', default: '5' }, python: { type: 'string', default: '/usr/bin/python3' }, sets: { type: 'string' }, photos: { type: 'string' }, seeds: { type: 'string', default: '0' }, variants: { type: 'string', default: 'sharp-linear,lanczos' } } });
const parts = new Set(values.parts!.split(','));
const only = values.sets?.split(',');
const onlyPhotos = values.photos?.split(',');
const rounds = Number(values.rounds);
const seeds = values.seeds!.split(',').map(Number);

/** Pillow's BILINEAR and BICUBIC (a = -0.5), as its Resample.c defines them (signed x). */
const BILINEAR: ResizeFilter = { support: 1, weight: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) };
const BICUBIC: ResizeFilter = {
  support: 2,
  weight: (x) => {
    const t = Math.abs(x);
    return t < 1 ? (1.5 * t - 2.5) * t * t + 1 : t < 2 ? (((t - 5) * t + 8) * t - 4) * -0.5 : 0;
  },
};
/** The resizes `--parts accuracy` can compare (`--variants`); 'lanczos' is the shipped one. */
const RESIZES: Record<string, 'shipped' | { kernel: 'linear' | 'cubic' | 'lanczos3' } | { filter: ResizeFilter }> = {
  lanczos: 'shipped',
  bilinear: { filter: BILINEAR },
  bicubic: { filter: BICUBIC },
  'sharp-linear': { kernel: 'linear' },
  'sharp-cubic': { kernel: 'cubic' },
  'sharp-lanczos3': { kernel: 'lanczos3' },
};
const PY = values.python!;

/** The Node loader before this change: sharp resizes (libvips 'linear', JPEG shrink-on-load) inside the decode pipeline. */
async function legacyLoad(input: ImageInput, pre: Preprocessing, flip = false, kernel: 'linear' | 'cubic' | 'lanczos3' = 'linear'): Promise<RgbImage> {
  const image = await checkImage(input);
  const [height, width] = pre.size;
  return decodeRgb(image, pre.size, (img: Sharp) => {
    if (pre.resize === 'squash') img = img.resize(width, height, { fit: 'fill', kernel });
    else if (pre.resize === 'pad') img = img.resize(width, height, { fit: 'contain', background: { r: 0, g: 0, b: 0 }, kernel });
    else {
      const k = Math.max(width / (image.width * pre.cropRatio), height / (image.height * pre.cropRatio));
      const rw = Math.max(width, Math.round(image.width * k));
      const rh = Math.max(height, Math.round(image.height * k));
      img = img.resize(rw, rh, { fit: 'fill', kernel }).extract({ left: Math.floor((rw - width) / 2), top: Math.floor((rh - height) / 2), width, height });
    }
    return flip ? img.flop() : img;
  });
}

/** The page's preprocessing before this change (canvas drawImage scaling, 'high' smoothing), crop policy. */
const LEGACY_CANVAS = `
window.parity.legacyPixels = async (url, pre) => {
  const bitmap = await createImageBitmap(await (await fetch(url)).blob());
  const [height, width] = pre.size;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  g.imageSmoothingEnabled = true;
  g.imageSmoothingQuality = 'high';
  const w0 = bitmap.width, h0 = bitmap.height;
  const k = Math.max(width / (w0 * pre.cropRatio), height / (h0 * pre.cropRatio));
  const rw = Math.max(width, Math.round(w0 * k));
  const rh = Math.max(height, Math.round(h0 * k));
  g.fillStyle = '#fff';
  g.fillRect(0, 0, width, height);
  g.drawImage(bitmap, -Math.floor((rw - width) / 2), -Math.floor((rh - height) / 2), rw, rh);
  const rgba = g.getImageData(0, 0, width, height).data;
  const rgb = [];
  for (let i = 0; i < rgba.length; i += 4) rgb.push(rgba[i], rgba[i + 1], rgba[i + 2]);
  bitmap.close();
  return rgb;
};
`;

function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number; differing: number } {
  if (a.length !== b.length) return { max: NaN, mean: NaN, differing: NaN };
  let max = 0;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d > max) max = d;
    sum += d;
    if (d) n++;
  }
  return { max, mean: +(sum / a.length).toFixed(4), differing: +(n / a.length).toFixed(5) };
}

function maxProbDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return +m.toFixed(5);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** RGB bytes (browser RGBA, alpha dropped: it is opaque after compositing on white). */
function rgbOf(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) out.set(rgba.subarray(i, i + 3), j);
  return out;
}

/** The ```python block of docs/PREPROCESSING.md, without its command-line part. */
async function docsPython(): Promise<string> {
  const md = await readFile(packagePath('docs', 'PREPROCESSING.md'), 'utf8');
  const code = /```python\n([\s\S]*?)```/.exec(md)?.[1];
  if (!code) throw new Error('docs/PREPROCESSING.md has no python block');
  return code.split("\nif __name__ == '__main__':")[0]!;
}

const tmp = await mkdtemp(join(tmpdir(), 'headswap-parity-'));
const result: Record<string, unknown> = {};
try {
  const photos = await makeParityPhotos(tmp);
  const modelDir = join(tmp, 'clothing7.model');
  const cacheDir = join(tmp, 'cache');
  const needModel = parts.has('pixels') || parts.has('python');
  if (needModel) await train({ data: packagePath('data', 'clothing7', 'train'), testDir: packagePath('data', 'clothing7', 'test'), out: modelDir, cacheDir, seed: 0, record: false });

  if (parts.has('pixels')) {
    const classifier = await loadClassifier(modelDir);
    const pre = classifier.metadata.preprocessing;
    const server = await startHeadswap({ dataDir: join(tmp, 'data'), models: [modelDir], cacheDir });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const harness = await openHarness(page, server.url, photos, LEGACY_CANVAS);
      const rows = [];
      for (const photo of photos.filter((p) => !onlyPhotos || onlyPhotos.includes(p.name))) {
        process.stderr.write(`pixels: ${photo.name}\n`);
        const nodeDecoded = flattenOnWhite(await decodePixels(await checkImage(photo.path)));
        const web = await harness.rgba(photo);
        const webRgb = rgbOf(web.data);
        const nodeNew = await loadRgb(photo.path, pre);
        const nodeOld = await legacyLoad(photo.path, pre);
        const webNew = await harness.pixels(photo, pre);
        const webOld = Uint8Array.from(await harness.call<number[]>('legacyPixels', `/parity/photos/${photo.name}`, pre));
        // The shared resize on the browser's own decode, in Node: isolates the decoders.
        const sharedOnWebDecode = modelInput({ width: web.width, height: web.height, channels: 4, data: web.data }, pre);
        const [pNode] = await classifier.predict(photo.path);
        const pWeb = await harness.classify('clothing7', photo);
        const webProbs = new Float32Array(classifier.labels.length);
        for (const s of pWeb) webProbs[s.index] = s.probability;
        const runOn = async (data: Uint8Array): Promise<Float32Array> => classifier.run([{ width: pre.size[1], height: pre.size[0], data }]);
        const pOldNode = await runOn(nodeOld.data);
        const pOldWeb = await runOn(webOld);
        const pWebPixelsInNode = await runOn(webNew);
        rows.push({
          photo: photo.name,
          note: photo.note,
          exactDecode: photo.exact,
          size: `${web.width}x${web.height}`,
          decode: diff(nodeDecoded, webRgb),
          input: {
            nodeVsBrowser: diff(nodeNew.data, webNew),
            sharedResizeOnEachDecode: diff(nodeNew.data, sharedOnWebDecode),
            oldNodeVsNew: diff(nodeOld.data, nodeNew.data),
            oldBrowserVsNew: diff(webOld, webNew),
            oldNodeVsOldBrowser: diff(nodeOld.data, webOld),
          },
          top1: { node: pNode!.top[0]!.label, browser: pWeb[0]!.label },
          maxProbabilityDiff: {
            nodeVsBrowser: maxProbDiff(pNode!.probabilities, webProbs),
            ortWebVsNodeSamePixels: maxProbDiff(pWebPixelsInNode, webProbs),
            oldNodeVsOldBrowser: maxProbDiff(pOldNode, pOldWeb),
            oldNodeVsNew: maxProbDiff(pOldNode, pNode!.probabilities),
          },
        });
      }
      result.pixels = { model: 'clothing7 (train/, seed 0, default recipe)', preprocessing: pre, photos: rows };
    } finally {
      await browser.close();
      await server.app.close();
      await classifier.release();
    }
  }

  if (parts.has('python')) {
    const pre = (await loadClassifier(modelDir).then(async (c) => (await c.release(), c.metadata))).preprocessing;
    const code = await docsPython();
    const script = `${code}
import sys, json
from PIL import Image
out = {}
for spec in json.load(open(sys.argv[1])):
    raw = np.fromfile(spec['raw'], dtype=np.uint8).reshape(spec['h'], spec['w'], spec['c'])
    ref = np.fromfile(spec['node'], dtype=np.uint8)
    mine = model_input(raw, spec['size'], spec['resize'], spec['cropRatio'])
    pl = Image.fromarray(raw[..., :3]) if spec['c'] == 3 else None
    row = {'numpyVsNode': int((mine.reshape(-1) != ref).sum())}
    try:
        decoded = model_input(decode(spec['path']), spec['size'], spec['resize'], spec['cropRatio'])
        row['pilDecodeVsNode'] = int((decoded.reshape(-1) != ref).sum())
        row['pilDecodeMaxDiff'] = int(np.abs(decoded.reshape(-1).astype(int) - ref.astype(int)).max())
    except Exception as e:
        row['pilDecode'] = f'{type(e).__name__}: {e}'.split(': /')[0]
    if pl is not None:
        H, W = spec['size']
        k = max(W / (spec['w'] * spec['cropRatio']), H / (spec['h'] * spec['cropRatio']))
        rw = max(W, math.floor(spec['w'] * k + 0.5)); rh = max(H, math.floor(spec['h'] * k + 0.5))
        l, t = (rw - W) // 2, (rh - H) // 2
        pil = np.asarray(pl.resize((rw, rh), Image.LANCZOS).crop((l, t, l + W, t + H)))
        row['pillowResizeVsNode'] = int((pil.reshape(-1) != ref).sum())
    out[spec['name']] = row
print(json.dumps(out))
`;
    const specs = [];
    for (const photo of photos.filter((p) => !onlyPhotos || onlyPhotos.includes(p.name))) {
      const px = await decodePixels(await checkImage(photo.path));
      const raw = join(tmp, `${photo.name}.raw`);
      const node = join(tmp, `${photo.name}.node`);
      await writeFile(raw, px.data);
      await writeFile(node, (await loadRgb(photo.path, pre)).data);
      specs.push({ name: photo.name, path: photo.path, raw, node, w: px.width, h: px.height, c: px.channels, size: pre.size, resize: pre.resize, cropRatio: pre.cropRatio });
    }
    await writeFile(join(tmp, 'specs.json'), JSON.stringify(specs));
    await writeFile(join(tmp, 'check.py'), script);
    const version = execFileSync(PY, ['-c', 'import PIL, numpy; print(PIL.__version__, numpy.__version__)'], { encoding: 'utf8' }).trim();
    result.python = { pillowNumpy: version, bytes: 224 * 224 * 3, differingBytes: JSON.parse(execFileSync(PY, [join(tmp, 'check.py'), join(tmp, 'specs.json')], { encoding: 'utf8' })) as unknown };
  }

  if (parts.has('speed')) {
    const pre: Preprocessing = { size: [224, 224], resize: 'crop', cropRatio: 0.875, scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC' };
    const clothing = [];
    for (const split of ['train', 'test']) {
      for (const c of await readdir(packagePath('data', 'clothing7', split))) {
        for (const f of await readdir(packagePath('data', 'clothing7', split, c))) clothing.push(packagePath('data', 'clothing7', split, c, f));
      }
    }
    const big = [];
    for (let i = 0; i < 8; i++) {
      const p = join(tmp, `big-${i}.jpg`);
      await writeFile(p, await sharp(clothing[i * 17]!).resize(3024, 4032).jpeg({ quality: 90 }).toBuffer());
      big.push(p);
    }
    const time = async (files: readonly string[], load: (f: string) => Promise<RgbImage>): Promise<number> => {
      const t = performance.now();
      for (const f of files) await load(f);
      return (performance.now() - t) / files.length;
    };
    const loaders = { old: (f: string) => legacyLoad(f, pre), new: (f: string) => loadRgb(f, pre) };
    const perImage: Record<string, Record<string, number[]>> = { clothing7: { old: [], new: [] }, '12MP JPEG': { old: [], new: [] } };
    for (let r = 0; r < rounds; r++) {
      for (const [name, load] of r % 2 ? Object.entries(loaders).reverse() : Object.entries(loaders)) {
        perImage.clothing7![name]!.push(await time(clothing, load));
        perImage['12MP JPEG']![name]!.push(await time(big, load));
      }
    }
    const backbones = await Promise.all(['mobilenet_v2', 'mobilenet_edgetpu'].map((id) => Backbone.load(id)));
    const legacyView: View = { id: '', render: (input, p) => legacyLoad(input, p) };
    const extraction: Record<string, Record<string, number[]>> = { clothing7: { old: [], new: [] }, '12MP JPEG': { old: [], new: [] } };
    const bigBatch = [...big, ...big];
    for (let r = 0; r < Math.max(3, Math.ceil(rounds / 2)); r++) {
      for (const [name, view] of (r % 2 ? [['new', PLAIN_VIEW], ['old', legacyView]] : [['old', legacyView], ['new', PLAIN_VIEW]]) as [string, View][]) {
        for (const [set, files] of [['clothing7', clothing], ['12MP JPEG', bigBatch]] as const) {
          const t = performance.now();
          await extractViewsOf(backbones, files, [view]);
          extraction[set]![name]!.push(files.length / ((performance.now() - t) / 1000));
        }
      }
    }
    await Promise.all(backbones.map((b) => b.release()));
    const ms = (xs: number[]): { median: number; all: number[] } => ({ median: +median(xs).toFixed(2), all: xs.map((x) => +x.toFixed(2)) });
    result.speed = {
      rounds,
      decodeResizeMsPerImage: Object.fromEntries(Object.entries(perImage).map(([k, v]) => [k, { old: ms(v.old!), new: ms(v.new!) }])),
      extractionImagesPerSecond: {
        backbones: 'mobilenet_v2 + mobilenet_edgetpu, no cache',
        ...Object.fromEntries(Object.entries(extraction).map(([k, v]) => [k, { images: k === 'clothing7' ? clothing.length : bigBatch.length, old: ms(v.old!), new: ms(v.new!) }])),
      },
    };
  }

  if (parts.has('accuracy')) {
    const sets = [
      { name: 'clothing7', train: packagePath('data', 'clothing7', 'train'), test: packagePath('data', 'clothing7', 'test') },
      ...(await evalSets()).map((s) => ({ name: s.name, train: s.train, test: s.test })),
      { name: 'clothing10-draw0', ...(await materializeClothing10(0, tmp)) },
    ];
    const files = async (dir: string): Promise<string[]> => {
      const out: string[] = [];
      for (const c of await readdir(dir)) for (const f of await readdir(join(dir, c))) out.push(join(dir, c, f));
      return out;
    };
    const backbones = await Promise.all(['mobilenet_v2', 'mobilenet_edgetpu'].map((id) => Backbone.load(id)));
    const shared = (filter: ResizeFilter): View => ({ id: '', render: async (input, p) => ({ width: p.size[1], height: p.size[0], data: modelInput(await decodePixels(await checkImage(input)), p, false, filter) }) });
    const variants = values.variants!.split(',');
    for (const v of variants) if (!(v in RESIZES)) throw new Error(`--variants: no '${v}'; one of ${Object.keys(RESIZES).join(', ')}`);
    const rows = [];
    for (const set of sets.filter((s) => !only || only.includes(s.name))) {
      // Plain-view features of each variant written to its own cache first, so train() reads them;
      // 'lanczos' is what train() computes itself.
      for (const v of variants) {
        const resize = RESIZES[v]!;
        if (resize === 'shipped') continue;
        const fc = openFeatureCache(join(tmp, `acc-${set.name}-${v}`));
        const view: View = 'kernel' in resize ? { id: '', render: (input, p) => legacyLoad(input, p, false, resize.kernel) } : shared(resize.filter);
        await extractViewsOf(backbones, [...(await files(set.train)), ...(await files(set.test))], [view], { cache: fc });
        fc.close();
      }
      const top1: Record<string, number[]> = Object.fromEntries(variants.map((v) => [v, []]));
      const recipes: Record<string, string[]> = Object.fromEntries(variants.map((v) => [v, []]));
      for (const seed of seeds) {
        for (const v of variants) {
          const r = await train({ data: set.train, testDir: set.test, out: false, cacheDir: join(tmp, `acc-${set.name}-${v}`), seed, record: false });
          top1[v]!.push(+(r.evaluation.top1 * 100).toFixed(1));
          recipes[v]!.push(r.members?.map((m) => m.backbone.id).join('+') ?? r.backbone.id);
        }
      }
      const base = variants[0]!;
      rows.push({
        set: set.name,
        testPhotos: (await files(set.test)).length,
        top1,
        median: Object.fromEntries(variants.map((v) => [v, +median(top1[v]!).toFixed(2)])),
        medianDeltaFrom: base,
        medianDelta: Object.fromEntries(variants.slice(1).map((v) => [v, +median(top1[v]!.map((x, i) => x - top1[base]![i]!)).toFixed(2)])),
        recipes,
      });
    }
    await Promise.all(backbones.map((b) => b.release()));
    result.accuracy = { protocol: `train() defaults (--quality auto, both bundled networks), seeds ${seeds.join(',')}, --test-dir; plain-view features of each resize (augmented views use the shipped one); variants: ${variants.map((v) => `${v} = ${RESIZES[v] === 'shipped' ? 'the shipped resize' : 'kernel' in RESIZES[v]! ? `sharp resize kernel '${(RESIZES[v] as { kernel: string }).kernel}' (the old Node path)` : `Pillow's ${v.toUpperCase()} in the shared integer code`}`).join('; ')}`, sets: rows };
  }
  console.log(JSON.stringify(result, null, 1));
} finally {
  await rm(tmp, { recursive: true, force: true });
}
