/**
 * The bundled MobileNet-EdgeTPU converted by headswap against an independent TFLite runtime,
 * ArmNN's reference CPU backend (Debian: apt-get install -y python3-pyarmnn, ~20 s), on two
 * real photos (~25 s each there). Skipped with the reason when pyarmnn is not installed;
 * `npm run bench:tflite-parity` runs the same check on more photos and prints the figures.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { getEntry } from '../../src/backbone/zoo.js';
import { packagePath } from '../../src/util/paths.js';
import { armnnMissing } from '../helpers/armnn.js';
import { tfliteParity } from '../helpers/tflite-parity.js';

const missing = armnnMissing();

describe('TFLite import against ArmNN', () => {
  it('MobileNet-EdgeTPU: same top-1 where the reference decides it, the first layers within one step, the rest within the rounding noise of uint8 arithmetic', { skip: missing, timeout: 300_000 }, async (t) => {
    const entry = getEntry('mobilenet_edgetpu');
    const photos = ['dress', 'shoes'].map((c) => packagePath('data', 'clothing7', 'test', c, readdirSync(packagePath('data', 'clothing7', 'test', c)).sort()[0]!));
    const r = await tfliteParity(packagePath(entry.bundled!), photos, entry.preprocessing, entry.feature === 'output' ? '' : entry.feature.tensor);
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.decisivePhotos >= 1, 'no photo whose top-1 the reference decides beyond uint8 noise');
    assert.equal(r.onnxruntime.top1Agreement, 1);
    assert.equal(r.unfused.top1Agreement, 1);
    // The same arithmetic: 99.9% of values at most one step apart (a tie rounded the other way) until those compound.
    assert.ok(r.unfused.leadingOperatorsWithinOneStep >= 10, `only ${r.unfused.leadingOperatorsWithinOneStep} leading operators within one step`);
    for (const d of [r.onnxruntime.feature, r.unfused.feature]) {
      assert.ok(d.identical >= 0.85, `feature map: ${d.identical} on the same grid point`);
      assert.ok(d.meanAbsDiff <= 0.5 * d.step, `feature map: mean |diff| ${d.meanAbsDiff}`);
    }
    for (const d of [r.onnxruntime.output, r.unfused.output]) assert.ok(d.maxAbsDiff <= 0.125, `softmax: max |diff| ${d.maxAbsDiff}`);
  });
});
