import type { LabelScore, ModelDetail, ModelSummary } from '../../src/server/api-types.js';
import { classifyOnServer, explainOnServer, getModel, listModels } from './api.js';
import { classifyInBrowser, prepare } from './browser-model.js';
import { frameFile, hideCamera, showCamera } from './camera.js';
import { bar, byId, h, onDrop, percent } from './dom.js';
import { setupLive } from './live.js';
import { notAPhoto, sniff, undecodable } from './photos.js';
import { accuracyCaveat, correctOf } from './stats.js';

export interface ClassifyPanel {
  /** Reloads the model list, selecting `select` (or keeping the current choice). */
  refresh(select?: string): Promise<void>;
  /** Starts the live webcam preview with the chosen model. */
  startLive(): Promise<void>;
  /** Stops it (and the camera, unless another view shows it). */
  stopLive(): void;
}

/** The model's name for people; two models of one name are told apart by when they were made. */
function label(m: ModelSummary, all: readonly ModelSummary[]): string {
  const twin = all.some((o) => o !== m && o.name === m.name);
  return twin ? `${m.name} (${new Date(m.createdAt).toLocaleString()})` : m.name;
}

export function setupClassify(): ClassifyPanel {
  const select = byId<HTMLSelectElement>('model-select');
  const topInput = byId<HTMLInputElement>('top-k');
  const inBrowser = byId<HTMLInputElement>('in-browser');
  const browserStatus = byId('browser-status');
  const info = byId('model-info');
  const results = byId('results');
  const resultsNote = byId('results-note');
  const empty = byId('classify-empty');
  let models: ModelSummary[] = [];
  /** The model the result cards on screen were made by. */
  let shownModel: string | undefined;
  const details = new Map<string, Promise<ModelDetail>>();

  const chosen = (): ModelSummary | undefined => models.find((m) => m.id === select.value);
  const top = (): number => Math.max(1, Math.min(20, Number(topInput.value) || 3));
  const detail = (m: ModelSummary): Promise<ModelDetail> => {
    let d = details.get(m.id);
    if (!d) {
      d = getModel(m.id);
      d.catch(() => details.delete(m.id));
      details.set(m.id, d);
    }
    return d;
  };

  const live = setupLive({ model: async () => {
    const m = chosen();
    return m ? detail(m) : undefined;
  }, top });

  function showInfo(): void {
    const m = chosen();
    empty.hidden = models.length > 0;
    if (!m) {
      info.replaceChildren();
      return;
    }
    const links: (HTMLElement | string)[] = [' · ', h('a', { href: m.links.download, download: `${m.id}.zip` }, 'download')];
    if (m.links.report) links.push(' · ', h('a', { href: m.links.report, target: '_blank', rel: 'noopener' }, 'report'));
    const n = m.metrics.testPhotos;
    const caveat = accuracyCaveat(correctOf(m.metrics.top1, n), n);
    info.replaceChildren(
      `${m.labels.length} classes (${m.labels.join(', ')}) · top-1 ${percent(m.metrics.top1)} on ${n} test photos · backbone ${m.backbone.id}`,
      ...links,
      ...(caveat ? [h('br'), h('span', { class: 'caveat' }, caveat)] : []),
    );
  }

  /** Result cards belong to the model that made them: switching models clears them (and says so). */
  function modelChanged(): void {
    const m = chosen();
    if (shownModel !== undefined && shownModel !== m?.id && results.childElementCount > 0) {
      const old = models.find((x) => x.id === shownModel);
      results.replaceChildren();
      resultsNote.textContent = `The results of "${old?.name ?? shownModel}" were cleared: you switched to "${m?.name ?? 'no model'}".`;
      resultsNote.hidden = false;
    }
    shownModel = m?.id;
    showInfo();
    live.modelChanged();
    void prepareBrowser();
  }

  async function prepareBrowser(): Promise<void> {
    const m = chosen();
    if (!inBrowser.checked || !m) {
      browserStatus.textContent = '';
      delete browserStatus.dataset.state;
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
    select.replaceChildren(...models.map((m) => h('option', { value: m.id, title: m.id }, `${label(m, models)} (${m.labels.length} classes)`)));
    if (models.some((m) => m.id === previous)) select.value = previous;
    modelChanged();
  }

  function render(card: HTMLElement, scores: readonly LabelScore[], source: string, ms: number): void {
    card.dataset.state = 'done';
    card.dataset.source = source;
    card.dataset.top1 = scores[0]?.label ?? '';
    card.querySelector('.badge')!.textContent = `${source} · ${ms.toFixed(0)} ms`;
    card.querySelector('.bars')!.replaceChildren(...scores.map((t) => bar(t.label, t.probability)));
  }

  function fail(card: HTMLElement, message: string): void {
    card.dataset.state = 'error';
    card.querySelector('.badge')!.textContent = '';
    card.querySelector('.bars')!.replaceChildren(h('p', { class: 'error' }, message));
  }

  async function classifyOne(image: File): Promise<void> {
    const m = chosen();
    if (!m) return;
    resultsNote.hidden = true;
    const preview = h('img', { src: URL.createObjectURL(image), alt: image.name });
    // What the browser cannot show gets a plain tile rather than a broken-image icon.
    preview.addEventListener('error', () => preview.replaceWith(h('span', { class: 'no-preview' }, 'no preview')), { once: true });
    const card = h(
      'article',
      { class: 'result', 'data-state': 'pending', 'data-name': image.name, 'data-model': m.id },
      preview,
      h(
        'div',
        { class: 'result-body' },
        h('p', { class: 'name' }, image.name),
        h('p', { class: 'model muted' }, `by ${m.name}`),
        h('p', { class: 'badge muted' }, 'classifying...'),
        h('div', { class: 'bars' }),
      ),
    );
    results.prepend(card);
    shownModel = m.id;
    const t0 = performance.now();
    if (inBrowser.checked) {
      const format = await sniff(image);
      if (!format) return fail(card, notAPhoto(image.name));
      try {
        render(card, await classifyInBrowser(await detail(m), image, top()), 'browser', performance.now() - t0);
      } catch (err) {
        // createImageBitmap's refusal ("The source image could not be decoded.") names neither the file nor the fix.
        fail(card, err instanceof DOMException ? undecodable(image.name, format) : (err as Error).message);
      }
      return;
    }
    try {
      render(card, (await classifyOnServer(m, image, top())).top, 'server', performance.now() - t0);
    } catch (err) {
      return fail(card, (err as Error).message);
    }
    addWhy(card, m, image);
  }

  /** "Why?": the regions of the photo that drove the predicted class (the server's activation map). */
  function addWhy(card: HTMLElement, m: ModelSummary, image: File): void {
    const out = h('div', { class: 'why' });
    const button = h('button', { type: 'button', class: 'why-button' }, 'why?');
    button.addEventListener('click', () => {
      button.disabled = true;
      out.replaceChildren(h('p', { class: 'muted' }, 'computing the activation map...'));
      explainOnServer(m, image).then(
        ({ png, label: cls, probability }) => {
          const map = h('img', { src: URL.createObjectURL(png), alt: `activation map for ${cls}`, class: 'why-map' });
          out.replaceChildren(map, h('p', { class: 'muted' }, `where the photo made ${m.name} say ${cls} (${percent(probability)}): brighter = more evidence`));
        },
        (err: unknown) => {
          button.disabled = false;
          out.replaceChildren(h('p', { class: 'error' }, (err as Error).message));
        },
      );
    });
    card.querySelector('.result-body')!.append(button, out);
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
  byId('results-clear').addEventListener('click', () => {
    results.replaceChildren();
    resultsNote.hidden = true;
  });
  select.addEventListener('change', modelChanged);
  inBrowser.addEventListener('change', () => void prepareBrowser());
  setupSnapshot((snapshot) => void classifyOne(snapshot));
  return { refresh, startLive: () => live.start(), stopLive: () => live.stop() };
}

/** A webcam preview whose snapshots are classified like dropped photos. */
function setupSnapshot(onSnapshot: (image: File) => void): void {
  const panel = byId('webcam');
  const video = byId<HTMLVideoElement>('webcam-video');
  const error = byId('webcam-error');
  const stop = (): void => {
    hideCamera(video);
    panel.hidden = true;
  };
  byId('webcam-open').addEventListener('click', async () => {
    error.hidden = true;
    panel.hidden = false;
    try {
      await showCamera(video);
    } catch (err) {
      stop();
      error.textContent = `No webcam: ${(err as Error).message}`;
      error.hidden = false;
    }
  });
  byId('webcam-close').addEventListener('click', stop);
  byId('webcam-snap').addEventListener('click', () => {
    if (!video.videoWidth) return;
    void frameFile(video, `webcam ${new Date().toLocaleTimeString()}.jpg`).then(onSnapshot);
  });
}
