import type { InferenceSession } from 'onnxruntime-web';
import type { LabelScore, ModelDetail } from '../../src/server/api-types.js';
import { modelBytes } from './api.js';
import { toPixels } from './preprocess.js';

type Ort = typeof import('onnxruntime-web/wasm');

let ort: Promise<Ort> | undefined;
const sessions = new Map<string, Promise<InferenceSession>>();

/** onnxruntime-web's wasm build, loaded on first use (its wasm file is served by headswap itself). */
function loadOrt(): Promise<Ort> {
  ort ??= import('onnxruntime-web/wasm').then((m) => {
    // Threads need cross-origin isolation; one thread keeps the page simple and is fast enough for 224 px.
    m.env.wasm.numThreads = 1;
    return m;
  });
  return ort;
}

function session(model: ModelDetail): Promise<InferenceSession> {
  let s = sessions.get(model.id);
  if (!s) {
    s = (async () => {
      const runtime = await loadOrt();
      return runtime.InferenceSession.create(await modelBytes(model), { executionProviders: ['wasm'] });
    })();
    s.catch(() => sessions.delete(model.id));
    sessions.set(model.id, s);
  }
  return s;
}

/** Downloads the model and the runtime ahead of the first photo. */
export async function prepare(model: ModelDetail): Promise<void> {
  await session(model);
}

/** The model's top-k for one image, computed in this browser: the same ranking rule as the server (ties to the lower index). */
export async function classifyInBrowser(model: ModelDetail, image: Blob, top: number): Promise<LabelScore[]> {
  // Decode while the runtime and session load (the first photo), then one shared run path.
  const [pixels] = await Promise.all([toPixels(image, model.preprocessing), session(model)]);
  return classifyInput(model, pixels, top);
}

/** The top-k of input already made (uint8 RGB at the model's size, row-major; the live preview's webcam frames via inputFromRgba). */
export async function classifyInput(model: ModelDetail, input: Uint8Array, top: number): Promise<LabelScore[]> {
  const [runtime, s] = await Promise.all([loadOrt(), session(model)]);
  const [h, w] = model.input.size;
  const out = await s.run({ [model.input.name]: new runtime.Tensor('uint8', input, [1, h, w, 3]) });
  const name = s.outputNames[0];
  const probs = name ? (out[name]?.data as Float32Array | undefined) : undefined;
  if (!probs) throw new Error('the model gave no output');
  return [...probs]
    .map((probability, index) => ({ label: model.labels[index] ?? String(index), index, probability }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, Math.max(1, Math.min(top, model.labels.length)));
}
