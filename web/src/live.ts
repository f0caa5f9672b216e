import type { LabelScore, ModelDetail } from '../../src/server/api-types.js';
import { drawFrame, hideCamera, showCamera } from './camera.js';
import { bar, byId } from './dom.js';
import { classifyInput } from './browser-model.js';
import { inputFromRgba } from './preprocess.js';

export interface LivePreview {
  /** Opens the webcam and classifies its frames until stopped. */
  start(): Promise<void>;
  stop(): void;
  /** The chosen model changed: the next frame uses the new one. */
  modelChanged(): void;
}

/** Frames per second over the last second of frames. */
const FPS_WINDOW_MS = 1000;

/**
 * The live preview: the webcam stream classified frame after frame in this browser
 * (onnxruntime-web), with the frame rate and the top classes as bars. One frame is in flight at a
 * time, so a slow machine shows fewer frames a second rather than a growing backlog.
 */
export function setupLive(options: { model: () => Promise<ModelDetail | undefined>; top: () => number }): LivePreview {
  const panel = byId('live');
  const video = byId<HTMLVideoElement>('live-video');
  const fps = byId('live-fps');
  const bars = byId('live-bars');
  const status = byId('live-status');
  const error = byId('live-error');
  const canvas = document.createElement('canvas');
  let run = 0;

  function show(model: ModelDetail, scores: readonly LabelScore[], rate: number, ms: number): void {
    panel.dataset.top1 = scores[0]?.label ?? '';
    panel.dataset.model = model.id;
    fps.textContent = `${rate.toFixed(1)} frames/s · ${ms.toFixed(0)} ms a frame`;
    status.textContent = `"${model.name}" in this browser (onnxruntime-web, wasm)`;
    bars.replaceChildren(...scores.map((s) => bar(s.label, s.probability)));
  }

  async function loop(id: number): Promise<void> {
    const times: number[] = [];
    let frames = 0;
    while (id === run) {
      const model = await options.model();
      if (!model) throw new Error('no model chosen; train one first');
      const t0 = performance.now();
      const g = drawFrame(video, canvas);
      const frame = g.getImageData(0, 0, canvas.width, canvas.height);
      const scores = await classifyInput(model, inputFromRgba(frame.data, frame.width, frame.height, model.preprocessing), options.top());
      if (id !== run) return;
      const now = performance.now();
      times.push(now);
      while (times.length > 0 && times[0]! < now - FPS_WINDOW_MS) times.shift();
      frames += 1;
      panel.dataset.frames = String(frames);
      const rate = times.length > 1 ? ((times.length - 1) * 1000) / (now - times[0]!) : 0;
      show(model, scores, rate, now - t0);
      // Lets the page paint and handle input between frames.
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
  }

  function stop(): void {
    run += 1;
    hideCamera(video);
    panel.hidden = true;
    panel.dataset.state = 'stopped';
  }

  async function start(): Promise<void> {
    const id = ++run;
    error.hidden = true;
    panel.hidden = false;
    panel.dataset.state = 'starting';
    status.textContent = 'starting the webcam and loading the model into the browser...';
    bars.replaceChildren();
    fps.textContent = '';
    try {
      await showCamera(video);
      if (id !== run) return;
      panel.dataset.state = 'running';
      await loop(id);
    } catch (err) {
      if (id !== run) return;
      stop();
      error.textContent = `The live preview stopped: ${(err as Error).message}`;
      error.hidden = false;
    }
  }

  byId('live-open').addEventListener('click', () => void start());
  byId('live-stop').addEventListener('click', stop);
  return {
    start,
    stop,
    modelChanged: () => {
      bars.replaceChildren();
      delete panel.dataset.top1;
    },
  };
}
