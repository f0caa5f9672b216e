import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HeadswapError } from '../../src/errors.js';
import { missingTensorflow } from '../../src/compare/compare.js';

describe('TensorFlow.js as an optional dependency', () => {
  it('a missing @tensorflow package becomes one line saying what to install', async () => {
    // The very error Node gives when an optional package was left out (npm install --omit=optional).
    const err = await import('@tensorflow/tfjs-not-installed' as string).then(() => undefined, (e: unknown) => e);
    const mapped = missingTensorflow(err);
    assert.ok(mapped instanceof HeadswapError);
    assert.match(mapped.message, /needs TensorFlow\.js.*npm install @tensorflow\/tfjs-core @tensorflow\/tfjs-layers/);
    assert.ok(!mapped.message.includes('\n'));
  });

  it('other failures are left as they are', async () => {
    const other = await import('left-pad-not-installed' as string).then(() => undefined, (e: unknown) => e);
    assert.equal(missingTensorflow(other), undefined);
    assert.equal(missingTensorflow(new Error('@tensorflow/tfjs-core: kernel failed')), undefined);
  });
});
