import type { Command } from 'commander';
import { HeadswapError } from '../errors.js';
import { openPredictor, streamPredictions } from '../predict/files.js';
import { skippedSummary, warn } from './output.js';
import { int } from './parse.js';
import { writePredictions } from './predictions.js';

interface Flags {
  top: number;
  json?: boolean;
  csv?: boolean;
  pixelLimit?: number;
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('classify images with a model folder written by train')
    .argument('<model>', "model folder written by 'headswap train', or a Teachable Machine image export (model.json, weights.bin, metadata.json)")
    .argument('<paths...>', 'image files and folders (walked recursively)')
    .option('--top <k>', 'how many classes to show per image', int(1, 1000), 3)
    .option('--json', 'one JSON object per line')
    .option('--csv', 'CSV with a header row')
    .option('--pixel-limit <n>', 'refuse images with more pixels than this', int(1))
    .addHelpText('after', '\nExamples:\n  headswap predict ./photos.model ./new-images/ --top 3\n  headswap predict ./photos.model a.jpg b.png --csv > predictions.csv')
    .action(async (model: string, paths: string[], f: Flags) => {
      if (f.json && f.csv) throw new HeadswapError('--json and --csv exclude each other; pick one');
      const predictor = await openPredictor(model, { pixelLimit: f.pixelLimit });
      let skipped = 0;
      try {
        const stream = streamPredictions(predictor.model, paths, {
          top: f.top,
          onSkip: (path, reason) => {
            skipped++;
            warn(`skipped ${path}: ${reason}`);
          },
        });
        const n = await writePredictions(stream, f.json ? 'json' : f.csv ? 'csv' : 'text', Math.min(f.top, predictor.model.labels.length));
        if (n === 0) throw new HeadswapError(`no image could be classified in ${paths.join(', ')}${skipped ? ` (${skipped} skipped)` : ''}`);
        skippedSummary(skipped, n, 'classified');
      } finally {
        await predictor.release();
      }
    });
}
