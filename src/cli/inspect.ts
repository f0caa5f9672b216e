import type { Command } from 'commander';
import { Backbone } from '../backbone/backbone.js';
import { table } from '../evaluate/format.js';
import { inspectModel } from '../onnx/inspect.js';
import { readModel } from '../onnx/proto.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('list the tensors of an ONNX model with their shapes, and the default feature cut')
    .argument('<model>', 'zoo id, .onnx file or URL')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  headswap inspect mobilenet_v2   # then: headswap train photos --base my.onnx --feature <tensor>')
    .action(async (source: string, f: { json?: boolean }) => {
      const backbone = await Backbone.load(source);
      const tensors = await inspectModel(await readModel(backbone.source.path), backbone.source.origin);
      const cut = backbone.feature;
      if (f.json) {
        process.stdout.write(`${JSON.stringify({ source: backbone.source.origin, sha256: backbone.source.sha256, preprocessing: backbone.preprocessing, feature: cut, tensors }, null, 2)}\n`);
        return;
      }
      const rows = tensors.map((t) => [t.name, t.op, t.type, `[${t.dims.join(',')}]`, t.name === cut.tensor ? `<- feature cut (${cut.pooling})` : '']);
      process.stdout.write(`${table([['tensor', 'op', 'type', 'shape', ''], ...rows])}\n`);
      process.stdout.write(`${tensors.length} tensors; default feature: '${cut.tensor}' pooled by ${cut.pooling}\n`);
    });
}
