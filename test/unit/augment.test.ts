import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Backbone } from '../../src/backbone/backbone.js';
import { IMAGENET_CROP_224 } from '../../src/backbone/zoo.js';
import { HeadswapError } from '../../src/errors.js';
import { augmentSpecs, cropSpec, flipSpec, loadAugmented, viewParams } from '../../src/image/augment.js';
import { FeatureCache } from '../../src/features/cache.js';
import { extractAugmented, extractFeatures } from '../../src/features/extract.js';
import { loadRgb } from '../../src/image/preprocess.js';
import { sha256 } from '../../src/util/fs.js';
import { DRESS_1, HAT_1, SHOE_1, SHOE_2 } from '../helpers/images.js';

let dir: string;
let backbone: Backbone;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-augment-'));
  backbone = await Backbone.load('mobilenet_v2');
});
after(async () => {
  await backbone.release();
  await rm(dir, { recursive: true, force: true });
});

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

describe('augmentation specs', () => {
  it('gives distinct, parameter-encoding ids and validates ranges', () => {
    const specs = augmentSpecs(3, 7);
    assert.equal(specs.length, 4);
    assert.equal(new Set(specs.map((s) => s.id)).size, 4);
    assert.equal(specs[0]!.kind, 'flip');
    assert.notEqual(cropSpec(0, 7).id, cropSpec(0, 8).id);
    assert.notEqual(cropSpec(0, 7).id, cropSpec(0, 7, { minArea: 0.5 }).id);
    assert.equal(cropSpec(2, 1).id, cropSpec(2, 1).id);
    assert.equal(augmentSpecs(2, 0, { flip: false }).every((s) => s.kind === 'crop'), true);
    assert.throws(() => cropSpec(0, 0, { minArea: 0 }), HeadswapError);
    assert.throws(() => cropSpec(0, 0, { jitter: 1 }), HeadswapError);
  });

  it('draws crop boxes inside the image with the requested area and aspect', () => {
    const spec = cropSpec(0, 0, { minArea: 0.4, maxArea: 0.9, maxAspect: 4 / 3, jitter: 0.3 });
    for (let i = 0; i < 300; i++) {
      const p = viewParams({ ...spec, index: i, id: `${spec.id}:${i}` }, sha256(String(i)), 160, 120);
      const b = p.box!;
      assert.ok(b.left >= 0 && b.top >= 0 && b.left + b.width <= 160 && b.top + b.height <= 120, JSON.stringify(b));
      const area = (b.width * b.height) / (160 * 120);
      // Either a valid draw (rounding allows a little slack) or the whole-image fallback.
      assert.ok((area > 0.38 && area < 0.93) || area === 1, `area ${area}`);
      assert.ok(b.width / b.height < (4 / 3) * 1.1 && b.width / b.height > 0.75 / 1.1);
      for (const f of [p.brightness, p.contrast, p.saturation]) assert.ok(f >= 0.7 && f <= 1.3);
    }
  });
});

describe('loadAugmented', () => {
  it('flip is exactly the mirrored plain view', async () => {
    const data = await readFile(SHOE_1);
    const flipped = await loadAugmented({ name: SHOE_1, data }, IMAGENET_CROP_224, flipSpec());
    const reference = await loadRgb(SHOE_1, IMAGENET_CROP_224, { flip: true });
    assert.deepEqual(flipped.data, reference.data);
  });

  it('renders crops deterministically from the spec and the bytes, at the input size', async () => {
    const data = await readFile(HAT_1);
    const spec = cropSpec(0, 3);
    const a = await loadAugmented({ name: HAT_1, data }, IMAGENET_CROP_224, spec);
    const b = await loadAugmented({ name: HAT_1, data }, IMAGENET_CROP_224, spec);
    const other = await loadAugmented({ name: HAT_1, data }, IMAGENET_CROP_224, cropSpec(1, 3));
    const plain = await loadRgb(HAT_1, IMAGENET_CROP_224);
    assert.equal(a.width, 224);
    assert.equal(a.height, 224);
    assert.equal(a.data.length, 224 * 224 * 3);
    assert.deepEqual(a.data, b.data);
    assert.notDeepEqual(a.data, other.data);
    assert.notDeepEqual(a.data, plain.data);
  });

  it('refuses undecodable bytes with a one-line error naming the file', async () => {
    await assert.rejects(loadAugmented({ name: 'junk.jpg', data: new Uint8Array([1, 2, 3]) }, IMAGENET_CROP_224, cropSpec(0, 0)), (err: Error) => {
      assert.ok(err instanceof HeadswapError);
      assert.match(err.message, /^junk\.jpg: /);
      return true;
    });
  });
});

describe('extractAugmented', () => {
  it('runs each view through the backbone once, then serves it from the cache', async () => {
    const cache = FeatureCache.open(join(dir, 'cache.sqlite'));
    try {
      const paths = [SHOE_1, SHOE_2, HAT_1, DRESS_1];
      const specs = augmentSpecs(2, 0);
      const first = await extractAugmented(backbone, paths, specs, { cache, batchSize: 5 });
      assert.equal(first.computed, 12);
      assert.equal(first.cached, 0);
      assert.deepEqual(
        first.features.map((f) => [f.path, f.variant]),
        paths.flatMap((p) => specs.map((s) => [p, s.id])),
      );
      const second = await extractAugmented(backbone, paths, specs, { cache });
      assert.equal(second.computed, 0);
      assert.equal(second.cached, 12);
      second.features.forEach((f, i) => assert.deepEqual(f.vector, first.features[i]!.vector));
      // The plain features are a different cache variant and are untouched.
      const plain = await extractFeatures(backbone, paths, { cache });
      assert.equal(plain.computed, 4);
      // A view is the same photo: closer to its own plain vector than to another class's.
      const view = (p: string, k: number): Float32Array => first.features.find((f) => f.path === p && f.variant === specs[k]!.id)!.vector;
      const plainOf = (p: string): Float32Array => plain.features.find((f) => f.path === p)!.vector;
      for (const k of [0, 1, 2]) {
        assert.ok(cosine(view(SHOE_1, k), plainOf(SHOE_1)) > cosine(view(SHOE_1, k), plainOf(DRESS_1)));
        assert.ok(cosine(view(HAT_1, k), plainOf(HAT_1)) > cosine(view(HAT_1, k), plainOf(SHOE_2)));
      }
      assert.ok(cosine(view(SHOE_1, 0), plainOf(SHOE_1)) < 0.99999, 'the flip changes the features');
    } finally {
      cache.close();
    }
  });

  it('skips a broken file for all its views and keeps the others', async () => {
    const broken = join(dir, 'broken.jpg');
    await copyFile(new URL('../../package.json', import.meta.url).pathname, broken);
    const result = await extractAugmented(backbone, [broken, SHOE_1, join(dir, 'missing.jpg')], augmentSpecs(1, 0));
    assert.deepEqual(result.features.map((f) => f.path), [SHOE_1, SHOE_1]);
    assert.deepEqual(result.skipped.map((s) => s.path).sort(), [broken, join(dir, 'missing.jpg')].sort());
    await assert.rejects(extractAugmented(backbone, [SHOE_1], [flipSpec(), flipSpec()]), /distinct ids/);
  });
});
