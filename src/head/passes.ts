import { DataType, attr, encodeModel, floatTensor, int64Tensor, node, createModel, valueInfo, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto.js';
import { createSession, tensor, type Feeds, type Session, type Tensor } from '../runtime/session.js';

/** A dense layer of the head: row-major `[inputs, units]` kernel. */
export interface Layer {
  kernel: Float32Array;
  bias: Float32Array;
  inputs: number;
  units: number;
}

/**
 * The head's forward and backward passes as small ONNX graphs run by onnxruntime, with the
 * weights fed as inputs each step. On 750 rows of 12,800 region features this trains a softmax
 * head in 0.6 s where TensorFlow.js took 10.9 s (cpu backend) or 5.6 s (wasm): the matrices
 * are skinny (a handful of classes), so per-op overhead and memory traffic dominate, which
 * onnxruntime's GEMM keeps low. One intra-op thread: as fast here as two, and bit-reproducible.
 */
export class HeadPasses {
  private constructor(
    private readonly step: Session,
    private readonly forward: Session,
    private readonly layers: number,
  ) {}

  private static readonly made = new Map<string, Promise<HeadPasses>>();

  /** Passes for layers of these sizes ([d, hidden..., classes]); sessions are shared by shape. */
  static for(sizes: readonly number[]): Promise<HeadPasses> {
    const key = sizes.join(',');
    let made = HeadPasses.made.get(key);
    if (!made) {
      made = (async () => {
        // No loadError: these graphs are headswap's own, so a failure is a bug and keeps onnxruntime's error.
        const options = { threads: 1 };
        const [step, forward] = await Promise.all([
          createSession(encodeModel(passModel(sizes, true)), options),
          createSession(encodeModel(passModel(sizes, false)), options),
        ]);
        return new HeadPasses(step, forward, sizes.length - 1);
      })();
      // A failed creation is not cached: the next call tries again.
      made.catch(() => HeadPasses.made.delete(key));
      HeadPasses.made.set(key, made);
    }
    return made;
  }

  /**
   * Logits and data-term gradients for one batch of the objective
   *   sum_i(-t_i . log softmax(z_i)) / B  +  l2 * sum(kernel^2)
   * where t_i is the weighted, smoothed target row (summing to example i's class weight w_i), so
   * dL/dz_i = (w_i * softmax(z_i) - t_i) / B. The L2 term is added by the optimizer. Gradients
   * come back per layer as [kernel, bias].
   */
  async gradients(layers: readonly Layer[], x: Float32Array, t: Float32Array, rows: number): Promise<{ logits: Float32Array; grads: Float32Array[] }> {
    const out = await this.step.run({ ...this.weights(layers), x: matrix(x, rows), t: matrix(t, rows) });
    const grads = layers.flatMap((_, i) => [out[`gw${i}`]!.data as Float32Array, out[`gb${i}`]!.data as Float32Array]);
    return { logits: out.logits!.data as Float32Array, grads };
  }

  /** Logits of `n` standardized rows. */
  async logits(layers: readonly Layer[], x: Float32Array, n: number): Promise<Float32Array> {
    const out = await this.forward.run({ ...this.weights(layers), x: matrix(x, n) });
    return out.logits!.data as Float32Array;
  }

  private weights(layers: readonly Layer[]): Feeds {
    if (layers.length !== this.layers) throw new Error(`head passes built for ${this.layers} layers, got ${layers.length}`);
    const feeds: Feeds = {};
    layers.forEach((l, i) => {
      feeds[`w${i}`] = tensor('float32', l.kernel, [l.inputs, l.units]);
      feeds[`b${i}`] = tensor('float32', l.bias, [l.units]);
    });
    return feeds;
  }
}

function matrix(values: Float32Array, rows: number): Tensor {
  return tensor('float32', values, [rows, values.length / rows]);
}

/** Dense layers with ReLU between; with `backward`, also the gradients written out layer by layer. */
function passModel(sizes: readonly number[], backward: boolean): ModelProto {
  const nodes: NodeProto[] = [];
  const inputs = [valueInfo('x', DataType.FLOAT, ['rows', sizes[0]!])];
  const outputs = [valueInfo('logits', DataType.FLOAT, ['rows', sizes.at(-1)!])];
  const last = sizes.length - 2;
  // h{i} is layer i's input.
  nodes.push(node('Identity', ['x'], ['h0']));
  for (let i = 0; i <= last; i++) {
    inputs.push(valueInfo(`w${i}`, DataType.FLOAT, [sizes[i]!, sizes[i + 1]!]), valueInfo(`b${i}`, DataType.FLOAT, [sizes[i + 1]!]));
    nodes.push(node('Gemm', [`h${i}`, `w${i}`, `b${i}`], [i === last ? 'logits' : `z${i}`]));
    if (i < last) nodes.push(node('Relu', [`z${i}`], [`h${i + 1}`]));
  }
  const initializer: TensorProto[] = [];
  if (backward) {
    inputs.push(valueInfo('t', DataType.FLOAT, ['rows', sizes.at(-1)!]));
    initializer.push(int64Tensor('axis0', [1], [0]), int64Tensor('axis1', [1], [1]), int64Tensor('zero', [], [0]));
    nodes.push(
      node('Softmax', ['logits'], ['p'], [attr.int('axis', 1)]),
      node('ReduceSum', ['t', 'axis1'], ['w'], [attr.int('keepdims', 1)]),
      node('Mul', ['p', 'w'], ['wp']),
      node('Sub', ['wp', 't'], ['residual']),
      node('Shape', ['x'], ['shape']),
      node('Gather', ['shape', 'zero'], ['rows64'], [attr.int('axis', 0)]),
      node('Cast', ['rows64'], ['rows'], [attr.int('to', DataType.FLOAT)]),
      node('Div', ['residual', 'rows'], [`dz${last}`]),
    );
    for (let i = last; i >= 0; i--) {
      nodes.push(
        node('Gemm', [`h${i}`, `dz${i}`], [`gw${i}`], [attr.int('transA', 1)]),
        node('ReduceSum', [`dz${i}`, 'axis0'], [`gb${i}`], [attr.int('keepdims', 0)]),
      );
      outputs.push(valueInfo(`gw${i}`, DataType.FLOAT, [sizes[i]!, sizes[i + 1]!]), valueInfo(`gb${i}`, DataType.FLOAT, [sizes[i + 1]!]));
      if (i > 0) {
        // Back through the ReLU that produced this layer's input (h > 0 exactly where it passed).
        nodes.push(
          node('Gemm', [`dz${i}`, `w${i}`], [`dh${i}`], [attr.int('transB', 1)]),
          node('Greater', [`h${i}`, 'zerof'], [`on${i}`]),
          node('Cast', [`on${i}`], [`mask${i}`], [attr.int('to', DataType.FLOAT)]),
          node('Mul', [`dh${i}`, `mask${i}`], [`dz${i - 1}`]),
        );
      }
    }
    if (last > 0) initializer.push(floatTensor('zerof', [], [0]));
  }
  return createModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'headswap',
    graph: { name: backward ? 'head-step' : 'head-forward', node: nodes, initializer, input: inputs, output: outputs },
  });
}
