import type { JobProgress, JobResult, JobView } from '../../src/server/api-types.js';
import { followJob, getJob, listJobs, submitJob } from './api.js';
import { MIN_PHOTOS, setupClasses } from './classes.js';
import { bar, byId, h, percent } from './dom.js';
import { accuracyCaveat, ciText, comparisonVerdict, wilson } from './stats.js';

export interface TrainCallbacks {
  /** A job made a model: the classify panel should list it (keeping its current choice). */
  modelReady(id: string): Promise<void>;
  /** "Use it now": classify with this model. */
  useModel(id: string): Promise<void>;
  /** "Live preview": classify the webcam stream with this model. */
  livePreview(id: string): Promise<void>;
}

/** What each `--quality` level does, for the hint beside the choice (README.md, "Quality"). */
const QUALITY_HINTS: Readonly<Record<string, string>> = {
  auto: 'one pass per photo; cross-validation picks the networks (the default)',
  plain: 'one pass per photo, both networks: the quickest',
  fast: '+ mirror averaging and region features',
  balanced: '+ 4 extra training views per photo: about 2.6x the time of fast',
  best: '+ 11 extra training views per photo: about 5x the time of fast',
};

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function seconds(s: number): string {
  return s < 60 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function setupTrain(callbacks: TrainCallbacks): void {
  const trainButton = byId<HTMLButtonElement>('train');
  const hint = byId('train-hint');
  const jobPanel = byId('job');
  const status = byId('job-status');
  const elapsed = byId('job-elapsed');
  const progress = byId<HTMLProgressElement>('job-progress');
  const resultBox = byId('job-result');
  const quality = byId<HTMLSelectElement>('job-quality');
  const qualityHint = byId('quality-hint');
  let busy = false;

  const editor = setupClasses(updateButton);

  function updateButton(): void {
    const classes = editor.classes();
    const small = classes.find((d) => d.files.length < MIN_PHOTOS);
    trainButton.disabled = busy || classes.length < 2 || small !== undefined;
    hint.textContent =
      classes.length < 2
        ? 'Add at least 2 classes with 3 photos each.'
        : small
          ? `Class "${small.name}" needs at least ${MIN_PHOTOS} photos.`
          : `${classes.reduce((n, d) => n + d.files.length, 0)} photos in ${classes.length} classes.`;
  }

  const showQualityHint = (): void => {
    qualityHint.textContent = QUALITY_HINTS[quality.value] ?? '';
  };
  quality.addEventListener('change', showQualityHint);
  showQualityHint();

  // A clock for the running step and the whole job, so the page moves even in a step that counts nothing.
  let clock: { step: string; stepStart: number; jobStart: number; timer: ReturnType<typeof setInterval> } | undefined;
  function tick(): void {
    if (!clock) return;
    const now = performance.now();
    elapsed.textContent = `${seconds((now - clock.stepStart) / 1000)} in this step · ${seconds((now - clock.jobStart) / 1000)} since training started`;
  }
  function startClock(): void {
    if (clock) return;
    const now = performance.now();
    clock = { step: '', stepStart: now, jobStart: now, timer: setInterval(tick, 500) };
    tick();
  }
  function stopClock(): void {
    if (clock) clearInterval(clock.timer);
    clock = undefined;
    elapsed.textContent = '';
  }

  function showProgress(p: JobProgress): void {
    startClock();
    if (clock && clock.step !== p.step) {
      clock.step = p.step;
      clock.stepStart = performance.now();
      tick();
    }
    const eta = p.etaSeconds !== undefined && p.done < p.total ? ` · about ${seconds(p.etaSeconds)} left` : '';
    status.textContent = p.total > 0 ? `${capitalized(p.step)}: ${p.done} of ${p.total} ${p.unit ?? 'images'}${eta}` : `${capitalized(p.step)}...`;
    status.dataset.step = p.step;
    if (p.total > 0) progress.value = p.done / p.total;
    else progress.removeAttribute('value');
  }

  function showJob(job: JobView): void {
    jobPanel.hidden = false;
    jobPanel.dataset.status = job.status;
    jobPanel.dataset.job = job.id;
    if (job.status === 'queued') {
      stopClock();
      status.textContent = `"${job.name}" is waiting: ${job.position} job${job.position === 1 ? '' : 's'} ahead.`;
      progress.removeAttribute('value');
    } else if (job.status === 'running') {
      if (job.progress) showProgress(job.progress);
      else {
        startClock();
        status.textContent = `Training "${job.name}": starting...`;
      }
    } else if (job.status === 'failed') {
      stopClock();
      status.textContent = `"${job.name}" failed: ${job.error ?? 'unknown error'}`;
      progress.value = 0;
      resultBox.replaceChildren();
    } else if (job.result) {
      stopClock();
      status.textContent = `"${job.name}" is trained (${job.result.seconds.toFixed(1)} s${job.quality ? `, quality ${job.quality}` : ''}).`;
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
    form.append('quality', quality.value);
    for (const c of editor.classes()) for (const f of c.files) form.append(c.name, f, f.name);
    status.textContent = 'Uploading the photos...';
    delete status.dataset.step;
    resultBox.replaceChildren();
    jobPanel.hidden = false;
    try {
      await watch(await submitJob(form));
    } catch (err) {
      stopClock();
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

/** Accuracy with its uncertainty, the confusion matrix with the test photos in its cells, the comparison and the actions. */
function resultView(r: JobResult, callbacks: TrainCallbacks): HTMLElement[] {
  const n = r.testPhotos;
  const correct = r.confusion.reduce((sum, row, i) => sum + (row[i] ?? 0), 0);
  const accuracy = h(
    'p',
    { class: 'accuracy' },
    h('strong', { 'data-top1': String(r.top1) }, `${percent(r.top1)} top-1`),
    ` on ${n} held-out photo${n === 1 ? '' : 's'} (95% CI ${ciText(wilson(correct, n))})`,
  );
  const parts: HTMLElement[] = [accuracy];
  const caveat = accuracyCaveat(correct, n);
  if (caveat) parts.push(h('p', { class: 'caveat' }, capitalized(caveat), '.'));

  const head = h('tr', {}, h('th', {}, 'true ↓ / predicted →'), ...r.classes.map((c) => h('th', { scope: 'col' }, c)));
  const rows = r.classes.map((c, i) =>
    h(
      'tr',
      {},
      h('th', { scope: 'row' }, c),
      ...r.classes.map((_, j) => {
        const count = r.confusion[i]?.[j] ?? 0;
        const thumbs = r.testThumbnails.filter((t) => t.actual === i && t.predicted === j).map((t) => h('img', { src: t.src, alt: `${c} predicted as ${r.classes[j]}` }));
        return h('td', { class: count === 0 ? 'zero' : i === j ? 'hit' : 'miss' }, h('span', { class: 'n' }, String(count)), h('div', { class: 'cell-thumbs' }, ...thumbs));
      }),
    ),
  );
  parts.push(h('table', { class: 'confusion' }, h('caption', {}, 'Confusion matrix of the held-out photos'), h('thead', {}, head), h('tbody', {}, ...rows)));

  if (r.compare) {
    const c = r.compare;
    const m = c.testPhotos ?? n;
    const verdict = comparisonVerdict({ name: 'transfer learning', correct: Math.round(c.transferTop1 * m) }, { name: 'the network trained from scratch', correct: Math.round(c.scratchTop1 * m) }, m);
    const ratio = c.scratchSeconds / Math.max(c.transferSeconds, 1e-3);
    const time = ratio >= 1 ? `Transfer learning took ${ratio.toFixed(1)}x less training time.` : `Transfer learning took ${(1 / ratio).toFixed(1)}x more training time.`;
    parts.push(
      h(
        'div',
        { class: 'compare', 'data-decided': String(verdict.decided) },
        h('h3', {}, 'Transfer learning vs. a network trained from scratch'),
        bar(`transfer (${c.transferSeconds.toFixed(1)} s)`, c.transferTop1),
        bar(`from scratch (${c.scratchSeconds.toFixed(1)} s, ${c.scratchEpochs} epoch${c.scratchEpochs === 1 ? '' : 's'})`, c.scratchTop1),
        h('p', { class: 'verdict' }, capitalized(verdict.text), ' ', time),
      ),
    );
  }
  const use = h('button', { type: 'button', class: 'button', id: 'use-model' }, 'Use it now');
  use.addEventListener('click', () => void callbacks.useModel(r.modelId));
  const live = h('button', { type: 'button', class: 'button secondary', id: 'live-model' }, 'Live preview (webcam)');
  live.addEventListener('click', () => void callbacks.livePreview(r.modelId));
  parts.push(
    h(
      'p',
      { class: 'actions' },
      use,
      live,
      h('a', { class: 'button secondary', href: `/v1/models/${r.modelId}/download`, download: `${r.modelId}.zip` }, 'Download the model (.zip)'),
      h('a', { class: 'button secondary', href: `/v1/models/${r.modelId}/report`, target: '_blank', rel: 'noopener' }, 'Open the report'),
    ),
  );
  if (r.warnings.length > 0) parts.push(h('ul', { class: 'warnings' }, ...r.warnings.map((w) => h('li', {}, w))));
  return parts;
}
