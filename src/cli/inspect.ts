import type { Command } from 'commander';
import { resolveSource } from '../backbone/source.js';
import { table } from '../evaluate/format.js';
import { defaultCut } from '../backbone/backbone.js';
import { inspectModel } from '../onnx/inspect.js';
import { readModel } from '../onnx/proto.js';
import { featureOption, type BackboneFlags } from './backbone-options.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('list the tensors of a model (ONNX, or TF.js / TFLite converted) with their shapes, and the default feature cut')
    .argument('<model>', 'zoo id, .onnx file, .tflite file, TF.js model folder/model.json, or URL')
    .addOption(featureOption("mark this tensor as the cut instead, to check a --feature for 'headswap train'").helpGroup('Options:'))
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  headswap inspect ./darknet   # then: headswap train photos --base ./darknet --feature leaky_re_lu_14')
    .action(async (source: string, f: BackboneFlags & { json?: boolean }) => {
      const resolved = await resolveSource(source);
      const model = await readModel(resolved.path);
      const cut = f.feature ?? defaultCut(model, resolved.entry, resolved.origin);
      const tensors = await inspectModel(model, resolved.origin);
      if (f.json) {
        process.stdout.write(`${JSON.stringify({ source: resolved.origin, sha256: resolved.sha256, onnx: resolved.path, feature: cut ?? null, tensors }, null, 2)}\n`);
        return;
      }
      const rows = tensors.map((t) => [t.name, t.op, t.type, `[${t.dims.join(',')}]`, t.name === cut?.tensor ? `<- feature cut (${cut.pooling})` : '']);
      process.stdout.write(`${table([['tensor', 'op', 'type', 'shape', ''], ...rows])}\n`);
      process.stdout.write(
        cut
          ? `${tensors.length} tensors; default feature: '${cut.tensor}' pooled by ${cut.pooling}\n`
          : `${tensors.length} tensors; no classifier layer found to cut before: pick a feature tensor and pass it as --feature <tensor>\n`,
      );
    });
}
