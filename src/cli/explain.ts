import type { Command } from 'commander';
import { DEFAULT_BACKBONE } from '../backbone/zoo.js';
import { DEFAULT_CHANNELS, MAX_CHANNELS, explain } from '../explain/explain.js';
import { int } from './parse.js';

interface Flags {
  base: string;
  out?: string;
  channels: number;
  json?: boolean;
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description("show what the frozen backbone sees in a photo: first-layer filters and its most active channels at four depths")
    .argument('<image>', 'an image file')
    .option('--base <id|path|url>', 'convolutional backbone', DEFAULT_BACKBONE)
    .option('--out <file.png>', 'contact sheet to write; the .html page goes next to it (default: <image>.explain.png here)')
    .option('--channels <n>', 'strongest channels shown per depth', int(1, MAX_CHANNELS), DEFAULT_CHANNELS)
    .option('--json', 'print the files and the layers used as JSON')
    .addHelpText('after', '\nExample:\n  headswap explain cat.jpg          # writes cat.explain.png and cat.explain.html')
    .action(async (image: string, f: Flags) => {
      const r = await explain(image, { base: f.base, out: f.out, channels: f.channels });
      if (f.json) {
        // The file paths instead of the file contents.
        const { png: _png, html: _html, pngPath, htmlPath, ...rest } = r;
        process.stdout.write(`${JSON.stringify({ ...rest, png: pngPath, html: htmlPath }, null, 2)}\n`);
        return;
      }
      const [n, c, kh, kw] = r.filters.dims;
      const lines = [
        `${r.pngPath} (${r.width}x${r.height})`,
        r.htmlPath,
        `layer 1 filters: ${n} of ${kh}x${kw}x${c} from ${r.filters.weightTensor}`,
        ...r.layers.map((l) => `layer ${l.depth}: ${l.title}: ${l.tensor} [${l.dims.join(',')}] stride ${l.stride}; channels ${l.strongest.map((s) => s.index).join(', ')}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
