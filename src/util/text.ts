const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Escapes control characters (C0, DEL, C1) so text from file names stays on one line and cannot
 * drive the terminal (e.g. an ESC sequence in a name). Printable text, Unicode included, is kept.
 */
export function escapeControl(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => NAMED[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Plain string order (UTF-16 code units), not locale-aware: the same on every machine whatever
 * its ICU data or locale, so labels, splits and listings never depend on where they ran.
 */
export function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
