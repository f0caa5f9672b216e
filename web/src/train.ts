import type { JobProgress, JobResult, JobView } from '../../src/server/api-types.js';
import { followJob, getJob, listJobs, submitJob } from './api.js';
import { bar, byId, h, onDrop, percent } from './dom.js';

/** The server refuses smaller classes: each needs a training, a validation and a test photo. */
const MIN_PHOTOS = 3;
const PREVIEWS_PER_CLASS = 12;

interface ClassDraft {
  readonly name: string;
  readonly files: File[];
  readonly card: HTMLElement;
}

export interface TrainCallbacks {
  /** A job made a model: the classify panel should list it. */
  modelReady(id: string): Promise<void>;
  /** "Use it now": classify with this model. */
  useModel(id: string): Promise<void>;
}

export function setupTrain(callbacks: TrainCallbacks): void {
  const drafts: ClassDraft[] = [];
  const classes = byId('classes');
  const trainButton = byId<HTMLButtonElement>('train');
  const hint = byId('train-hint');
  const nameInput = byId<HTMLInputElement>('class-name');
  const jobPanel = byId('job');
  const status = byId('job-status');
  const progress = byId<HTMLProgressElement>('job-progress');
  const resultBox = byId('job-result');
  let busy = false;

  function updateButton(): void {
    const small = drafts.find((d) => d.files.length < MIN_PHOTOS);
    trainButton.disabled = busy || drafts.length < 2 || small !== undefined;
    hint.textContent =
      drafts.length < 2 ? 'Add at least 2 classes with 3 photos each.' : small ? `Class "${small.name}" needs at least ${MIN_PHOTOS} photos.` : `${drafts.reduce((n, d) => n + d.files.length, 0)} photos in ${drafts.length} classes.`;
  }

  function addFiles(draft: ClassDraft, files: readonly File[]): void {
    const shown = draft.files.length;
    draft.files.push(...files);
    draft.card.querySelector('.count')!.textContent = `${draft.files.length} photo${draft.files.length === 1 ? '' : 's'}`;
    const thumbs = draft.card.querySelector('.thumbs')!;
    for (const f of files.slice(0, Math.max(0, PREVIEWS_PER_CLASS - shown))) thumbs.append(h('img', { src: URL.createObjectURL(f), alt: f.name }));
    updateButton();
  }

  function addClass(name: string): void {
    const input = h('input', { type: 'file', accept: 'image/*', multiple: '', hidden: '', class: 'class-files' });
    const remove = h('button', { type: 'button', class: 'link', title: `remove ${name}` }, 'remove');
    const zone = h('div', { class: 'dropzone small' }, h('span', {}, 'Drop photos or '), h('label', { class: 'button secondary' }, 'add photos', input));
    const card = h('div', { class: 'class-card', 'data-class': name }, h('div', { class: 'class-head' }, h('h3', {}, name), h('span', { class: 'count muted' }, '0 photos'), remove), zone, h('div', { class: 'thumbs' }));
    const draft: ClassDraft = { name, files: [], card };
    input.addEventListener('change', () => {
      addFiles(draft, [...(input.files ?? [])]);
      input.value = '';
    });
    onDrop(zone, (files) => addFiles(draft, files));
    remove.addEventListener('click', () => {
      drafts.splice(drafts.indexOf(draft), 1);
      card.remove();
      updateButton();
    });
    drafts.push(draft);
    classes.append(card);
    updateButton();
  }

  byId<HTMLFormElement>('add-class').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    nameInput.setCustomValidity('');
    // The same rules as the server's, so the mistake shows before the upload.
    const problem = !name ? 'Give the class a name.' : /[/\\]/.test(name) || name.startsWith('.') ? 'No slashes, and no dot at the start.' : drafts.some((d) => d.name === name) ? 'There is already a class with that name.' : '';
    if (problem) {
      nameInput.setCustomValidity(problem);
      nameInput.reportValidity();
      return;
    }
    addClass(name);
    nameInput.value = '';
  });

  function showProgress(p: JobProgress): void {
    const eta = p.etaSeconds !== undefined && p.done < p.total ? ` · about ${p.etaSeconds} s left` : '';
    status.textContent = p.total > 0 ? `${p.step}: ${p.done} of ${p.total} ${p.unit ?? 'images'}${eta}` : `${p.step}...`;
    if (p.total > 0) progress.value = p.done / p.total;
    else progress.removeAttribute('value');
  }

  function showJob(job: JobView): void {
    jobPanel.hidden = false;
    jobPanel.dataset.status = job.status;
    jobPanel.dataset.job = job.id;
    if (job.status === 'queued') {
      status.textContent = `"${job.name}" is waiting: ${job.position} job${job.position === 1 ? '' : 's'} ahead.`;
      progress.removeAttribute('value');
    } else if (job.status === 'running') {
      if (job.progress) showProgress(job.progress);
      else status.textContent = `Training "${job.name}"...`;
    } else if (job.status === 'failed') {
      status.textContent = `"${job.name}" failed: ${job.error ?? 'unknown error'}`;
      progress.value = 0;
      resultBox.replaceChildren();
    } else if (job.result) {
      status.textContent = `"${job.name}" is trained (${job.result.seconds.toFixed(1)} s).`;
      progress.value = 1;
      resultBox.replaceChildren(...resultView(job.result, callbacks));
    }
  }

  async function watch(job: JobView): Promise<void> {
    resultBox.replaceChildren();
    showJob(job);
    const final = await followJob(job, { job: showJob, progress: showProgress });
    if (final.result) await callbacks.modelReady(final.result.modelId);
    await refreshJobs();
  }

  trainButton.addEventListener('click', async () => {
    busy = true;
    updateButton();
    const form = new FormData();
    form.append('name', byId<HTMLInputElement>('job-name').value);
    form.append('compare', String(byId<HTMLInputElement>('job-compare').checked));
    for (const d of drafts) for (const f of d.files) form.append(d.name, f, f.name);
    status.textContent = 'Uploading the photos...';
    jobPanel.hidden = false;
    try {
      await watch(await submitJob(form));
    } catch (err) {
      status.textContent = `Could not train: ${(err as Error).message}`;
      jobPanel.dataset.status = 'failed';
    } finally {
      busy = false;
      updateButton();
    }
  });

  async function refreshJobs(): Promise<JobView[]> {
    const list = byId('jobs');
    const jobs = await listJobs();
    list.replaceChildren(
      ...jobs.slice(0, 20).map((job) => {
        const open = h('button', { type: 'button', class: 'link' }, job.status === 'done' ? 'show' : job.status === 'failed' ? 'why' : 'follow');
        open.addEventListener('click', async () => {
          const fresh = await getJob(job.id);
          if (fresh.status === 'queued' || fresh.status === 'running') await watch(fresh);
          else {
            resultBox.replaceChildren();
            showJob(fresh);
          }
        });
        return h('li', { 'data-status': job.status }, `${job.name} · ${job.status} · ${new Date(job.createdAt).toLocaleString()} `, open);
      }),
    );
    if (jobs.length === 0) list.replaceChildren(h('li', { class: 'muted' }, 'none yet'));
    return jobs;
  }

  updateButton();
  void refreshJobs().then(async (jobs) => {
    // A job still in progress (e.g. after reloading the page) is followed again.
    const live = jobs.find((j) => j.status === 'running' || j.status === 'queued');
    if (live) await watch(live);
  });
}

/** Accuracy, the confusion matrix with the test photos in its cells, the comparison and the actions. */
function resultView(r: JobResult, callbacks: TrainCallbacks): HTMLElement[] {
  const [lo, hi] = r.top1Ci95;
  const accuracy = h(
    'p',
    { class: 'accuracy' },
    h('strong', { 'data-top1': String(r.top1) }, `${percent(r.top1)} top-1`),
    ` on ${r.testPhotos} held-out photo${r.testPhotos === 1 ? '' : 's'} (95% CI ${percent(lo ?? 0, 0)}–${percent(hi ?? 1, 0)})`,
  );
  const head = h('tr', {}, h('th', {}, 'true ↓ / predicted →'), ...r.classes.map((c) => h('th', { scope: 'col' }, c)));
  const rows = r.classes.map((c, i) =>
    h(
      'tr',
      {},
      h('th', { scope: 'row' }, c),
      ...r.classes.map((_, j) => {
        const n = r.confusion[i]?.[j] ?? 0;
        const thumbs = r.testThumbnails.filter((t) => t.actual === i && t.predicted === j).map((t) => h('img', { src: t.src, alt: `${c} predicted as ${r.classes[j]}` }));
        return h('td', { class: n === 0 ? 'zero' : i === j ? 'hit' : 'miss' }, h('span', { class: 'n' }, String(n)), h('div', { class: 'cell-thumbs' }, ...thumbs));
      }),
    ),
  );
  const confusion = h('table', { class: 'confusion' }, h('caption', {}, 'Confusion matrix of the held-out photos'), h('thead', {}, head), h('tbody', {}, ...rows));

  const parts: HTMLElement[] = [accuracy, confusion];
  if (r.compare) {
    const c = r.compare;
    parts.push(
      h(
        'div',
        { class: 'compare' },
        h('h3', {}, 'Transfer learning vs. a network trained from scratch'),
        bar(`transfer (${c.transferSeconds.toFixed(1)} s)`, c.transferTop1),
        bar(`from scratch (${c.scratchSeconds.toFixed(1)} s, ${c.scratchEpochs} epoch${c.scratchEpochs === 1 ? '' : 's'})`, c.scratchTop1),
        h('p', { class: 'verdict' }, c.verdict),
      ),
    );
  }
  const use = h('button', { type: 'button', class: 'button', id: 'use-model' }, 'Use it now');
  use.addEventListener('click', () => void callbacks.useModel(r.modelId));
  parts.push(
    h(
      'p',
      { class: 'actions' },
      use,
      h('a', { class: 'button secondary', href: `/v1/models/${r.modelId}/download`, download: `${r.modelId}.zip` }, 'Download the model (.zip)'),
      h('a', { class: 'button secondary', href: `/v1/models/${r.modelId}/report`, target: '_blank', rel: 'noopener' }, 'Open the report'),
    ),
  );
  if (r.warnings.length > 0) parts.push(h('ul', { class: 'warnings' }, ...r.warnings.map((w) => h('li', {}, w))));
  return parts;
}
