import assert from 'node:assert/strict';
import { HeadswapError } from '../../src/errors.js';

/** Asserts that `promise` rejects with a one-line HeadswapError matching `pattern`. */
export async function expectOneLine(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof HeadswapError, String(err));
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), err.message);
    return true;
  });
}
