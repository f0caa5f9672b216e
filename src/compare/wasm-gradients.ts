/**
 * Makes TensorFlow.js's wasm backend able to train a convnet in Node, and fast at it.
 *
 * The wasm backend has no `Conv2DBackpropFilter` kernel (the weight gradient of a convolution),
 * and its `Conv2DBackpropInput` is a plain loop. Both are replaced here by XNNPACK's fast forward
 * convolution on rearranged tensors. Measured on this 2-core machine (Node 20, wasm SIMD, one
 * thread, other jobs running, so +-50%), batch 32, 3x3 'same' convolutions from 64x64x3->16 to
 * 8x8x64->128:
 * - weight gradient, per layer: as a forward convolution 31-69 ms; im2col (9 strided slices,
 *   one matMul) 90-340 ms; one matMul per filter tap 220-450 ms; hand-written JS loops
 *   300-900 ms; wasm's Conv3DBackpropFilterV2 with a depth of 1, 370-670 ms; the cpu backend's
 *   kernel (data copied over and back) 18-44 s, which makes a training step take minutes;
 * - input gradient, per layer: as a forward convolution 13-23 ms, wasm's own kernel 104-279 ms.
 * A training step of the scratch network (scratch.ts, batch 32, 64 px) takes 0.76 s with these
 * kernels. The cpu backend alone did not finish one step in 2.5 minutes (no SIMD, and the same
 * weight-gradient kernel). Multi-threaded wasm does not start in Node (its workers load from
 * blob: URLs), hence one thread.
 *
 * Node's CommonJS build of tfjs-core registers no gradient functions; importing tfjs-layers
 * (whose Node bundle carries and registers all of them) is what makes `fit` and `tf.grads` work,
 * so it is imported here for that side effect too.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// Registers the 'wasm' backend; in Node it loads its .wasm binaries from its own dist folder.
import '@tensorflow/tfjs-backend-wasm';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-layers';

const WASM = 'wasm';

type Attrs = tf.NamedAttrMap;
interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: BackendWasm;
  attrs: Attrs;
}

function input(inputs: tf.NamedTensorInfoMap, name: string): tf.TensorInfo {
  const t = inputs[name];
  if (!t) throw new Error(`kernel input '${name}' is missing`);
  return t;
}

/** A Tensor over a kernel input's data; its own reference, so disposing it leaves the input alive. */
function wrap(backend: BackendWasm, t: tf.TensorInfo): tf.Tensor {
  backend.incRef(t.dataId);
  return tf.engine().makeTensorFromTensorInfo(t);
}

function convInfo(xShape: number[], filterShape: [number, number, number, number], attrs: tf.Conv2DBackpropFilterAttrs | tf.Conv2DBackpropInputAttrs): tf.backend_util.Conv2DInfo {
  const x = xShape as [number, number, number, number];
  return tf.backend_util.computeConv2DInfo(x, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, tf.backend_util.convertConv2DDataFormat(attrs.dataFormat));
}

function stride1Nhwc(ci: tf.backend_util.Conv2DInfo): boolean {
  return ci.strideHeight === 1 && ci.strideWidth === 1 && ci.dataFormat === 'channelsLast';
}

/**
 * dW[ky,kx,c,f] = sum over n,y,x of xpad[n,y+ky,x+kx,c] * dy[n,y,x,f] (stride 1): a 'valid'
 * convolution of xpad with batch and channels swapped ([C,H,W,N]) by dy as the filter
 * ([OH,OW,N,F]), which XNNPACK runs as one large GEMM. Other strides and NCHW go through the cpu
 * backend's kernel (correct, slow; the networks here never use them).
 */
function conv2DBackpropFilter({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const x = input(inputs, 'x');
  const dy = input(inputs, 'dy');
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const ci = convInfo(x.shape, a.filterShape, a);
  if (!stride1Nhwc(ci)) return throughCpu(tf.Conv2DBackpropFilter, { x, dy }, backend, attrs);
  const p = ci.padInfo;
  return tf.tidy(() => {
    const xPadded = tf.pad(wrap(backend, x), [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]]);
    const byChannel = tf.transpose(xPadded, [3, 1, 2, 0]) as tf.Tensor4D;
    const dyFilter = tf.transpose(wrap(backend, dy), [1, 2, 0, 3]) as tf.Tensor4D;
    return tf.transpose(tf.conv2d(byChannel, dyFilter, 1, 'valid'), [1, 2, 0, 3]);
  });
}

/**
 * dX = dy (padded to a full correlation) convolved with the filter flipped in space and with its
 * in/out channels swapped (stride 1, padding at most filter-1, as 'same' and 'valid' are). Other
 * cases go to wasm's own kernel.
 */
function conv2DBackpropInput(original: tf.KernelFunc): (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[] {
  return (args) => {
    const { inputs, backend, attrs } = args;
    const dy = input(inputs, 'dy');
    const filter = input(inputs, 'filter');
    const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    const ci = convInfo(a.inputShape, filter.shape as [number, number, number, number], a);
    const p = ci.padInfo;
    const kh = ci.filterHeight - 1;
    const kw = ci.filterWidth - 1;
    if (!stride1Nhwc(ci) || Math.max(p.top, p.bottom) > kh || Math.max(p.left, p.right) > kw) return original(args);
    return tf.tidy(() => {
      const flipped = tf.transpose(tf.reverse(wrap(backend, filter), [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
      const dyFull = tf.pad(wrap(backend, dy), [[0, 0], [kh - p.top, kh - p.bottom], [kw - p.left, kw - p.right], [0, 0]]) as tf.Tensor4D;
      return tf.conv2d(dyFull, flipped, 1, 'valid');
    });
  };
}

/** Runs the cpu backend's kernel on copies of the inputs and copies the result back. */
function throughCpu(kernelName: string, inputs: Record<string, tf.TensorInfo>, backend: BackendWasm, attrs: Attrs): tf.TensorInfo {
  const cpu = tf.findBackend('cpu');
  const kernel = tf.getKernel(kernelName, 'cpu');
  if (!cpu || !kernel) throw new Error(`the cpu backend is needed for ${kernelName} and is not registered`);
  const copies: tf.NamedTensorInfoMap = {};
  for (const [name, t] of Object.entries(inputs)) {
    copies[name] = { dataId: cpu.write(backend.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
  }
  const out = kernel.kernelFunc({ inputs: copies, backend: cpu, attrs }) as tf.TensorInfo;
  const values = cpu.readSync(out.dataId);
  for (const t of [...Object.values(copies), out]) if (t) cpu.disposeData(t.dataId);
  return backend.makeOutput(out.shape, out.dtype, undefined, values);
}

let registered = false;

/** Registers the replacement kernels for the wasm backend (once per process). */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  const original = tf.getKernel(tf.Conv2DBackpropInput, WASM);
  if (!original) throw new Error('the wasm backend has no Conv2DBackpropInput kernel to fall back on');
  const replace = (kernelName: string, kernelFunc: (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[], setupFunc?: tf.KernelSetupFunc): void => {
    if (tf.getKernel(kernelName, WASM)) tf.unregisterKernel(kernelName, WASM);
    tf.registerKernel({ kernelName, backendName: WASM, kernelFunc: kernelFunc as unknown as tf.KernelFunc, setupFunc });
  };
  replace(tf.Conv2DBackpropFilter, conv2DBackpropFilter);
  // The fallback calls the original kernel, whose setup binds its wasm function at backend start.
  replace(tf.Conv2DBackpropInput, conv2DBackpropInput(original.kernelFunc), original.setupFunc);
  registered = true;
}

/**
 * Switches TensorFlow.js to the wasm backend with the training kernels; returns a function that
 * switches back to the backend that was active before, so other TensorFlow.js code in the process keeps its own.
 */
export async function useWasmBackend(): Promise<() => Promise<void>> {
  registerWasmTrainingKernels();
  // Prod mode only silences tfjs warnings (the cpu backend's banner, should the fallback start it).
  tf.enableProdMode();
  const previous = tf.engine().backendName;
  if (!(await tf.setBackend(WASM))) throw new Error('the TensorFlow.js wasm backend failed to start');
  return async () => {
    if (previous && previous !== WASM) await tf.setBackend(previous);
  };
}

/** e.g. "TensorFlow.js 4.22.0 (wasm backend, SIMD, 1 thread, + headswap's convolution-gradient kernels)". */
export async function wasmLibrary(): Promise<string> {
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) ? ', SIMD' : '';
  return `TensorFlow.js ${tf.version_core} (wasm backend${simd}, 1 thread, + headswap's convolution-gradient kernels)`;
}
