import type { Command } from 'commander';
import { availableOffline } from '../backbone/source.js';
import { ZOO } from '../backbone/zoo.js';
import { table } from '../evaluate/format.js';

export function registerBackbones(program: Command): void {
  program
    .command('backbones')
    .description('list the model zoo; "offline" marks networks usable without a download')
    .option('--json', 'print JSON')
    .action((f: { json?: boolean }) => {
      const rows = ZOO.map((e) => ({
        offline: availableOffline(e),
        ...e,
      }));
      if (f.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        return;
      }
      const lines = rows.map((e) => [
        e.id,
        e.offline ? (e.bundled ? 'bundled' : 'cached') : 'download',
        e.bytes === null ? '?' : `${(e.bytes / 1e6).toFixed(1)} MB`,
        `${e.preprocessing.size[0]}px`,
        String(e.featureDims),
        e.imagenet ? `${e.imagenet.top1}%` : '-',
        e.title,
      ]);
      process.stdout.write(`${table([['id', 'available', 'size', 'input', 'features', 'ImageNet top-1', 'network'], ...lines], ['l', 'l', 'r', 'r', 'r', 'r', 'l'])}\n`);
    });
}
