import ort from 'onnxruntime-node';
import { HeadswapError, describeError } from '../errors.js';
import { cloneModel, realInputs } from './edit.js';
import { encodeModel, type ModelProto } from './proto.js';

export interface TensorInfo {
  readonly name: string;
  readonly op: string;
  readonly type: string;
  readonly dims: readonly number[];
}

const ORT_TYPES: Record<number, ort.Tensor.Type> = { 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64' };

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
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(encodeModel(probe), { graphOptimizationLevel: 'disabled' });
  } catch (err) {
    throw new HeadswapError(`${name}: onnxruntime cannot load the model (${describeError(err)})`);
  }
  try {
    const size = dims.reduce((a, b) => a * b, 1);
    const data = type === 'float32' ? new Float32Array(size) : type === 'int64' ? new BigInt64Array(size) : type === 'int32' ? new Int32Array(size) : type === 'int8' ? new Int8Array(size) : new Uint8Array(size);
    const result = await session.run({ [input.name!]: new ort.Tensor(type, data, dims) });
    return [...ops.entries()].map(([tensor, op]) => {
      const t = result[tensor];
      return { name: tensor, op, type: t?.type ?? '?', dims: t ? [...t.dims] : [] };
    });
  } finally {
    await session.release();
  }
}
