import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuiltinOperator, Conv2DOptionsT, DepthwiseConv2DOptionsT, Padding, Pool2DOptionsT, SqueezeOptionsT, type ModelT } from '../../src/import/tflite/schema/tflite_generated.js';
import { packagePath } from '../../src/util/paths.js';
import { rewriteTflite } from './tflite.js';

/**
 * ArmNN's reference CPU backend (Debian's python3-pyarmnn, ArmNN 20.08) as an independent
 * TFLite runtime for parity checks: test/helpers/armnn-run.py runs the model.
 */

const PYTHON = '/usr/bin/python3';
const RUNNER = packagePath('test', 'helpers', 'armnn-run.py');

/** Why ArmNN cannot run here, or undefined when it can. */
export function armnnMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import pyarmnn'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `pyarmnn is not installed (apt-get install -y python3-pyarmnn): ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`;
}

/**
 * ArmNN 20.08's parser needs every tensor's shape in the file, where the MLIR converter leaves
 * computed ones empty: this fills them in for the operators of MobileNet-style classifiers
 * (ArmNN checks them against its own shape inference) and adds `extraOutputs` (tensor indices).
 */
export function armnnReady(bytes: Uint8Array, extraOutputs: readonly number[]): Uint8Array {
  return rewriteTflite(bytes, (model: ModelT) => {
    const g = model.subgraphs[0]!;
    const shape = (i: number): number[] => g.tensors[i]!.shape;
    for (const op of g.operators) {
      const oc = model.operatorCodes[op.opcodeIndex]!;
      const code = Math.max(oc.builtinCode, oc.deprecatedBuiltinCode);
      const x = shape(op.inputs[0]!);
      let y: number[];
      if (code === BuiltinOperator.CONV_2D || code === BuiltinOperator.DEPTHWISE_CONV_2D || code === BuiltinOperator.AVERAGE_POOL_2D || code === BuiltinOperator.MAX_POOL_2D) {
        const o = op.builtinOptions as Conv2DOptionsT | DepthwiseConv2DOptionsT | Pool2DOptionsT;
        const pool = o instanceof Pool2DOptionsT;
        const w = pool ? [0, o.filterHeight, o.filterWidth, x[3]!] : shape(op.inputs[1]!);
        const dil = pool ? [1, 1] : [(o as Conv2DOptionsT).dilationHFactor, (o as Conv2DOptionsT).dilationWFactor];
        const out = (n: number, k: number, s: number, d: number): number => (o.padding === Padding.SAME ? Math.ceil(n / s) : Math.floor((n - (k - 1) * d - 1) / s) + 1);
        const channels = code === BuiltinOperator.CONV_2D ? w[0]! : code === BuiltinOperator.DEPTHWISE_CONV_2D ? w[3]! : x[3]!;
        y = [1, out(x[1]!, w[1]!, o.strideH, dil[0]!), out(x[2]!, w[2]!, o.strideW, dil[1]!), channels];
      } else if (code === BuiltinOperator.ADD || code === BuiltinOperator.SOFTMAX || code === BuiltinOperator.QUANTIZE || code === BuiltinOperator.DEQUANTIZE) {
        y = x;
      } else if (code === BuiltinOperator.SQUEEZE) {
        const dims = (op.builtinOptions as SqueezeOptionsT).squeezeDims;
        y = x.filter((d, i) => (dims.length ? !dims.includes(i) : d !== 1));
      } else if (code === BuiltinOperator.RESHAPE) {
        const target = [...new Int32Array(Uint8Array.from(model.buffers[g.tensors[op.inputs[1]!]!.buffer]!.data).buffer)];
        const known = target.filter((d) => d >= 0).reduce((a, b) => a * b, 1);
        // ArmNN 20.08 takes no -1 in a stored shape.
        y = target.map((d) => (d < 0 ? x.reduce((a, b) => a * b, 1) / known : d));
      } else {
        throw new Error(`armnnReady: no shape rule for operator ${BuiltinOperator[code]}`);
      }
      g.tensors[op.outputs[0]!]!.shape = y;
    }
    g.outputs = [...g.outputs, ...extraOutputs];
  });
}

export interface ArmnnOutput {
  readonly name: string;
  readonly shape: number[];
  /** Dequantized values of all images, back to back. */
  readonly values: Float64Array;
  readonly scale: number;
}

/** Runs `count` inputs (raw, the input's own type, back to back) through the model on ArmNN's CpuRef backend. */
export async function runArmnn(model: Uint8Array, inputs: Uint8Array, count: number): Promise<ArmnnOutput[]> {
  const dir = await mkdtemp(join(tmpdir(), 'headswap-armnn-'));
  try {
    await writeFile(join(dir, 'model.tflite'), model);
    await writeFile(join(dir, 'inputs.bin'), inputs);
    const r = spawnSync(PYTHON, [RUNNER, join(dir, 'model.tflite'), join(dir, 'inputs.bin'), String(count), dir], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`ArmNN failed: ${r.stderr.trim().split('\n').at(-1)}`);
    const info = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { name: string; dtype: string; shape: number[]; scale: number; zeroPoint: number }[];
    return Promise.all(info.map(async (o, k) => {
      const raw = await readFile(join(dir, `${k}.bin`));
      const ints = o.dtype === 'uint8' ? new Uint8Array(raw.buffer, raw.byteOffset, raw.length) : o.dtype === 'int8' ? new Int8Array(raw.buffer, raw.byteOffset, raw.length) : undefined;
      const values = ints ? Float64Array.from(ints, (q) => (q - o.zeroPoint) * o.scale) : Float64Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)));
      return { name: o.name, shape: o.shape, values, scale: ints ? o.scale : 0 };
    }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** How far two runs of a quantized output are apart, in values and in steps of its grid. */
export interface Diff {
  readonly maxAbsDiff: number;
  readonly meanAbsDiff: number;
  /** The tensor's quantization step. */
  readonly step: number;
  readonly maxSteps: number;
  /** Fraction of values on the same grid point. */
  readonly identical: number;
  /** Fraction of values at most one grid step apart (a tie rounded the other way). */
  readonly withinOneStep: number;
}

export function diff(a: ArrayLike<number>, b: ArrayLike<number>, step: number): Diff {
  if (a.length !== b.length) throw new Error(`diff: ${a.length} values against ${b.length}`);
  let max = 0;
  let sum = 0;
  let same = 0;
  let near = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    max = Math.max(max, d);
    sum += d;
    if (d < step / 2) same++;
    if (d < 1.5 * step) near++;
  }
  return { maxAbsDiff: +max.toPrecision(4), meanAbsDiff: +(sum / a.length).toPrecision(4), step: +step.toPrecision(6), maxSteps: Math.round(max / step), identical: +(same / a.length).toFixed(4), withinOneStep: +(near / a.length).toFixed(5) };
}
