import { HeadswapError } from '../errors.js';
import { tensor, withSession, type TensorType } from '../runtime/session.js';
import { cloneModel, realInputs } from './edit.js';
import { encodeModel, type ModelProto } from './proto.js';

export interface TensorInfo {
  readonly name: string;
  readonly op: string;
  readonly type: string;
  readonly dims: readonly number[];
}

const ORT_TYPES: Record<number, TensorType> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64' };

/**
 * Lists every tensor a model computes with its real shape, by running the model once on a
 * zero input with all intermediate tensors exposed as outputs (ONNX has no shape inference in JS).
 */
export async function inspectModel(model: ModelProto, name: string, batch = 1): Promise<TensorInfo[]> {
  const probe = cloneModel(model);
  const g = probe.graph!;
  const inputs = realInputs(probe);
  if (inputs.length !== 1) {
    throw new HeadswapError(`${name}: model has ${inputs.length} inputs (${inputs.join(', ')}); an image backbone has exactly one`);
  }
  const input = g.input!.find((i) => i.name === inputs[0])!;
  const tt = input.type?.tensorType;
  const dims = (tt?.shape?.dim ?? []).map((d) => (d.dimValue != null && Number(d.dimValue) > 0 ? Number(d.dimValue) : batch));
  const type = ORT_TYPES[tt?.elemType ?? 1];
  if (!type || dims.length !== 4) {
    throw new HeadswapError(`${name}: input '${input.name}' is not an image tensor (want rank 4, got [${dims.join(',')}])`);
  }
  const ops = new Map<string, string>();
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) ops.set(o, n.opType ?? '');
  g.output = [...ops.keys()].map((o) => ({ name: o }));
  // headswap's usual session settings, optimizations off so each tensor the graph names is computed.
  const loadError = (reason: string): string => `${name}: onnxruntime cannot load the model (${reason})`;
  return withSession(encodeModel(probe), { optimize: false, loadError }, async (session) => {
    const size = dims.reduce((a, b) => a * b, 1);
    const data = type === 'float32' ? new Float32Array(size) : type === 'int64' ? new BigInt64Array(size) : type === 'int32' ? new Int32Array(size) : type === 'int8' ? new Int8Array(size) : new Uint8Array(size);
    const result = await session.run({ [input.name!]: tensor(type, data, dims) });
    return [...ops.entries()].map(([output, op]) => {
      const t = result[output];
      return { name: output, op, type: t?.type ?? '?', dims: t ? [...t.dims] : [] };
    });
  });
}
