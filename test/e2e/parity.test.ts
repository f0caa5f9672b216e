/**
 * The same photo file gives the same model input and the same probabilities in Node
 * (`loadClassifier().predict`) and in the page's in-browser path (web/src/preprocess.ts +
 * browser-model.ts on onnxruntime-web), in a real headless Chromium, for photos of many sizes,
 * shapes and encodings (test/helpers/parity.ts). docs/PREPROCESSING.md says why they can.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { loadClassifier, type Classifier } from '../../src/export/classifier.js';
import { modelInput } from '../../src/image/resize.js';
import { train } from '../../src/pipeline/train.js';
import { browserUnavailable, launchChromium } from '../helpers/browser.js';
import { copySubset } from '../helpers/dataset.js';
import { makeParityPhotos, openHarness, type Harness, type ParityPhoto } from '../helpers/parity.js';
import { startHeadswap, type RunningServer } from '../helpers/serve.js';

const CLASSES = ['dress', 'hat', 'pants', 'shoes', 'shorts', 'skirt', 't-shirt'];
/** The tolerance; the two paths are in fact bit-identical up to the runtime's float arithmetic. */
const TOLERANCE = 0.005;

const reason = browserUnavailable();
let dir: string;
let server: RunningServer;
let browser: Browser;
let classifier: Classifier;
let harness: Harness;
let photos: ParityPhoto[];

before(async () => {
  if (reason) return;
  dir = await mkdtemp(join(tmpdir(), 'headswap-parity-'));
  const cacheDir = join(dir, 'cache');
  await copySubset('train', CLASSES, 6, join(dir, 'photos'));
  await copySubset('test', CLASSES, 2, join(dir, 'held-out'));
  await train({ data: join(dir, 'photos'), testDir: join(dir, 'held-out'), out: join(dir, 'clothing7.model'), cacheDir, seed: 0, record: false });
  photos = await makeParityPhotos(dir);
  classifier = await loadClassifier(join(dir, 'clothing7.model'));
  server = await startHeadswap({ dataDir: join(dir, 'data'), models: [join(dir, 'clothing7.model')], cacheDir });
  browser = await launchChromium();
  harness = await openHarness(await browser.newPage(), server.url, photos);
});
after(async () => {
  await browser?.close();
  await server?.app.close();
  await classifier?.release();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Node and the browser on the same files', { skip: reason }, () => {
  it('make the same model input bytes from every photo (sizes, aspect ratios, PNG alpha, EXIF 6, WebP, ICC profile)', async () => {
    const pre = classifier.metadata.preprocessing;
    for (const photo of photos.filter((p) => p.exact)) {
      const node = (await classifier.loadImage(photo.path)).data;
      const web = await harness.pixels(photo, pre);
      assert.equal(web.length, node.length, photo.name);
      const differing = node.reduce((n, v, i) => n + (v !== web[i] ? 1 : 0), 0);
      assert.equal(differing, 0, `${photo.name} (${photo.note}): ${differing} of ${node.length} bytes differ`);
    }
  });

  it(`give every probability within ${TOLERANCE}`, async () => {
    const seen = new Set<string>();
    const exact = photos.filter((p) => p.exact);
    for (const photo of exact) {
      const [node] = await classifier.predict(photo.path);
      const web = await harness.classify('clothing7', photo);
      assert.equal(web.length, classifier.labels.length, photo.name);
      for (const s of web) {
        const p = node!.probabilities[s.index]!;
        assert.ok(Math.abs(s.probability - p) <= TOLERANCE, `${photo.name} (${photo.note}) ${s.label}: browser ${s.probability} vs Node ${p}`);
      }
      assert.equal(web[0]!.label, node!.top[0]!.label, photo.name);
      seen.add(Array.from(node!.probabilities, (p) => p.toFixed(3)).join());
    }
    // Different photos get different outputs: the comparison above is not of constants.
    assert.ok(seen.size >= exact.length - 2, `${seen.size} distinct outputs for ${exact.length} photos`);
  });

  it('resize the browser\'s own decode with the shared arithmetic where the decoders differ (AVIF, CMYK)', async () => {
    const pre = classifier.metadata.preprocessing;
    const others = photos.filter((p) => !p.exact);
    assert.ok(others.length >= 2);
    for (const photo of others) {
      const decoded = await harness.rgba(photo);
      assert.deepEqual(await harness.pixels(photo, pre), modelInput({ width: decoded.width, height: decoded.height, channels: 4, data: decoded.data }, pre), photo.name);
    }
  });

  it('inputFromRgba (webcam frames) makes the same input from decoded RGBA, transparency included', async () => {
    const pre = classifier.metadata.preprocessing;
    const tiny = photos.find((p) => p.name === 'tiny.jpg')!;
    const decoded = await harness.rgba(tiny);
    assert.deepEqual(await harness.inputFromRgba(decoded.data, decoded.width, decoded.height, pre), (await classifier.loadImage(tiny.path)).data);
    // A frame with every alpha value: the page's flattening is Node's.
    const [w, h] = [64, 48];
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i % 4 === 3 ? (i >> 2) % 256 : (i * 37) % 256));
    const web = await harness.inputFromRgba(rgba, w, h, pre);
    assert.deepEqual(web, modelInput({ width: w, height: h, channels: 4, data: rgba }, pre));
    for (const policy of ['squash', 'pad'] as const) {
      const other = { ...pre, resize: policy };
      assert.deepEqual(await harness.inputFromRgba(rgba, w, h, other), modelInput({ width: w, height: h, channels: 4, data: rgba }, other), policy);
    }
  });
});
