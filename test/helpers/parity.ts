/**
 * Photos of many shapes and encodings made from the bundled ones, and a page that runs the web
 * app's own preprocessing and onnxruntime-web on them: shared by test/e2e/parity.test.ts and
 * bench/parity.ts, which compare the page with Node on the same files.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import type { Page, Route } from 'playwright-core';
import sharp from 'sharp';
import type { LabelScore } from '../../src/server/api-types.js';
import { packagePath } from '../../src/util/paths.js';
import { DRESS_1, HAT_1, SHOE_1, SHOE_2 } from './images.js';

export interface ParityPhoto {
  readonly name: string;
  readonly path: string;
  readonly type: string;
  /** What is special about it. */
  readonly note: string;
  /**
   * Whether Chromium decodes it to sharp's very bytes (measured, bench/parity.ts): not AVIF
   * (other YUV-to-RGB rounding, 1 level on about 12% of the bytes) or CMYK (other conversion).
   */
  readonly exact: boolean;
}

/** An alpha channel that ramps 0..255 left to right, and a fully transparent band on top. */
async function rampAlpha(width: number, height: number): Promise<Buffer> {
  const alpha = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) alpha[y * width + x] = y < height / 8 ? 0 : Math.round((255 * x) / (width - 1));
  return alpha;
}

/**
 * Writes the photos into `dir`: the bundled 120x160 JPEGs as they are, and from them tall, wide,
 * tiny and large ones, 4:4:4 and progressive JPEG, PNG, PNG with graded transparency, grey and
 * 16-bit PNG, GIF, WebP, a
 * JPEG stored sideways with EXIF orientation 6, a JPEG with a Display P3 profile; and two whose
 * decoding differs between sharp and Chromium (`exact: false`): an AVIF and a CMYK JPEG.
 */
export async function makeParityPhotos(dir: string): Promise<ParityPhoto[]> {
  const out: ParityPhoto[] = [];
  const add = async (name: string, type: string, note: string, data: Buffer | Promise<Buffer>, exact = true): Promise<void> => {
    const path = join(dir, name);
    await writeFile(path, await data);
    out.push({ name, path, type, note, exact });
  };
  for (const [name, src] of [['shoe-1.jpg', SHOE_1], ['shoe-2.jpg', SHOE_2], ['hat-1.jpg', HAT_1], ['dress-1.jpg', DRESS_1]] as const) {
    await add(name, 'image/jpeg', 'bundled photo, 120x160 JPEG 4:2:0', readFile(src));
  }
  const shoe = sharp(SHOE_1);
  await add('tall.jpg', 'image/jpeg', '150x500, stretched', shoe.clone().resize(150, 500, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer());
  await add('wide.jpg', 'image/jpeg', '640x180, stretched', sharp(HAT_1).resize(640, 180, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer());
  await add('tiny.jpg', 'image/jpeg', '24x32', shoe.clone().resize(24, 32).jpeg({ quality: 90 }).toBuffer());
  await add('large.jpg', 'image/jpeg', '3000x4000 (12 MP)', sharp(DRESS_1).resize(3000, 4000).jpeg({ quality: 92 }).toBuffer());
  await add('444.jpg', 'image/jpeg', 'JPEG 4:4:4', shoe.clone().resize(480, 640).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer());
  await add('progressive.jpg', 'image/jpeg', 'progressive JPEG', shoe.clone().resize(480, 640).jpeg({ quality: 85, progressive: true }).toBuffer());
  await add('exif6.jpg', 'image/jpeg', 'stored sideways, EXIF orientation 6', sharp(SHOE_2).rotate(-90).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer());
  await add('photo.png', 'image/png', 'PNG', sharp(HAT_1).resize(300, 400).png().toBuffer());
  const [w, h] = [300, 400];
  const rgb = await sharp(SHOE_2).resize(w, h).removeAlpha().raw().toBuffer();
  await add('alpha.png', 'image/png', 'PNG, alpha 0..255 ramp', sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).joinChannel(await rampAlpha(w, h), { raw: { width: w, height: h, channels: 1 } }).png().toBuffer());
  await add('grey.png', 'image/png', 'greyscale PNG with transparency', sharp(HAT_1).resize(240, 320).greyscale().ensureAlpha(0.6).png().toBuffer());
  await add('rgb16.png', 'image/png', '16-bit PNG', sharp(SHOE_2).resize(240, 320).toColourspace('rgb16').png().toBuffer());
  await add('photo.gif', 'image/gif', 'GIF (palette)', sharp(DRESS_1).gif().toBuffer());
  await add('photo.webp', 'image/webp', 'lossy WebP', sharp(DRESS_1).resize(360, 480).webp({ quality: 90 }).toBuffer());
  await add('p3.jpg', 'image/jpeg', 'Display P3 ICC profile', sharp(HAT_1).resize(300, 400).jpeg({ quality: 95 }).withIccProfile('p3').toBuffer());
  await add('photo.avif', 'image/avif', 'AVIF', sharp(SHOE_2).resize(300, 400).avif({ quality: 80 }).toBuffer(), false);
  await add('cmyk.jpg', 'image/jpeg', 'CMYK JPEG, no profile', sharp(DRESS_1).resize(300, 400).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(), false);
  return out;
}

/** The page's code under test, bundled from web/src, exposed on `window.parity`. */
const HARNESS = `
import { classifyInBrowser } from './browser-model.ts';
import { getModel } from './api.ts';
import { inputFromRgba, toPixels } from './preprocess.ts';
const blob = async (url) => (await fetch(url)).blob();
window.parity = {
  async classify(modelId, url) {
    const model = await getModel(modelId);
    return classifyInBrowser(model, await blob(url), model.labels.length);
  },
  async pixels(url, pre) {
    return Array.from(await toPixels(await blob(url), pre));
  },
  async rgba(url) {
    const bitmap = await createImageBitmap(await blob(url), { imageOrientation: 'from-image', colorSpaceConversion: 'none' });
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const g = canvas.getContext('2d');
    g.fillStyle = '#fff';
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.drawImage(bitmap, 0, 0);
    const data = g.getImageData(0, 0, bitmap.width, bitmap.height).data;
    bitmap.close();
    // Megapixels do not fit through page.evaluate's JSON: the bytes go back as a request body.
    await fetch('/parity/upload', { method: 'POST', body: data });
    return { width: canvas.width, height: canvas.height };
  },
  inputFromRgba(data, width, height, pre) {
    return Array.from(inputFromRgba(Uint8ClampedArray.from(data), width, height, pre));
  },
};
`;

export interface Harness {
  /** The in-browser classification (web/src/browser-model.ts), every label, highest first. */
  classify(modelId: string, photo: ParityPhoto): Promise<LabelScore[]>;
  /** toPixels (web/src/preprocess.ts) of the photo. */
  pixels(photo: ParityPhoto, pre: unknown): Promise<Uint8Array>;
  /** The browser's own decode at full size, composited onto white as toPixels does: canvas RGBA. */
  rgba(photo: ParityPhoto): Promise<{ width: number; height: number; data: Uint8Array }>;
  /** inputFromRgba of given pixels. */
  inputFromRgba(data: Uint8Array, width: number, height: number, pre: unknown): Promise<Uint8Array>;
  /** Any other function of `window.parity` (one that `extra` added), by name; arguments and result go through JSON. */
  call<T>(fn: string, ...args: unknown[]): Promise<T>;
}

/**
 * Opens the harness page in `page` on the server's origin (so the page's api.ts reaches it):
 * the bundle, its onnxruntime-web wasm and the photos are served by playwright routes. `extra`
 * is more module code for the bundle (it may add functions to `window.parity`).
 */
export async function openHarness(page: Page, serverUrl: string, photos: readonly ParityPhoto[], extra = ''): Promise<Harness> {
  const bundle = await build({
    stdin: { contents: HARNESS + extra, resolveDir: packagePath('web', 'src'), loader: 'js', sourcefile: 'harness.js' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]!.contents;
  const ortDist = packagePath('node_modules', 'onnxruntime-web', 'dist');
  const byName = new Map(photos.map((p) => [p.name, p]));
  const upload: { data?: Buffer } = {};
  await page.route(`${serverUrl}/parity/**`, async (route: Route) => {
    const name = new URL(route.request().url()).pathname.slice('/parity/'.length);
    if (name === 'index.html') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><meta charset="utf-8"><script type="module" src="/parity/harness.js"></script>' });
    if (name === 'upload') {
      upload.data = route.request().postDataBuffer() ?? undefined;
      return route.fulfill({ status: 204 });
    }
    if (name === 'harness.js') return route.fulfill({ contentType: 'text/javascript', body: Buffer.from(script) });
    if (name.endsWith('.wasm')) return route.fulfill({ contentType: 'application/wasm', body: await readFile(join(ortDist, name)) });
    const photo = byName.get(name.replace(/^photos\//, ''));
    if (photo) return route.fulfill({ contentType: photo.type, body: await readFile(photo.path) });
    return route.fulfill({ status: 404, body: 'not found' });
  });
  await page.goto(`${serverUrl}/parity/index.html`);
  await page.waitForFunction(() => 'parity' in window);
  const url = (p: ParityPhoto): string => `/parity/photos/${p.name}`;
  type Api = {
    classify(id: string, u: string): Promise<LabelScore[]>;
    pixels(u: string, pre: unknown): Promise<number[]>;
    rgba(u: string): Promise<{ width: number; height: number }>;
    inputFromRgba(d: number[], w: number, h: number, pre: unknown): number[];
  };
  // The page's globalThis is its window; these arrow functions are serialized and run there.
  return {
    classify: (id, p) => page.evaluate(([id, u]) => (globalThis as unknown as { parity: Api }).parity.classify(id, u), [id, url(p)] as const),
    pixels: async (p, pre) => Uint8Array.from(await page.evaluate(([u, pre]) => (globalThis as unknown as { parity: Api }).parity.pixels(u, pre), [url(p), pre] as const)),
    rgba: async (p) => {
      const r = await page.evaluate((u) => (globalThis as unknown as { parity: Api }).parity.rgba(u), url(p));
      const data = upload.data;
      upload.data = undefined;
      if (data?.length !== r.width * r.height * 4) throw new Error(`${p.name}: the page sent ${data?.length} bytes for ${r.width}x${r.height} RGBA`);
      return { width: r.width, height: r.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
    },
    call: <T>(fn: string, ...args: unknown[]) =>
      page.evaluate(([fn, args]) => (globalThis as unknown as { parity: Record<string, (...a: unknown[]) => unknown> }).parity[fn as string]!(...(args as unknown[])), [fn, args] as const) as Promise<T>,
    inputFromRgba: async (data, width, height, pre) =>
      Uint8Array.from(await page.evaluate(([d, w, h, pre]) => (globalThis as unknown as { parity: Api }).parity.inputFromRgba(d, w, h, pre), [Array.from(data), width, height, pre] as const)),
  };
}
