import type { Command } from 'commander';
import { classifyFiles } from '../predict/classify.js';
import { HeadswapError } from '../errors.js';
import { addBackboneOptions, backboneOptions, type BackboneFlags } from './backbone-options.js';
import { skippedSummary, warn } from './output.js';
import { int } from './parse.js';
import { writePredictions } from './predictions.js';

interface Flags extends BackboneFlags {
  top: number;
  json?: boolean;
  csv?: boolean;
}

export function registerClassify(program: Command): void {
  addBackboneOptions(
    program
      .command('classify')
      .description("the pretrained backbone's own predictions (ImageNet's 1000 classes for the default)")
      .argument('<paths...>', 'image files and folders'),
    { baseHelp: 'backbone with its own classifier and labels (zoo id, .onnx, .tflite with label metadata or labels.txt, TF.js folder with labels.txt, or URL)', cut: false },
  )
    .optionsGroup('Output options:')
    .option('--top <k>', 'how many classes per image', int(1, 1000), 5)
    .option('--json', 'one JSON object per line: {"input", "top": [{"label", "index", "probability"}]}')
    .option('--csv', 'CSV with a header row')
    .addHelpText('after', '\nExample:\n  headswap classify cat.jpg shuttle.png --top 5')
    .action(async (paths: string[], f: Flags) => {
      if (f.json && f.csv) throw new HeadswapError('--json and --csv exclude each other; pick one');
      let skipped = 0;
      const stream = classifyFiles(paths, {
        base: f.base,
        backbone: backboneOptions(f),
        top: f.top,
        onSkip: (path, reason) => {
          skipped++;
          warn(`skipped ${path}: ${reason}`);
        },
      });
      const n = await writePredictions(stream, f.json ? 'json' : f.csv ? 'csv' : 'text', f.top);
      if (n === 0) throw new HeadswapError(`no image could be classified in ${paths.join(', ')}${skipped ? ` (${skipped} skipped)` : ''}`);
      skippedSummary(skipped, n, 'classified');
    });
}
