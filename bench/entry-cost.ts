/**
 * What importing the library's main entry costs, against importing the three native packages it
 * cannot do without (onnxruntime-node, sharp, better-sqlite3): each as a fresh `node` process,
 * the two interleaved (A B A B ...) so drift on a busy machine hits both alike; prints the medians
 * and the median of the pairwise ratios as JSON. Needs the build (`npm run build`).
 *   node --import tsx bench/entry-cost.ts [runs=15] [entry=dist/index.js]
 */
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { packagePath } from '../src/util/paths.js';

const runs = Number(process.argv[2] ?? 15);
const entry = pathToFileURL(packagePath(process.argv[3] ?? 'dist/index.js')).href;
const scripts = {
  entry: `await import(${JSON.stringify(entry)});`,
  natives: "await Promise.all([import('onnxruntime-node'), import('sharp'), import('better-sqlite3')]);",
  bare: '',
};

function time(script: string): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: packagePath(), stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`node exited with ${r.status}: ${r.stderr.toString()}`);
  return performance.now() - t0;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const ms: Record<keyof typeof scripts, number[]> = { entry: [], natives: [], bare: [] };
for (const name of Object.keys(scripts) as (keyof typeof scripts)[]) time(scripts[name]); // warm the file cache
for (let i = 0; i < runs; i++) for (const name of Object.keys(scripts) as (keyof typeof scripts)[]) ms[name].push(time(scripts[name]));
const ratios = ms.entry.map((e, i) => e / ms.natives[i]!);
const net = ms.entry.map((e, i) => (e - ms.bare[i]!) / (ms.natives[i]! - ms.bare[i]!));
process.stdout.write(
  `${JSON.stringify(
    {
      entry: process.argv[3] ?? 'dist/index.js',
      runs,
      medianMs: { entry: +median(ms.entry).toFixed(1), natives: +median(ms.natives).toFixed(1), bareNode: +median(ms.bare).toFixed(1) },
      // Whole process, node's own start-up included; and with the bare start-up taken off both.
      ratio: +median(ratios).toFixed(2),
      ratioWithoutStartup: +median(net).toFixed(2),
    },
    null,
    2,
  )}\n`,
);
