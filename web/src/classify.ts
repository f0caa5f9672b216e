import type { LabelScore, ModelDetail, ModelSummary } from '../../src/server/api-types.js';
import { classifyOnServer, getModel, listModels } from './api.js';
import { classifyInBrowser, prepare } from './browser-model.js';
import { bar, byId, h, onDrop, percent } from './dom.js';

export interface ClassifyPanel {
  /** Reloads the model list, selecting `select` (or keeping the current choice). */
  refresh(select?: string): Promise<void>;
}

export function setupClassify(): ClassifyPanel {
  const select = byId<HTMLSelectElement>('model-select');
  const topInput = byId<HTMLInputElement>('top-k');
  const inBrowser = byId<HTMLInputElement>('in-browser');
  const browserStatus = byId('browser-status');
  const info = byId('model-info');
  const results = byId('results');
  const empty = byId('classify-empty');
  let models: ModelSummary[] = [];
  const details = new Map<string, Promise<ModelDetail>>();

  const chosen = (): ModelSummary | undefined => models.find((m) => m.id === select.value);
  const detail = (m: ModelSummary): Promise<ModelDetail> => {
    let d = details.get(m.id);
    if (!d) {
      d = getModel(m.id);
      d.catch(() => details.delete(m.id));
      details.set(m.id, d);
    }
    return d;
  };

  function showInfo(): void {
    const m = chosen();
    empty.hidden = models.length > 0;
    if (!m) {
      info.replaceChildren();
      return;
    }
    const links: (HTMLElement | string)[] = [' · ', h('a', { href: m.links.download, download: `${m.id}.zip` }, 'download')];
    if (m.links.report) links.push(' · ', h('a', { href: m.links.report, target: '_blank', rel: 'noopener' }, 'report'));
    info.replaceChildren(
      `${m.labels.length} classes (${m.labels.join(', ')}) · top-1 ${percent(m.metrics.top1)} on ${m.metrics.testPhotos} test photos · backbone ${m.backbone.id}`,
      ...links,
    );
  }

  async function prepareBrowser(): Promise<void> {
    const m = chosen();
    if (!inBrowser.checked || !m) {
      browserStatus.textContent = '';
      return;
    }
    browserStatus.textContent = 'loading the model into the browser...';
    browserStatus.dataset.state = 'loading';
    try {
      await prepare(await detail(m));
      browserStatus.textContent = 'runs in this browser (onnxruntime-web, wasm)';
      browserStatus.dataset.state = 'ready';
    } catch (err) {
      browserStatus.textContent = `cannot run in the browser: ${(err as Error).message}`;
      browserStatus.dataset.state = 'error';
    }
  }

  async function refresh(pick?: string): Promise<void> {
    const previous = pick ?? select.value;
    models = await listModels();
    select.replaceChildren(...models.map((m) => h('option', { value: m.id }, `${m.id} (${m.labels.length} classes)`)));
    if (models.some((m) => m.id === previous)) select.value = previous;
    showInfo();
    await prepareBrowser();
  }

  function render(card: HTMLElement, top: readonly LabelScore[], source: string, ms: number): void {
    card.dataset.state = 'done';
    card.dataset.source = source;
    card.dataset.top1 = top[0]?.label ?? '';
    card.querySelector('.badge')!.textContent = `${source} · ${ms.toFixed(0)} ms`;
    card.querySelector('.bars')!.replaceChildren(...top.map((t) => bar(t.label, t.probability)));
  }

  async function classifyOne(image: File): Promise<void> {
    const m = chosen();
    if (!m) return;
    const card = h(
      'article',
      { class: 'result', 'data-state': 'pending', 'data-name': image.name },
      h('img', { src: URL.createObjectURL(image), alt: image.name }),
      h('div', { class: 'result-body' }, h('p', { class: 'name' }, image.name), h('p', { class: 'badge muted' }, 'classifying...'), h('div', { class: 'bars' })),
    );
    results.prepend(card);
    const top = Math.max(1, Number(topInput.value) || 3);
    const t0 = performance.now();
    try {
      if (inBrowser.checked) render(card, await classifyInBrowser(await detail(m), image, top), 'browser', performance.now() - t0);
      else render(card, (await classifyOnServer(m, image, top)).top, 'server', performance.now() - t0);
    } catch (err) {
      card.dataset.state = 'error';
      card.querySelector('.badge')!.textContent = '';
      card.querySelector('.bars')!.replaceChildren(h('p', { class: 'error' }, (err as Error).message));
    }
  }

  async function classifyAll(files: File[]): Promise<void> {
    // One at a time: the results appear in order and the server is not flooded.
    for (const f of files) await classifyOne(f);
  }

  const fileInput = byId<HTMLInputElement>('classify-files');
  fileInput.addEventListener('change', () => {
    void classifyAll([...(fileInput.files ?? [])]);
    fileInput.value = '';
  });
  onDrop(byId('classify-drop'), (files) => void classifyAll(files));
  select.addEventListener('change', () => {
    showInfo();
    void prepareBrowser();
  });
  inBrowser.addEventListener('change', () => void prepareBrowser());
  setupWebcam((snapshot) => void classifyOne(snapshot));
  return { refresh };
}

/** A webcam preview whose snapshots are classified like dropped photos. */
function setupWebcam(onSnapshot: (image: File) => void): void {
  const panel = byId('webcam');
  const video = byId<HTMLVideoElement>('webcam-video');
  const error = byId('webcam-error');
  let stream: MediaStream | undefined;
  const stop = (): void => {
    stream?.getTracks().forEach((t) => t.stop());
    stream = undefined;
    video.srcObject = null;
    panel.hidden = true;
  };
  byId('webcam-open').addEventListener('click', async () => {
    error.hidden = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true });
      video.srcObject = stream;
      panel.hidden = false;
    } catch (err) {
      error.textContent = `No webcam: ${(err as Error).message}`;
      error.hidden = false;
    }
  });
  byId('webcam-close').addEventListener('click', stop);
  byId('webcam-snap').addEventListener('click', () => {
    if (!video.videoWidth) return;
    const canvas = h('canvas', { width: String(video.videoWidth), height: String(video.videoHeight) });
    canvas.getContext('2d')?.drawImage(video, 0, 0);
    canvas.toBlob(
      (blob) => {
        if (blob) onSnapshot(new File([blob], `webcam ${new Date().toLocaleTimeString()}.jpg`, { type: 'image/jpeg' }));
      },
      'image/jpeg',
      0.92,
    );
  });
}
