import { Backbone } from '../../src/backbone/backbone.js';
import { scanDataset } from '../../src/dataset/scan.js';
import { extractFeatures } from '../../src/features/extract.js';
import type { Dataset } from '../../src/head/train.js';
import { packagePath } from '../../src/util/paths.js';

/** Backbone features of the first `perClass` clothing7 photos of each of `classes` in `split`: real data, small enough for a fast test. */
export async function clothing7Features(split: 'train' | 'test', classes: readonly string[], perClass: number, backbone?: Backbone): Promise<Dataset> {
  const own = backbone ?? (await Backbone.load('mobilenet_v2'));
  try {
    const scanned = await scanDataset(packagePath('data', 'clothing7', split), { classes });
    const files = classes.flatMap((_, c) => scanned.files.filter((f) => f.label === c).slice(0, perClass));
    const { features } = await extractFeatures(own, files.map((f) => f.path));
    const d = features[0]!.vector.length;
    const x = new Float32Array(files.length * d);
    features.forEach((f, i) => x.set(f.vector, i * d));
    return { x, y: Int32Array.from(files, (f) => f.label), n: files.length, d, classes: classes.length };
  } finally {
    if (!backbone) await own.release();
  }
}
