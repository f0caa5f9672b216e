/**
 * Parity of the TFLite importer with an independent TFLite runtime (ArmNN 20.08's reference CPU
 * backend, Debian's python3-pyarmnn) on real photos: the bundled MobileNet-EdgeTPU (uint8), its
 * softmax output and the 7x7x1280 map before the pool, from onnxruntime with headswap's session
 * settings and unfused. ArmNN's reference backend takes ~25 s per photo on 2 cores. Prints JSON.
 *   npm run bench:tflite-parity [-- PHOTOS]      (default 8, taken across data/clothing7/test classes)
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { getEntry } from '../src/backbone/zoo.js';
import { packagePath } from '../src/util/paths.js';
import { armnnMissing } from '../test/helpers/armnn.js';
import { tfliteParity } from '../test/helpers/tflite-parity.js';

const count = Number(process.argv[2] ?? 8);
const missing = armnnMissing();
if (missing) {
  console.log(JSON.stringify({ skipped: missing }));
  process.exit(0);
}
const root = packagePath('data', 'clothing7', 'test');
const classes = readdirSync(root).sort().map((c) => readdirSync(join(root, c)).sort().map((f) => join(root, c, f)));
// Round-robin over the classes, so a few photos still cover them all.
const photos: string[] = [];
for (let i = 0; photos.length < count && classes.some((c) => c[i]); i++) for (const c of classes) if (c[i] && photos.length < count) photos.push(c[i]!);
const entry = getEntry('mobilenet_edgetpu');
const feature = entry.feature === 'output' ? '' : entry.feature.tensor;
const report = await tfliteParity(packagePath(entry.bundled!), photos, entry.preprocessing, feature);
console.log(JSON.stringify({ machine: { cores: (await import('node:os')).availableParallelism(), node: process.version }, ...report }, null, 2));
