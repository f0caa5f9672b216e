import type { OptionRef } from '../errors.js';

/** Library option names whose flag is not the name in kebab case. */
const FLAG_NAMES: Readonly<Record<string, string>> = {
  learningRate: 'lr',
  olderThanDays: 'older-than',
  topK: 'top',
  groupsFile: 'groups',
  inputSize: 'size',
};

/** Options whose list value the CLI writes as HxW; other lists are comma-separated (--mean 0.5,0.5,0.5). */
const SIZES = new Set(['size', 'inputSize']);

/**
 * A library option as the CLI's flag: `out` → `--out`, `force: true` → `--force`, `cv: 3` →
 * `--cv 3`, `backbone.preprocessing.size: [224, 224]` → `--size 224x224`. The flag is named by
 * the option's last key, so `head.learningRate` is `--lr` and `backbone.feature` is `--feature`.
 */
export function flagOf(o: OptionRef): string {
  const key = o.path.slice(o.path.lastIndexOf('.') + 1);
  const flag = `--${FLAG_NAMES[key] ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (o.value === undefined || o.value === true) return flag;
  return `${flag} ${typeof o.value === 'object' ? o.value.join(SIZES.has(key) ? 'x' : ',') : String(o.value)}`;
}
