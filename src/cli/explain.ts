import type { Command } from 'commander';
import { DEFAULT_BACKBONE } from '../backbone/zoo.js';
import { HeadswapError } from '../errors.js';
import { DEFAULT_CHANNELS, MAX_CHANNELS, explain } from '../explain/explain.js';
import { percent } from './output.js';
import { int } from './parse.js';
import { decidedDefault } from './usage.js';

interface Flags {
  base?: string;
  out?: string;
  channels: number;
  model?: string;
  class?: string[];
  json?: boolean;
}

/** `--class a --class b` and `--class a,b` both give [a, b]. */
function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((c) => c.trim()).filter(Boolean)];
}

export function registerExplain(program: Command): void {
  program
    .command('explain')
    .description("show what the frozen backbone sees in a photo (first-layer filters, its most active channels at four depths) and, with --model, why the trained model says what it says (class activation maps)")
    .argument('<image>', 'an image file')
    .addOption(decidedDefault('--base <id|path|url>', 'convolutional backbone for the layer pictures', `${DEFAULT_BACKBONE}, or the model's first backbone with --model`))
    .option('--out <file.png>', 'contact sheet to write; the .html page (and with --model the .classes.png) go next to it (default: <image>.explain.png here)')
    .option('--channels <n>', 'strongest channels shown per depth', int(1, MAX_CHANNELS), DEFAULT_CHANNELS)
    .option('--model <folder>', "a model folder 'headswap train' wrote: adds the class activation maps of its predicted class")
    .option('--class <name>', 'with --model, also map this class (repeat, or comma-separate)', collect)
    .option('--json', 'print the files, the layers and the classes used as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  headswap explain cat.jpg                          # writes cat.explain.png and cat.explain.html\n  headswap explain shoe.jpg --model photos.model --class hat   # adds shoe.explain.classes.png',
    )
    .action(async (image: string, f: Flags) => {
      if (f.class && !f.model) throw new HeadswapError("--class needs --model: the classes are a trained model's; add --model <folder>");
      const r = await explain(image, { base: f.base, out: f.out, channels: f.channels, model: f.model, classes: f.class });
      const maps = r.classMaps;
      if (f.json) {
        // The file paths instead of the file contents; each map as width, height and its values.
        const { png: _png, html: _html, pngPath, htmlPath, classesPath, classMaps: _maps, ...rest } = r;
        const classes = maps?.classes.map((c) => ({
          label: c.label,
          probability: c.probability,
          map: { width: c.map.width, height: c.map.height, values: [...c.map.data] },
          members: c.members.map((m) => ({ backbone: m.backbone, method: m.method, tensor: m.tensor, probability: m.probability, map: { width: m.map.width, height: m.map.height, values: [...m.map.data] } })),
        }));
        const model = maps && { model: maps.model, method: maps.method, tta: maps.tta, classes, classesPng: classesPath };
        process.stdout.write(`${JSON.stringify({ ...rest, png: pngPath, html: htmlPath, ...model }, null, 2)}\n`);
        return;
      }
      const [n, c, kh, kw] = r.filters.dims;
      const lines = [
        `${r.pngPath} (${r.width}x${r.height})`,
        r.htmlPath,
        ...(maps && r.classesPath ? [`${r.classesPath} (${maps.width}x${maps.height})`] : []),
        `layer 1 filters: ${n} of ${kh}x${kw}x${c} from ${r.filters.weightTensor}`,
        ...r.layers.map((l) => `layer ${l.depth}: ${l.title}: ${l.tensor} [${l.dims.join(',')}] stride ${l.stride}; channels ${l.strongest.map((s) => s.index).join(', ')}`),
        ...(maps
          ? [
              `class maps (${maps.method === 'cam' ? 'CAM, exact from the linear head' : 'Grad-CAM, through the hidden layer'}${maps.tta ? ', photo and mirror averaged' : ''}):`,
              ...maps.classes.map(
                (k, i) => `  ${k.label} ${percent(k.probability)}${i === 0 ? ' (predicted)' : ''}${k.members.length > 1 ? `: ${k.members.map((m) => `${m.backbone} ${percent(m.probability)}`).join(', ')}` : ''}`,
              ),
            ]
          : []),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
