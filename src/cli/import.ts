import { copyFile, rename, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { HeadswapError, describeError } from '../errors.js';
import { importTflite, importTfjs } from '../import/index.js';
import { tempSibling } from '../util/fs.js';
import { size } from './parse.js';
import { decidedDefault } from './usage.js';

export function registerImport(program: Command): void {
  program
    .command('import')
    .description('convert a TensorFlow.js model (layers-model or graph-model) or a TensorFlow Lite model to ONNX, to train on it with --base')
    .argument('<src>', 'TF.js model folder, its model.json, a .tflite file, or an http(s) URL of a model.json or .tflite file')
    .argument('<out>', 'ONNX file to write')
    .addOption(decidedDefault('--size <HxW>', 'input size, for TF.js models whose input size is open (e.g. 224x224)', "the model's own", size))
    .option('--force', 'replace <out> if it exists')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  headswap import ./darknet-tiny darknet.onnx && headswap inspect darknet.onnx\n  headswap import ./mobilenet_v1_1.0_224_quant.tflite mobilenet.onnx')
    .action(async (src: string, out: string, f: { size?: [number, number]; force?: boolean; json?: boolean }) => {
      const dest = resolve(out);
      if (!f.force && (await stat(dest).catch(() => undefined))) throw new HeadswapError(`${dest} exists; give another path or --force to replace it`);
      const tflite = /\.tflite([?#].*)?$/i.test(src);
      if (tflite && f.size) throw new HeadswapError('--size is for TF.js models with an open input size; a .tflite file fixes its own');
      const result = tflite ? await importTflite(src) : await importTfjs(src, f.size ? { inputSize: f.size } : {});
      // The converted model lives in the cache; the copy goes to a temp file first so <out> is never half-written.
      const tmp = tempSibling(dest);
      try {
        await copyFile(result.onnxPath, tmp);
        await rename(tmp, dest);
      } catch (err) {
        await rm(tmp, { force: true });
        throw new HeadswapError(`cannot write ${dest}: ${describeError(err)}`, { cause: err });
      }
      if (f.json) {
        process.stdout.write(`${JSON.stringify({ ...(tflite ? { format: 'tflite' } : {}), ...result, onnxPath: dest, cached: result.onnxPath }, null, 2)}\n`);
        return;
      }
      const [h, w] = result.inputSize;
      const labels = result.labels ? `; ${result.labels.length} labels` : '';
      const outputs = result.outputs.map((o) => `'${o}'`).join(', ');
      process.stdout.write(
        'format' in result
          ? `${dest}: ${result.format} converted to ONNX; input '${result.input}' float32 [N,${h},${w},C] NHWC in the model's own value range; outputs ${outputs}${labels}; inner image tensors are NCHW, named after their TF.js layers/nodes\n`
          : `${dest}: TensorFlow Lite model converted to ONNX; input '${result.input}' float32 [N,${h},${w},3] NHWC in the model's float domain (a quantized input dequantized); outputs ${outputs}${labels}; quantized tensors as QuantizeLinear/DequantizeLinear pairs; inner image tensors are NCHW, named after their TFLite tensors\n`,
      );
    });
}
