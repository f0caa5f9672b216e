import type { Command } from 'commander';
import { IMAGENET_CROP_224 } from '../backbone/presets.js';
import { HeadswapError } from '../errors.js';
import { DEFAULT_PIXEL_LIMIT } from '../image/preprocess.js';
import type { Preprocessing } from '../image/types.js';
import { openPredictor, streamPredictions } from '../predict/files.js';
import { triple } from './backbone-options.js';
import { skippedSummary, warn } from './output.js';
import { int, positive } from './parse.js';
import { writePredictions } from './predictions.js';
import { decidedDefault } from './usage.js';

interface Flags {
  top: number;
  json?: boolean;
  csv?: boolean;
  pixelLimit?: number;
  resize?: Preprocessing['resize'];
  scale?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
}

export function registerPredict(program: Command): void {
  program
    .command('predict')
    .description('classify images with a model folder written by train')
    .argument('<model>', "model folder written by 'headswap train', a Teachable Machine image export (model.json, weights.bin, metadata.json), or a .tflite image classifier (file or URL)")
    .argument('<paths...>', 'image files and folders (walked recursively)')
    .optionsGroup('Output options:')
    .option('--top <k>', 'how many classes to show per image', int(1, 1000), 3)
    .option('--json', 'one JSON object per line: {"input", "top": [{"label", "index", "probability"}]}, as classifier.predict() returns')
    .option('--csv', 'CSV with a header row')
    .optionsGroup('Image options:')
    .addOption(decidedDefault('--pixel-limit <n>', 'refuse images with more pixels than this', `${DEFAULT_PIXEL_LIMIT} = ${DEFAULT_PIXEL_LIMIT / 1e6} megapixels`, int(1)))
    .optionsGroup('Options for a .tflite classifier:')
    .addOption(decidedDefault('--resize <policy>', 'crop (shorter side, then center crop), squash or pad', IMAGENET_CROP_224.resize).choices(['crop', 'squash', 'pad']))
    .addOption(decidedDefault('--scale <x>', 'multiply pixel values (0-255) by this first', 'from its input quantization or metadata, else 1/255', positive))
    .addOption(decidedDefault('--mean <r,g,b>', 'per-channel mean subtracted after scaling', 'from its metadata, else none', triple))
    .addOption(decidedDefault('--std <r,g,b>', 'per-channel std divided by after the mean', 'from its metadata, else none', triple))
    .addHelpText('after', '\nExamples:\n  headswap predict ./photos.model ./new-images/ --top 3\n  headswap predict ./photos.model a.jpg b.png --csv > predictions.csv\n  headswap predict ./flowers.tflite ./new-images/')
    .action(async (model: string, paths: string[], f: Flags) => {
      if (f.json && f.csv) throw new HeadswapError('--json and --csv exclude each other; pick one');
      const preprocessing: Partial<Preprocessing> = {
        ...(f.resize ? { resize: f.resize } : {}),
        ...(f.scale !== undefined ? { scale: f.scale } : {}),
        ...(f.mean ? { mean: f.mean } : {}),
        ...(f.std ? { std: f.std } : {}),
      };
      const predictor = await openPredictor(model, { pixelLimit: f.pixelLimit, preprocessing });
      for (const w of predictor.warnings) warn(w);
      let skipped = 0;
      try {
        const given = Object.keys(preprocessing);
        if (predictor.kind !== 'tflite' && given.length > 0) {
          const what = predictor.kind === 'headswap' ? 'a headswap model folder' : 'a Teachable Machine export';
          throw new HeadswapError(`${given.map((k) => `--${k}`).join(', ')}: only for a .tflite classifier; ${model} is ${what}, which brings its own preprocessing; drop the flag`);
        }
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
