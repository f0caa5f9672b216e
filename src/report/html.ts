/**
 * The training report: one self-contained HTML file (inline CSS, inline SVG charts, photos as
 * data: URIs, no scripts) that shows how well the classifier works and where it fails.
 */
import type { ApproachResult, CompareResult } from '../compare/types.js';
import type { Evaluation, Misclassified } from '../evaluate/metrics.js';
import { nextSteps, type NextStep } from './advice.js';
import { FONT, compareSpec, confusionSpec, learningCurvesSpec, renderChart, type Chart } from './charts.js';
import { epochClaim, validationBand, type EpochClaim } from './curves.js';
import { Html, html, raw, type Part } from './markup.js';
import { makeThumbnails, type Thumbnail } from './thumbnails.js';
import type { ReportInput, SplitName } from './types.js';

export interface ReportOptions {
  /** Edge of the square thumbnails in pixels (default 64). */
  readonly thumbnailSize?: number;
  /** Photos shown per class in the data set section (default 6). */
  readonly maxThumbnailsPerClass?: number;
}

export interface RenderedReport {
  readonly html: string;
  /** By name: `learningCurves` (when there is a history), `confusion`, `compare` (when compared). */
  readonly charts: Record<string, Chart>;
}

const DEFAULT_THUMBNAIL_SIZE = 64;
const DEFAULT_THUMBNAILS_PER_CLASS = 6;
/** Keeps the file small when a big test set has a bad cell; the count still shows them all. */
const MAX_MISTAKES_PER_CELL = 40;
/** Photos of the most confused pair shown in "What to do next". */
const MAX_PAIR_PHOTOS = 12;
/** Above this many, the skipped-files list starts collapsed. */
const SKIPPED_OPEN_LIMIT = 10;
const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];

/** Renders the report. Pure apart from reading the photos: writes nothing. */
export async function renderReport(input: ReportInput, options: ReportOptions = {}): Promise<RenderedReport> {
  const size = options.thumbnailSize ?? DEFAULT_THUMBNAIL_SIZE;
  const perClass = options.maxThumbnailsPerClass ?? DEFAULT_THUMBNAILS_PER_CLASS;
  if (!Number.isInteger(size) || size < 8 || size > 1024) throw new RangeError(`thumbnailSize must be an integer from 8 to 1024, got ${size}`);
  if (!Number.isInteger(perClass) || perClass < 0) throw new RangeError(`maxThumbnailsPerClass must be a non-negative integer, got ${perClass}`);

  const samples = input.classes.map((_, c) => input.dataset.files.filter((f) => f.label === c).slice(0, perClass).map((f) => f.path));
  const cells = mistakeCells(input.classes, input.evaluation.misclassified);
  const shownMistakes = cells.flatMap((cell) => cell.items.slice(0, MAX_MISTAKES_PER_CELL));
  const steps = nextSteps(input);
  const pairPhotos = steps.flatMap((step) => (step.photos ?? []).slice(0, MAX_PAIR_PHOTOS));
  const validationPhotos = input.dataset.files.filter((f) => f.split === 'validation').length;
  const claim = epochClaim(input.history, input.bestEpoch, validationPhotos);

  const [thumbs, charts] = await Promise.all([
    makeThumbnails([...samples.flat(), ...shownMistakes.map((m) => m.file), ...pairPhotos.map((m) => m.file)], size),
    renderCharts(input, claim, validationPhotos),
  ]);
  const ctx: Context = { input, thumbs, root: commonRoot(input) };

  const body = html`
<header>
  <h1>${input.title}</h1>
  <p class="meta">${formatDate(input.createdAt)} · ${input.members ? html`ensemble of ${input.members.map((m, i) => html`${i > 0 ? ' + ' : ''}<code>${m.id}</code>`)}` : html`backbone <code>${input.backbone.id}</code>`} · ${input.classes.length} classes · ${input.evaluation.count} test photos</p>
  ${summary(ctx)}
</header>
<nav>${[
    ['next', 'What to do next'],
    ['data', 'Data set'],
    ['learning', 'Learning curves'],
    ['confusion', 'Confusion & mistakes'],
    ['metrics', 'Per-class metrics'],
    input.compare ? ['compare', 'Transfer vs scratch'] : undefined,
    ['setup', 'Setup'],
  ].map((link) => link && html`<a href="#${link[0]}">${link[1]}</a>`)}</nav>
<main>
  ${nextSection(ctx, steps)}
  ${dataSection(ctx, samples)}
  ${learningSection(input, charts.learningCurves, claim)}
  ${confusionSection(ctx, cells, charts.confusion)}
  ${metricsSection(input)}
  ${input.compare && compareSection(input.compare, charts.compare)}
  ${setupSection(input)}
</main>
<footer>Made by headswap. This file is self-contained: it loads nothing from the network.</footer>`;

  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="generator" content="headswap">
<link rel="icon" href="data:,">
<title>${input.title}</title>
<style>${raw(css(size))}</style>
</head>
<body>${body}
</body>
</html>
`;
  return { html: page.value, charts };
}

interface Context {
  readonly input: ReportInput;
  readonly thumbs: ReadonlyMap<string, Thumbnail>;
  /** Common folder of the photos: paths are shown relative to it. */
  readonly root: string;
}

interface MistakeCell {
  readonly trueLabel: string;
  readonly predicted: string;
  readonly items: readonly Misclassified[];
}

async function renderCharts(input: ReportInput, claim: EpochClaim, validationPhotos: number): Promise<Record<string, Chart>> {
  // Only an epoch that stands out of the validation noise is marked "best".
  const marked = claim.kind === 'clear' ? claim.best.epoch : undefined;
  const specs = {
    ...(input.history.length > 0 ? { learningCurves: learningCurvesSpec(input.history, marked, validationBand(input.history, validationPhotos)) } : {}),
    confusion: confusionSpec(input.classes, input.evaluation.confusion),
    ...(input.compare ? { compare: compareSpec(input.compare) } : {}),
  };
  const rendered = await Promise.all(Object.entries(specs).map(async ([name, spec]) => [name, await renderChart(spec)] as const));
  return Object.fromEntries(rendered);
}

/** Mistakes grouped by (true, predicted): the biggest confusion first, then in class order. */
function mistakeCells(classes: readonly string[], misclassified: readonly Misclassified[]): MistakeCell[] {
  const byKey = new Map<string, { trueLabel: string; predicted: string; items: Misclassified[] }>();
  for (const m of misclassified) {
    const key = JSON.stringify([m.trueLabel, m.predicted]);
    const cell = byKey.get(key) ?? { trueLabel: m.trueLabel, predicted: m.predicted, items: [] };
    cell.items.push(m);
    byKey.set(key, cell);
  }
  const rank = (label: string): number => classes.indexOf(label);
  return [...byKey.values()].sort(
    (a, b) => b.items.length - a.items.length || rank(a.trueLabel) - rank(b.trueLabel) || rank(a.predicted) - rank(b.predicted),
  );
}

function summary({ input }: Context): Html {
  const ev = input.evaluation;
  const correct = Math.round(ev.top1 * ev.count);
  const [lo, hi] = ev.top1Ci95;
  const trainPhotos = input.dataset.files.filter((f) => f.split !== 'test').length;
  const present = ev.perClass.filter((m) => m.support > 0).length;
  return html`
  <div class="cards">
    <div class="card main"><div class="label">top-1 accuracy</div><div class="value">${pct(ev.top1)}</div>
      <div class="sub">${correct} of ${ev.count} correct · 95% CI ${pct(lo)}–${pct(hi)}</div></div>
    ${ev.topK.filter((t) => t.k > 1).map((t) => html`<div class="card"><div class="label">top-${t.k}</div><div class="value">${pct(t.accuracy)}</div><div class="sub">true class among the ${t.k} best guesses</div></div>`)}
    <div class="card"><div class="label">macro F1</div><div class="value">${ev.macroF1.toFixed(2)}</div><div class="sub">${present < input.classes.length ? `mean over the ${present} of ${input.classes.length} classes with test photos` : 'mean over classes'}</div></div>
    <div class="card"><div class="label">chance level</div><div class="value">${pct(1 / Math.max(1, input.classes.length))}</div><div class="sub">guessing among ${input.classes.length} classes</div></div>
  </div>
  ${input.compare && html`<p class="verdict">${input.compare.verdict}</p>`}
  <p class="why"><strong>How it works.</strong> ${
    input.members
      ? html`Each photo went once through each of ${input.members.map((m, i) => html`${i > 0 ? ' and ' : ''}<code>${m.id}</code>`)}, networks pretrained on
  a large collection of images and kept frozen, which turn it into ${input.members.map((m) => m.featureDims.toLocaleString('en-US')).join(' and ')} numbers that describe what it shows.`
      : html`Each photo went once through <code>${input.backbone.id}</code>, a network pretrained on
  a large collection of images and kept frozen, which turns it into ${input.backbone.featureDims.toLocaleString('en-US')} numbers that describe what it shows.`
  }
  Only a small new classifier (the head) was trained on those numbers, from ${trainPhotos} photos: the backbone already knows what
  images look like, so a few dozen photos per class and seconds of CPU can be enough. The scores above are on ${ev.count} photos the head never saw.</p>`;
}

function dataSection(ctx: Context, samples: readonly (readonly string[])[]): Html {
  const { input } = ctx;
  const counts = input.classes.map(() => ({ train: 0, validation: 0, test: 0 }));
  for (const f of input.dataset.files) {
    const row = counts[f.label];
    if (row) row[f.split]++;
  }
  const total = (r: Record<SplitName, number>): number => r.train + r.validation + r.test;
  const sums = { train: 0, validation: 0, test: 0 };
  for (const r of counts) for (const s of SPLITS) sums[s] += r[s];
  const skipped = input.dataset.skipped;
  return html`
<section id="data">
  <h2>Data set</h2>
  <table class="numbers">
    <thead><tr><th>class</th>${SPLITS.map((s) => html`<th>${s}</th>`)}<th>total</th></tr></thead>
    <tbody>${counts.map((r, c) => html`<tr><th>${input.classes[c]}</th>${SPLITS.map((s) => html`<td>${r[s]}</td>`)}<td>${total(r)}</td></tr>`)}</tbody>
    <tfoot><tr><th>all</th>${SPLITS.map((s) => html`<td>${sums[s]}</td>`)}<td>${total(sums)}</td></tr></tfoot>
  </table>
  <h3>Sample photos</h3>
  ${samples.map((paths, c) => html`<div class="strip"><div class="strip-name">${input.classes[c]}</div><div class="thumbs">${paths.length > 0 ? paths.map((p) => thumb(ctx, p)) : html`<span class="note">no photos</span>`}</div></div>`)}
  <h3>Skipped files</h3>
  ${
    skipped.length === 0
      ? html`<p class="note">None: every file in the folders was used.</p>`
      : html`<details${skipped.length <= SKIPPED_OPEN_LIMIT ? raw(' open') : ''}><summary>${skipped.length} file${skipped.length === 1 ? '' : 's'} skipped</summary>
    <table class="files"><thead><tr><th>file</th><th>reason</th></tr></thead>
    <tbody>${skipped.map((s) => html`<tr><td class="path">${shortPath(ctx, s.path)}</td><td>${s.reason}</td></tr>`)}</tbody></table></details>`
  }
</section>`;
}

function learningSection(input: ReportInput, chart: Chart | undefined, claim: EpochClaim): Html {
  const epochs = input.history.length;
  const hasValidation = input.history.some((h) => h.valLoss !== undefined);
  const reading =
    'Train and validation curves that stay close mean the head generalizes; validation loss rising while train loss falls means it started to memorize the training photos.';
  const refit = 'a linear head is then refit on training and validation photos together, to convergence';
  let note: string;
  if (!chart) note = 'No training history was recorded.';
  else if (!hasValidation) note = `No validation photos: the curves show the training photos only, and the last epoch (${input.bestEpoch}) was kept.`;
  else if (claim.kind === 'clear') {
    const { best, later, photos } = claim;
    note = `The dashed line marks epoch ${best.epoch} of ${epochs}, the one with the lowest validation loss. Its validation accuracy, ${pct(best.accuracy)} (95% interval ${pct(best.lo)}–${pct(best.hi)} on ${photos} photos, shaded), is beyond noise above the ${pct(later.mean)} the ${later.epochs} later epochs averaged: stopping there beat training on (${refit}). ${reading}`;
  } else if (claim.kind === 'unclear') {
    const { best, from, photos } = claim;
    const within = `every epoch from ${from} to ${epochs} scores within the 95% interval of epoch ${best.epoch} (${pct(best.lo)}–${pct(best.hi)}, shaded), the one with the lowest validation loss`;
    note = claim.tooSmall
      ? `The ${photos} validation photos are too few to pick an epoch: accuracy on them is uncertain by about ±${(claim.halfWidth * 100).toFixed(0)} points, and ${within}. Read the validation curve as a rough trend only; ${refit}.`
      : `No epoch stands out: on ${photos} validation photos, ${within}, so stopping earlier or later would score the same within noise (${refit}). ${reading}`;
  } else note = `Validation loss was lowest at epoch ${input.bestEpoch} of ${epochs} (${refit}). ${reading}`;
  return html`
<section id="learning">
  <h2>Learning curves of the head</h2>
  ${chart && html`<figure class="chart">${raw(chart.svg)}</figure>`}
  <p class="note">${note}</p>
</section>`;
}

/** "What to do next": each step from the run's numbers (report/advice.ts), the confused photos beside theirs. */
function nextSection(ctx: Context, steps: readonly NextStep[]): Html {
  return html`
<section id="next">
  <h2>What to do next</h2>
  <ul class="next">${steps.map(
    (step) => html`<li data-kind="${step.kind}">${step.text}${
      step.photos &&
      step.photos.length > 0 &&
      html`<div class="thumbs">${step.photos.slice(0, MAX_PAIR_PHOTOS).map(
        (m) => html`<figure class="mistake">${thumb(ctx, m.file)}<figcaption>${m.trueLabel} <span>taken for ${m.predicted}</span></figcaption></figure>`,
      )}${step.photos.length > MAX_PAIR_PHOTOS && html`<span class="note">and ${step.photos.length - MAX_PAIR_PHOTOS} more</span>`}</div>`
    }</li>`,
  )}</ul>
</section>`;
}

function confusionSection(ctx: Context, cells: readonly MistakeCell[], chart: Chart | undefined): Html {
  const ev = ctx.input.evaluation;
  return html`
<section id="confusion">
  <h2>Confusions and mistakes</h2>
  <div class="side-by-side">
  ${chart && html`<figure class="chart">${raw(chart.svg)}</figure>`}
  <div class="mistakes">
  <h3>Mistakes</h3>
  ${
    cells.length === 0
      ? html`<p class="note">No mistakes on the ${ev.count} test photos.</p>`
      : html`<p class="note">Every misclassified test photo, grouped by true → predicted class, most confident mistake first.
  The percentage is the probability the head gave to the wrong class; "true" is the probability of the right one.</p>
  <div class="cells">${cells.map((cell) => {
    const hidden = cell.items.length - MAX_MISTAKES_PER_CELL;
    return html`<div class="cell"><h4><span class="cls">${cell.trueLabel}</span> → <span class="cls">${cell.predicted}</span> <small>${cell.items.length} photo${cell.items.length === 1 ? '' : 's'}</small></h4>
  <div class="thumbs">${cell.items.slice(0, MAX_MISTAKES_PER_CELL).map(
    (m) => html`<figure class="mistake">${thumb(ctx, m.file)}<figcaption>${pct(m.confidence, 0)} <span>true ${pct(m.trueProb, 0)}</span></figcaption></figure>`,
  )}${hidden > 0 && html`<span class="note">and ${hidden} more</span>`}</div></div>`;
  })}</div>`
  }
  </div>
  </div>
</section>`;
}

function metricsSection(input: ReportInput): Html {
  const ev = input.evaluation;
  const cv = input.crossValidation;
  const bar = (x: number | null): Html =>
    x === null ? html`<td>–</td>` : html`<td class="bar-cell"><span class="track"><span class="fill" style="width:${(x * 100).toFixed(1)}%"></span></span>${x.toFixed(2)}</td>`;
  const present = ev.perClass.filter((m) => m.support > 0).length;
  return html`
<section id="metrics">
  <h2>Per-class metrics</h2>
  <table class="numbers metrics">
    <thead><tr><th>class</th><th>test photos</th><th>precision</th><th>recall</th><th>F1</th></tr></thead>
    <tbody>${ev.perClass.map((m) =>
      // Checked by support, not by null, so models written before the scores became null read right too.
      m.support === 0
        ? html`<tr class="untested"><th>${m.label}</th><td>0</td><td colspan="3" class="none">no test photos</td></tr>`
        : html`<tr><th>${m.label}</th><td>${m.support}</td>${bar(m.precision)}${bar(m.recall)}${bar(m.f1)}</tr>`,
    )}</tbody>
    <tfoot><tr><th>macro average</th><td>${ev.count}</td><td></td><td></td><td>${ev.macroF1.toFixed(2)}</td></tr></tfoot>
  </table>
  <p class="note">Precision: of the photos predicted as the class, the share that are. Recall: of the class's photos, the share found. F1 combines both.${
    present < ev.perClass.length && ` A class with no test photos has no scores, and the macro average is over the ${present} classes that have some.`
  }</p>
  <div class="columns">
  <div><h3>Top-k accuracy</h3>
  <table class="numbers">
    <thead><tr><th>k</th><th>accuracy</th></tr></thead>
    <tbody>${ev.topK.map((t) => html`<tr><th>top-${t.k}</th><td>${pct(t.accuracy)}</td></tr>`)}</tbody>
  </table>
  <p class="note">Top-1 ${pct(ev.top1)} with a 95% Wilson interval of ${pct(ev.top1Ci95[0])}–${pct(ev.top1Ci95[1])} on ${ev.count} photos; log loss ${ev.logLoss.toFixed(3)}.</p></div>
  ${
    cv &&
    html`<div><h3>Cross-validation</h3>
  <table class="numbers">
    <thead><tr><th>${cv.folds} folds${cv.groups !== undefined ? html` over ${cv.groups} groups` : ''}</th><th>mean</th><th>std</th></tr></thead>
    <tbody><tr><th>top-1, folds at random</th><td>${pct(cv.top1.mean)}</td><td>${pct(cv.top1.std)}</td></tr>
    ${cv.topK.filter((t) => t.k > 1).map((t) => html`<tr><th>top-${t.k}</th><td>${pct(t.mean)}</td><td>${pct(t.std)}</td></tr>`)}
    ${input.crossValidationOrdered && html`<tr><th>top-1, folds in name order</th><td>${pct(input.crossValidationOrdered.top1.mean)}</td><td>${pct(input.crossValidationOrdered.top1.std)}</td></tr>`}</tbody>
  </table>
  <p class="note">Mean and standard deviation of the held-out score over the folds; photos of one group are held out together. Folds in name order score each photo with a head trained on photos named before and after it: if your new photos differ from your earlier ones, it is the closer estimate. The 95% interval above is for the ${ev.count} held-out test photos only.</p></div>`
  }
  ${
    input.groups &&
    html`<div><h3>Groups</h3>
  <p>${
    input.groups.grouped === 0
      ? html`No series or near-copies found (<code>--group-by ${input.groups.by}</code>): every photo is its own group.`
      : html`${input.groups.grouped} photos come in series or near-copies: ${input.groups.count} groups, the largest of ${input.groups.largest} (<code>--group-by ${input.groups.by}</code>). The split and the folds keep each group together, so an estimate counts a series as one photo.`
  }</p></div>`
  }
  ${
    input.recipe &&
    html`<div><h3>Recipe (--quality auto)</h3>
  <table class="numbers">
    <thead><tr><th>candidate</th><th>CV top-1</th><th>std</th></tr></thead>
    <tbody>${input.recipe.candidates.map((c) => html`<tr><th>${c.name === input.recipe!.chosen ? html`<strong>${c.name}</strong>` : c.name}</th><td>${pct(c.cvTop1)}</td><td>${pct(c.cvStd)}</td></tr>`)}</tbody>
  </table>
  <p class="note">${input.recipe.folds}-fold grouped cross-validation on the training photos. ${input.recipe.reason}.</p></div>`
  }
  </div>
</section>`;
}

function topKOf(ev: Evaluation, k: number): number | undefined {
  return ev.topK.find((t) => t.k === k)?.accuracy;
}

function compareSection(compare: CompareResult, chart: Chart | undefined): Html {
  const approaches: readonly ApproachResult[] = [compare.transfer, compare.scratch];
  // The largest k both report, up to 5: with fewer classes there is no top-5.
  const k = Math.min(5, ...approaches.map((a) => Math.max(...a.evaluation.topK.map((t) => t.k))));
  const row = (label: string, cell: (a: ApproachResult) => Part): Html => html`<tr><th>${label}</th>${approaches.map((a) => html`<td>${cell(a)}</td>`)}</tr>`;
  const s = compare.scratch;
  return html`
<section id="compare">
  <h2>Transfer learning vs training from scratch</h2>
  <p class="verdict">${compare.verdict}</p>
  ${chart && html`<figure class="chart">${raw(chart.svg)}</figure>`}
  <table class="numbers compare">
    <thead><tr><th></th><th>transfer</th><th>from scratch</th></tr></thead>
    <tbody>
    ${row('what was trained', (a) => a.description)}
    ${row('top-1', (a) => pct(a.evaluation.top1))}
    ${row('95% CI', (a) => `${pct(a.evaluation.top1Ci95[0])}–${pct(a.evaluation.top1Ci95[1])}`)}
    ${k > 1 && row(`top-${k}`, (a) => pct(topKOf(a.evaluation, k) ?? NaN))}
    ${row('training time', (a) => seconds(a.trainSeconds))}
    ${row('trainable parameters', (a) => a.trainableParams.toLocaleString('en-US'))}
    ${row('training photos', (a) => a.imagesUsed)}
    ${row('pretraining reused', (a) => a.pretraining ?? 'none')}
    </tbody>
  </table>
  <p class="note">From scratch: ${s.library}, ${s.epochs} epochs on ${s.inputSize}×${s.inputSize} px images within a ${seconds(s.budgetSeconds)} budget. Both scored on the same ${compare.transfer.evaluation.count} test photos.</p>
</section>`;
}

function setupSection(input: ReportInput): Html {
  const b = input.backbone;
  return html`
<section id="setup">
  <h2>Setup</h2>
  <div class="columns">
    <div><h3>Backbone</h3>${keyValues([
      ['id', b.id],
      ['origin', b.origin],
      ['sha256', b.sha256],
      ['feature size', b.featureDims],
    ])}</div>
    ${input.members ? membersTable(input) : ''}
    <div><h3>Options</h3>${keyValues(Object.entries(input.options).map(([k, v]) => [k, typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v))]))}</div>
    <div><h3>Timings</h3>${keyValues(Object.entries(input.timings).map(([k, v]) => [humanize(k), timing(k, v)]))}</div>
    <div><h3>Versions</h3>${keyValues(Object.entries(input.versions))}</div>
  </div>
</section>`;
}

/** An ensemble's backbones, each scored alone on the same test photos, and the ensemble. */
function membersTable(input: ReportInput): Html {
  const top = (topK: readonly { readonly k: number; readonly accuracy: number }[], k: number): string => {
    const t = topK.find((x) => x.k === k);
    return t ? pct(t.accuracy) : '–';
  };
  const k = Math.min(5, input.classes.length);
  const ev = input.evaluation;
  return html`<div><h3>Ensemble</h3><table class="kv"><thead><tr><th>backbone</th><th>top-1</th><th>95% CI</th><th>top-${k}</th></tr></thead><tbody>
    ${(input.members ?? []).map((m) => html`<tr><th>${m.id}</th><td>${pct(m.top1)}</td><td>${pct(m.top1Ci95[0])}–${pct(m.top1Ci95[1])}</td><td>${top(m.topK, k)}</td></tr>`)}
    <tr><th>average of the ${input.members?.length ?? 0}</th><td>${pct(ev.top1)}</td><td>${pct(ev.top1Ci95[0])}–${pct(ev.top1Ci95[1])}</td><td>${top(ev.topK, k)}</td></tr>
  </tbody></table><p class="note">Each backbone has its own head; the model averages their class probabilities. Scores on the same ${ev.count} test photos.</p></div>`;
}

function keyValues(rows: readonly (readonly [string, string | number])[]): Html {
  if (rows.length === 0) return html`<p class="note">none recorded</p>`;
  return html`<table class="kv"><tbody>${rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}</tbody></table>`;
}

function thumb(ctx: Context, path: string): Html {
  const t = ctx.thumbs.get(path);
  const name = shortPath(ctx, path);
  if (t?.ok) return html`<img src="${t.src}" width="${t.width}" height="${t.height}" alt="${name}" title="${name}">`;
  const reason = t ? t.reason : 'not rendered';
  return html`<span class="thumb-missing" role="img" aria-label="${name}: ${reason}" title="${name}: ${reason}">?</span>`;
}

/** The deepest folder holding every photo and skipped file, so paths shown stay short. */
function commonRoot(input: ReportInput): string {
  const paths = [...input.dataset.files.map((f) => f.path), ...input.dataset.skipped.map((s) => s.path), ...input.evaluation.misclassified.map((m) => m.file)];
  const first = paths[0];
  if (first === undefined) return '';
  let parts = first.split(/[\\/]/).slice(0, -1);
  for (const p of paths) {
    const other = p.split(/[\\/]/);
    let i = 0;
    while (i < parts.length && i < other.length - 1 && parts[i] === other[i]) i++;
    parts = parts.slice(0, i);
  }
  return parts.join('/');
}

function shortPath(ctx: Context, path: string): string {
  const normalized = path.replace(/\\/g, '/');
  return ctx.root && normalized.startsWith(`${ctx.root}/`) ? normalized.slice(ctx.root.length + 1) : path;
}

function pct(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : '–';
}

function seconds(s: number): string {
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  return s < 10 ? `${s.toFixed(2)} s` : s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`;
}

/** Timings are seconds; a key ending in `Ms` holds milliseconds. */
function timing(key: string, value: number): string {
  return seconds(/Ms$/.test(key) ? value / 1000 : value);
}

/** `featuresMs` → `features`, `loadModel` → `load model`. */
function humanize(key: string): string {
  return key.replace(/Ms$/, '').replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

function formatDate(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function css(thumb: number): string {
  return `
:root { --thumb: ${thumb}px; --ink: #1d2330; --muted: #5b6475; --line: #e3e6ec; --accent: #2f6db5; --bad: #c2410c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 ${FONT}; color: var(--ink); background: #f6f7f9; }
header, nav, main, footer { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 28px; }
h1 { font-size: 26px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 19px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 20px 0 8px; }
h4 { font-size: 14px; margin: 0 0 6px; font-weight: 600; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.92em; background: #eef1f5; padding: 1px 4px; border-radius: 3px; }
.meta, .note, small { color: var(--muted); }
.note { font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 16px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; }
.card.main { grid-column: span 2; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 26px; font-weight: 600; }
.card.main .value { font-size: 34px; color: var(--accent); }
.card .sub { color: var(--muted); font-size: 12px; }
.verdict { background: #eaf3ea; border-left: 4px solid #3b8f3b; padding: 8px 12px; margin: 12px 0; font-weight: 600; }
.why { max-width: 820px; color: #333b4a; }
nav { display: flex; flex-wrap: wrap; gap: 4px 16px; padding-top: 4px; padding-bottom: 8px; position: sticky; top: 0; background: #f6f7f9; border-bottom: 1px solid var(--line); z-index: 1; }
nav a { color: var(--accent); text-decoration: none; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; margin: 18px 0; overflow-x: auto; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; border-bottom: 2px solid var(--line); }
tbody th, tfoot th { font-weight: 500; overflow-wrap: anywhere; max-width: 260px; }
tfoot th, tfoot td { border-bottom: none; font-weight: 600; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; }
table.compare td { text-align: left; max-width: 320px; }
td.bar-cell { white-space: nowrap; }
table.numbers td.none { text-align: left; color: var(--muted); font-style: italic; }
ul.next { margin: 0; padding-left: 20px; max-width: 900px; }
ul.next li { margin: 0 0 8px; }
ul.next .thumbs { margin: 6px 0 4px; }
ul.next figure.mistake figcaption { overflow-wrap: anywhere; }
td.bar-cell .track { display: inline-block; width: 80px; height: 8px; margin-right: 8px; background: #edf0f4; border-radius: 4px; overflow: hidden; }
td.bar-cell .fill { display: block; height: 100%; background: var(--accent); }
table.files td.path, table.kv td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; overflow-wrap: anywhere; }
table.kv th { color: var(--muted); font-weight: 500; white-space: nowrap; }
.columns { columns: 3 300px; column-gap: 28px; }
.columns > div { break-inside: avoid; margin-bottom: 12px; }
.columns h3 { margin-top: 4px; }
figure { margin: 0; }
.side-by-side { display: flex; flex-wrap: wrap; gap: 8px 36px; align-items: flex-start; }
.side-by-side .mistakes { flex: 1 1 360px; min-width: 0; }
.side-by-side .mistakes h3 { margin-top: 0; }
figure.chart svg { max-width: 100%; height: auto; display: block; }
.strip { display: flex; align-items: center; gap: 12px; padding: 6px 0; border-bottom: 1px solid var(--line); }
.strip-name { width: 150px; flex: none; font-weight: 500; overflow-wrap: anywhere; }
.thumbs { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-start; }
.thumbs img, .thumb-missing { width: var(--thumb); height: var(--thumb); border-radius: 4px; object-fit: cover; display: block; }
.thumb-missing { display: flex; align-items: center; justify-content: center; background: repeating-linear-gradient(45deg, #eceff3, #eceff3 6px, #f6f7f9 6px, #f6f7f9 12px); color: var(--muted); font-size: 20px; border: 1px dashed #b8bfcc; }
.cells { display: flex; flex-wrap: wrap; gap: 14px 32px; margin-top: 10px; }
.cell { max-width: 100%; }
.cells .cell h4 { max-width: 480px; }
.cells .thumbs { max-width: 480px; }
.cls { overflow-wrap: anywhere; }
figure.mistake { width: var(--thumb); }
figure.mistake img, figure.mistake .thumb-missing { outline: 2px solid var(--bad); outline-offset: -2px; }
figure.mistake figcaption { font-size: 11px; line-height: 1.25; margin-top: 2px; color: var(--bad); font-weight: 600; }
figure.mistake figcaption span { display: block; color: var(--muted); font-weight: 400; }
details summary { cursor: pointer; color: var(--muted); }
footer { color: var(--muted); font-size: 12px; padding-bottom: 32px; }
@media print { nav { display: none; } body { background: #fff; } section { break-inside: avoid; border: none; } }
`;
}
