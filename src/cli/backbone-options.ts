import { InvalidArgumentError, type Command, type Option } from 'commander';
import type { BackboneOptions } from '../backbone/backbone.js';
import { IMAGENET_CROP_224 } from '../backbone/presets.js';
import { DEFAULT_BACKBONE, ZOO } from '../backbone/zoo.js';
import type { Pooling } from '../onnx/edit.js';
import type { Preprocessing } from '../image/types.js';
import { int, positive, size } from './parse.js';
import { decidedDefault } from './usage.js';

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
/** The pooling of a `--feature` that names none. */
const DEFAULT_POOLING: Pooling = 'avg-nchw';

/** Resize policies the backbones use unless told otherwise: ImageNet's for networks outside the zoo, and each zoo entry's. */
const DEFAULT_RESIZES = [...new Set([IMAGENET_CROP_224.resize, ...ZOO.map((e) => e.preprocessing.resize)])];

export function triple(value: string): [number, number, number] {
  const parts = value.split(',').map(Number);
  if (parts.length !== 3 || !parts.every(Number.isFinite)) throw new InvalidArgumentError('not three numbers like 0.485,0.456,0.406');
  return parts as [number, number, number];
}

function feature(value: string): { tensor: string; pooling: Pooling } {
  const at = value.lastIndexOf(':');
  const pooling = at > 0 ? value.slice(at + 1) : '';
  if (at > 0 && (POOLINGS as readonly string[]).includes(pooling)) return { tensor: value.slice(0, at), pooling: pooling as Pooling };
  return { tensor: value, pooling: DEFAULT_POOLING };
}

const BACKBONE_GROUP = 'Backbone options:';

/**
 * `--base` and the options that say how to feed a network outside the zoo; with `cut`, also
 * `--feature` (where to cut it), which only means something where features are taken (train).
 */
export function addBackboneOptions(cmd: Command, o: { baseHelp: string; defaultBase?: string; cut: boolean }): Command {
  cmd.optionsGroup(BACKBONE_GROUP).option('--base <id|path|url>', o.baseHelp, o.defaultBase ?? DEFAULT_BACKBONE);
  if (o.cut) cmd.addOption(featureOption());
  return addPreprocessingOptions(cmd);
}

/** `--base a,b` as train()'s `base`: several comma-separated backbones are an ensemble. */
export function baseOption(value: string | undefined): string | string[] | undefined {
  return value?.includes(',') ? value.split(',').map((b) => b.trim()) : value;
}

/** `--feature`: the tensor features are cut at. */
export function featureOption(description = "feature tensor to cut at ('headswap inspect' lists them)"): Option {
  return decidedDefault(
    '--feature <tensor[:pooling]>',
    `${description}; pooling: ${POOLINGS.join(', ')} (${DEFAULT_POOLING} unless given)`,
    "the zoo entry's cut, else the input of the network's final classifier",
    feature,
  ).helpGroup(BACKBONE_GROUP);
}

/** How images become a network's input, for a network outside the zoo. */
function addPreprocessingOptions(cmd: Command): Command {
  return cmd
    .optionsGroup(BACKBONE_GROUP)
    .addOption(decidedDefault('--size <HxW>', 'input size, for models whose size is open', "the model's own", size))
    .addOption(decidedDefault('--resize <policy>', 'crop: shorter side then center crop; squash; pad', `the backbone's own: ${DEFAULT_RESIZES.join(' or ')}`).choices(['crop', 'squash', 'pad']))
    .addOption(decidedDefault('--scale <x>', 'multiply pixel values (0-255) by this first', "the backbone's own", positive))
    .addOption(decidedDefault('--mean <r,g,b>', 'per-channel mean subtracted after scaling', "the backbone's own", triple))
    .addOption(decidedDefault('--std <r,g,b>', 'per-channel std divided by after the mean', "the backbone's own", triple))
    // On a machine busy with other work, fewer threads than cores can be faster (measured: 1 beat 2 on a loaded 2-core box).
    .addOption(decidedDefault('--threads <n>', 'onnxruntime intra-op threads', 'all cores', int(1, 1024)));
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
