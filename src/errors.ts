/**
 * An error meant for the user: one line that names the file (or thing) and the fix.
 * The CLI prints `message` alone, without a stack trace, and exits non-zero.
 */
export class HeadswapError extends Error {
  override readonly name = 'HeadswapError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A short description of any thrown value, for wrapping low-level errors into one line. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? String(err);
  return String(err);
}
