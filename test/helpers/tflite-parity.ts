import { readFile } from 'node:fs/promises';
import { convertTflite, readTflite } from '../../src/import/index.js';
import { loadRgb, packBatch } from '../../src/image/preprocess.js';
import type { Preprocessing } from '../../src/image/types.js';
import { PIXELS, addPixelsPrefix } from '../../src/onnx/edit.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { createSession, tensor } from '../../src/runtime/session.js';
import { armnnReady, diff, runArmnn, type Diff } from './armnn.js';

/**
 * Parity of a quantized .tflite model converted by headswap with ArmNN's reference backend on
 * real photos: the model's first output and one feature map, from onnxruntime with headswap's
 * session settings (QDQ pairs fused into integer kernels) and unfused (float arithmetic rounded to
 * each tensor's grid, as ArmNN's reference backend computes), and how many leading operators
 * agree within one step. Shared by bench/tflite-parity.ts and test/e2e/tflite-parity.test.ts.
 */
export interface ParityReport {
  readonly model: string;
  readonly photos: number;
  readonly reference: string;
  /**
   * Photos whose top-1 the reference decides by more than uint8 noise can move: its lead over the
   * runner-up exceeds twice the largest output difference between the runtimes on that photo (a
   * swap needs one class up and the other down). Top-1 agreement is counted on these only.
   */
  readonly decisivePhotos: number;
  /** headswap's runtime: onnxruntime with its session settings. */
  readonly onnxruntime: { readonly output: Diff; readonly feature: Diff; readonly top1Agreement: number };
  /** onnxruntime with graph optimizations off: every QuantizeLinear/DequantizeLinear pair kept. */
  readonly unfused: { readonly output: Diff; readonly feature: Diff; readonly top1Agreement: number; readonly leadingOperatorsWithinOneStep: number; readonly operators: number };
  readonly seconds: { readonly armnn: number; readonly onnxruntime: number };
}

function argmaxes(values: ArrayLike<number>, rows: number): number[] {
  const n = values.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let k = 1; k < n; k++) if (values[r * n + k]! > values[r * n + best]!) best = k;
    return best;
  });
}

export async function tfliteParity(file: string, photos: readonly string[], pre: Preprocessing, featureName: string): Promise<ParityReport> {
  const bytes = new Uint8Array(await readFile(file));
  const model = readTflite(bytes, file);
  const feature = model.tensors.findIndex((t) => !t.data && t.name.split(';')[0] === featureName);
  if (feature < 0) throw new Error(`${file}: no tensor '${featureName}'`);
  const output = model.outputs[0]!;
  const ops = model.operators.map((o) => o.outputs[0]!);
  const step = (i: number): number => model.tensors[i]!.quantization?.scale[0] ?? 0;
  const images = await Promise.all(photos.map((p) => loadRgb(p, pre)));
  const pixels = packBatch(images);
  const [h, w] = pre.size;
  const feeds = { [PIXELS]: tensor('uint8', pixels, [images.length, h, w, 3]) };

  const t0 = performance.now();
  const fusedModel = convertTflite({ ...model, outputs: [output, feature] });
  addPixelsPrefix(fusedModel.model, pre);
  const fusedSession = await createSession(encodeModel(fusedModel.model));
  const fused = await fusedSession.run(feeds);
  await fusedSession.release();
  const everyOp = convertTflite({ ...model, outputs: ops });
  addPixelsPrefix(everyOp.model, pre);
  const unfusedSession = await createSession(encodeModel(everyOp.model), { optimize: false });
  const unfused = await unfusedSession.run(feeds);
  await unfusedSession.release();
  const ortSeconds = (performance.now() - t0) / 1000;

  // A uint8-input model takes the pixel bytes themselves (q = p).
  const t1 = performance.now();
  const extra = ops.filter((i) => i !== output);
  const arm = await runArmnn(armnnReady(bytes, extra), pixels, images.length);
  const armSeconds = (performance.now() - t1) / 1000;
  const reference = new Map<number, Float64Array>([[output, arm[0]!.values], ...extra.map((i, k) => [i, arm[k + 1]!.values] as const)]);

  const get = (r: typeof fused, name: string): Float32Array => r[name]!.data as Float32Array;
  const want = reference.get(output)!;
  const fusedOut = get(fused, fusedModel.outputs[0]!);
  const unfusedOut = get(unfused, everyOp.outputs[ops.indexOf(output)]!);
  const classes = want.length / images.length;
  const decisive = Array.from({ length: images.length }, (_, r) => {
    const row = (v: ArrayLike<number>): number[] => Array.from({ length: classes }, (_, k) => v[r * classes + k]!);
    const [first, second] = row(want).sort((a, b) => b - a);
    const noise = Math.max(...[fusedOut, unfusedOut].map((got) => diff(row(got), row(want), 1).maxAbsDiff));
    return first! - second! > 2 * noise;
  });
  const top1 = (got: Float32Array): number => {
    const a = argmaxes(got, images.length);
    const b = argmaxes(want, images.length);
    const counted = a.map((v, i) => [v === b[i], decisive[i]]).filter(([, d]) => d);
    return counted.length === 0 ? Number.NaN : counted.filter(([same]) => same).length / counted.length;
  };
  // Same arithmetic gives the same grid points but for ties rounded the other way; a tie's one-step
  // difference can grow by a step in the next layer, so a few values two steps apart are still agreement.
  let close = 0;
  while (close < ops.length && diff(get(unfused, everyOp.outputs[close]!), reference.get(ops[close]!)!, step(ops[close]!)).withinOneStep >= 0.999) close++;
  return {
    model: file,
    photos: images.length,
    reference: 'ArmNN 20.08 CpuRef backend (Debian python3-pyarmnn)',
    decisivePhotos: decisive.filter(Boolean).length,
    onnxruntime: { output: diff(fusedOut, want, step(output)), feature: diff(get(fused, fusedModel.outputs[1]!), reference.get(feature)!, step(feature)), top1Agreement: top1(fusedOut) },
    unfused: {
      output: diff(unfusedOut, want, step(output)),
      feature: diff(get(unfused, everyOp.outputs[ops.indexOf(feature)]!), reference.get(feature)!, step(feature)),
      top1Agreement: top1(unfusedOut),
      leadingOperatorsWithinOneStep: close,
      operators: ops.length,
    },
    seconds: { armnn: +armSeconds.toFixed(1), onnxruntime: +ortSeconds.toFixed(1) },
  };
}
