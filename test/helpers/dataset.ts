import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { packagePath } from '../../src/util/paths.js';

export const CLOTHING7 = packagePath('data', 'clothing7');

/**
 * Copies the first `perClass` real photos of each class from the bundled clothing7 split into
 * `dest/<class>/`: a small real data set for end-to-end tests.
 */
export async function copySubset(split: 'train' | 'test', classes: readonly string[], perClass: number, dest: string): Promise<void> {
  for (const c of classes) {
    const files = (await readdir(join(CLOTHING7, split, c))).sort().slice(0, perClass);
    await mkdir(join(dest, c), { recursive: true });
    await Promise.all(files.map((f) => copyFile(join(CLOTHING7, split, c, f), join(dest, c, f))));
  }
}
