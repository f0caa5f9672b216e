import { readFile } from 'node:fs/promises';
import { HeadswapError, describeError } from '../errors.js';

/** Reads a labels file: one class name per line, blank lines at the end ignored. */
export async function readLabels(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HeadswapError(`${path}: cannot read labels (${describeError(err)})`);
  }
  return text.replace(/\s+$/, '').split(/\r?\n/).map((l) => l.trim());
}
