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

/**
 * A file-system error as "CODE: description" without the syscall and path Node appends
 * (", open '/x/y.jpg'"), for messages that already name the file.
 */
export function describeFsError(err: unknown): string {
  const message = describeError(err);
  return (err as NodeJS.ErrnoException | null)?.code ? message.replace(/, \w+ '.*'$/, '') : message;
}
