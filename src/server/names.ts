import { randomBytes } from 'node:crypto';
import { RequestError } from './errors.js';
import { displayName } from './images.js';

/** Model and job ids in URLs: lowercase, no dots or slashes, so an id is never a path. */
export const ID_PATTERN = '^[a-z0-9][a-z0-9-]{0,79}$';
const ID_RE = new RegExp(ID_PATTERN);

export function isId(value: string): boolean {
  return ID_RE.test(value);
}

/** A readable, path-safe id part from any text ("My Shoes!" -> "my-shoes"), or `fallback`. */
export function slug(text: string, fallback: string): string {
  const s = text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return s || fallback;
}

export function randomId(): string {
  return randomBytes(4).toString('hex');
}

const MAX_CLASS_NAME = 64;
/** Names that the data set scanner skips as operating-system clutter. */
const RESERVED = new Set(['thumbs.db', 'desktop.ini', '.ds_store']);

/**
 * A class name from the client becomes a folder name (train() takes class names from folders),
 * so it is refused rather than altered when it could not be one: empty, too long, with a path
 * separator or control character, or hidden (leading dot). Unicode is kept, NFC-normalized so
 * one name has one spelling on disk.
 */
export function className(raw: string): string {
  const name = raw.normalize('NFC').trim();
  const problem =
    name.length === 0
      ? 'is empty'
      : name.length > MAX_CLASS_NAME
        ? `is longer than ${MAX_CLASS_NAME} characters`
        : /[\u0000-\u001f\u007f/\\]/.test(name)
          ? 'contains a slash, backslash or control character'
          : name.startsWith('.')
            ? 'starts with a dot'
            : RESERVED.has(name.toLowerCase())
              ? 'is a reserved file name'
              : undefined;
  if (problem) throw new RequestError(400, `class name ${displayName(raw)} ${problem}; use letters, digits, spaces, - or _`);
  return name;
}

/** A photo's name on disk: a counter (unique) and the client's name reduced to safe characters (for people reading the report). */
export function photoFileName(index: number, clientName: string, extension: string): string {
  const stem = clientName
    .replace(/\.[^.]*$/, '')
    .replace(/[^A-Za-z0-9_-]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 40);
  return `${String(index).padStart(4, '0')}${stem ? `-${stem}` : ''}${extension}`;
}
