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

/** Asserts that a CLI run failed with one `headswap: ...` line on stderr matching `pattern`, and no stack trace. */
export function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^headswap: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}
