import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { packagePath } from './paths.js';

const require = createRequire(import.meta.url);

function versionOf(pkg: string): string {
  try {
    const main = require.resolve(pkg);
    const root = main.slice(0, main.lastIndexOf(`node_modules/${pkg}`) + `node_modules/${pkg}`.length);
    return (JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export const HEADSWAP_VERSION = (JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as { version: string }).version;

/** Versions recorded in every exported model, so a result can be traced to its tools. */
export function toolVersions(): Record<string, string> {
  return {
    headswap: HEADSWAP_VERSION,
    node: process.versions.node,
    'onnxruntime-node': versionOf('onnxruntime-node'),
    sharp: versionOf('sharp'),
    '@tensorflow/tfjs-core': versionOf('@tensorflow/tfjs-core'),
  };
}
