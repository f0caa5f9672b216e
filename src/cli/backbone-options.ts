import { InvalidArgumentError, Option, type Command } from 'commander';
import type { BackboneOptions } from '../backbone/backbone.js';
import { DEFAULT_BACKBONE } from '../backbone/zoo.js';
import type { Pooling } from '../onnx/edit.js';
import type { Preprocessing } from '../image/types.js';
import { int, num } from './parse.js';

export interface BackboneFlags {
  base?: string;
  feature?: { tensor: string; pooling: Pooling };
  size?: [number, number];
  resize?: Preprocessing['resize'];
  scale?: number;
  mean?: [number, number, number];
  std?: [number, number, number];
  threads?: number;
}

const POOLINGS: readonly Pooling[] = ['avg-nchw', 'avg-nhwc', 'first-token', 'none'];

export function triple(value: string): [number, number, number] {
  const parts = value.split(',').map(Number);
  if (parts.length !== 3 || !parts.every(Number.isFinite)) throw new InvalidArgumentError(`'${value}' is not three numbers like 0.485,0.456,0.406.`);
  return parts as [number, number, number];
}

function size(value: string): [number, number] {
  const m = /^(\d+)x(\d+)$/i.exec(value) ?? /^(\d+)$/.exec(value);
  const h = Number(m?.[1]);
  const w = Number(m?.[2] ?? m?.[1]);
  if (!(h > 0 && w > 0)) throw new InvalidArgumentError(`'${value}' is not a size like 224 or 224x224.`);
  return [h, w];
}

function feature(value: string): { tensor: string; pooling: Pooling } {
  const at = value.lastIndexOf(':');
  const pooling = at > 0 ? value.slice(at + 1) : '';
  if (at > 0 && (POOLINGS as readonly string[]).includes(pooling)) return { tensor: value.slice(0, at), pooling: pooling as Pooling };
  return { tensor: value, pooling: 'avg-nchw' };
}

/** Options that pick a backbone and, for a network outside the zoo, say how to feed it and where to cut. */
export function addBackboneOptions(cmd: Command, baseHelp = "backbone: zoo id ('headswap backbones'), .onnx file, .tflite file, TF.js model folder/model.json, or URL", defaultBase = DEFAULT_BACKBONE): Command {
  return addPreprocessingOptions(cmd.option('--base <id|path|url>', baseHelp, defaultBase));
}

/** `--base a,b` as train()'s `base`: several comma-separated backbones are an ensemble. */
export function baseOption(value: string | undefined): string | string[] | undefined {
  return value?.includes(',') ? value.split(',').map((b) => b.trim()) : value;
}

/** The same without --base, for commands that take the model as an argument. */
export function addPreprocessingOptions(cmd: Command): Command {
  return cmd
    .option('--feature <tensor[:pooling]>', `feature tensor to cut at ('headswap inspect' lists them); pooling: ${POOLINGS.join(', ')} (default avg-nchw)`, feature)
    .option('--size <HxW>', 'input size, for models whose size is open', size)
    .addOption(new Option('--resize <policy>', 'crop: shorter side then center crop; squash; pad').choices(['crop', 'squash', 'pad']))
    .option('--scale <x>', 'multiply pixel values (0-255) by this first', num(1e-9, 1e9))
    .option('--mean <r,g,b>', 'per-channel mean subtracted after scaling', triple)
    .option('--std <r,g,b>', 'per-channel std divided by after the mean', triple)
    // On a machine busy with other work, fewer threads than cores can be faster (measured: 1 beat 2 on a loaded 2-core box).
    .option('--threads <n>', 'onnxruntime intra-op threads (default: all cores)', int(1, 1024));
}

export function backboneOptions(f: BackboneFlags, cacheDir?: string): BackboneOptions {
  const preprocessing: Partial<Preprocessing> = {
    ...(f.size ? { size: f.size } : {}),
    ...(f.resize ? { resize: f.resize } : {}),
    ...(f.scale !== undefined ? { scale: f.scale } : {}),
    ...(f.mean ? { mean: f.mean } : {}),
    ...(f.std ? { std: f.std } : {}),
  };
  return { preprocessing, ...(f.feature ? { feature: f.feature } : {}), ...(f.threads ? { threads: f.threads } : {}), ...(cacheDir ? { cacheDir } : {}) };
}
