import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** Root of the installed headswap package (holds `models/` and `data/`). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}
