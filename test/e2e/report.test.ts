import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import type { CompareResult } from '../../src/compare/types.js';
import { scanDataset } from '../../src/dataset/scan.js';
import { formatEvaluation } from '../../src/evaluate/format.js';
import { evaluate, type Evaluation } from '../../src/evaluate/metrics.js';
import type { ModelMetadata } from '../../src/export/metadata.js';
import type { EpochLog } from '../../src/head/train.js';
import { EMPTY_CELL, renderChart } from '../../src/report/charts.js';
import { renderReport, type RenderedReport } from '../../src/report/html.js';
import { reportFromModel, reportFromTrain } from '../../src/report/input.js';
import { nextSteps } from '../../src/report/advice.js';
import { escapeHtml } from '../../src/report/markup.js';
import type { ReportInput } from '../../src/report/types.js';
import { train, type TrainResult } from '../../src/pipeline/train.js';
import { browserUnavailable, launchChromium } from '../helpers/browser.js';
import { copySubset } from '../helpers/dataset.js';
import { startServer } from '../helpers/http-server.js';
import { writeBrokenFiles } from '../helpers/images.js';

// Similar garments, few photos: the head makes mistakes, so the mistakes gallery has content.
const SOURCE = ['pants', 'shorts', 'skirt'];
// Folder names become class names: markup, quotes, ampersands and non-ASCII must come out as text.
const NASTY = `shorts <b id="pwn">&"'`;
const UNICODE = 'jupe 👗 é';
const RENAMED: Record<string, string> = { shorts: NASTY, skirt: UNICODE };
const NASTY_FILE = `a <i id="pwn2">&"'.jpg`;
const PER_CLASS = 4;
const SCREENSHOT = join(tmpdir(), 'headswap-report.png');

let dir: string;
let input: ReportInput;
let report: RenderedReport;
let result: TrainResult;
/** A second run whose test folder has no photos of one class (shorts, renamed NASTY). */
let partial: TrainResult;
const MODEL = 'shop';

async function copyRenamed(split: 'train' | 'test', perClass: number, dest: string): Promise<void> {
  await copySubset(split, SOURCE, perClass, dest);
  for (const [from, to] of Object.entries(RENAMED)) await rename(join(dest, from), join(dest, to));
}

/** A from-scratch baseline that is right on every other photo, for the compare section. */
function scratchEvaluation(ev: Evaluation, files: readonly { path: string; label: number }[], classes: number): Evaluation {
  return evaluate(
    files.map((f, i) => {
      const probs = new Float32Array(classes).fill(0.2 / (classes - 1));
      probs[i % 2 === 0 ? f.label : (f.label + 1) % classes] = 0.8;
      return { file: f.path, label: f.label, probs };
    }),
    ev.perClass.map((c) => c.label),
    { maxK: 5 },
  );
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-report-'));
  const data = join(dir, 'photos');
  const testDir = join(dir, 'held-out');
  await copyRenamed('train', 6, data);
  await copyRenamed('test', 6, testDir);
  const [firstPants] = (await scanDataset(testDir)).files;
  await rename(firstPants!.path, join(testDir, 'pants', NASTY_FILE));
  await writeBrokenFiles(join(data, 'pants'));
  // Always listed (as skipped), whether or not the renamed test photo ends up among the mistakes.
  await writeFile(join(data, 'pants', NASTY_FILE), 'not a photo');

  result = await train({ data, testDir, cacheDir: join(dir, 'cache'), out: join(dir, `${MODEL}.model`), seed: 1 });
  const partialTest = join(dir, 'held-out-partial');
  await copyRenamed('test', 4, partialTest);
  await rm(join(partialTest, NASTY), { recursive: true });
  partial = await train({ data, testDir: partialTest, cacheDir: join(dir, 'cache'), out: join(dir, 'partial.model'), seed: 1 });
  const testFiles = result.files.filter((f) => f.split === 'test');
  const trainPhotos = result.files.length - testFiles.length;
  const compare: CompareResult = {
    transfer: {
      name: 'transfer',
      description: 'new softmax head on frozen mobilenet_v2',
      evaluation: result.evaluation,
      trainSeconds: result.timings.totalMs / 1000,
      trainableParams: result.classes.length * (result.backbone.featureDims + 1),
      imagesUsed: trainPhotos,
      pretraining: 'ImageNet-1k, 1.28 M photos',
    },
    scratch: {
      name: 'scratch',
      description: '4-block CNN, 64 px',
      evaluation: scratchEvaluation(result.evaluation, testFiles, result.classes.length),
      trainSeconds: 42.5,
      trainableParams: 1_234_567,
      imagesUsed: trainPhotos,
      epochs: 30,
      inputSize: 64,
      budgetSeconds: 60,
      library: 'TensorFlow.js 4.22 (wasm backend)',
    },
    verdict: 'Transfer learning is more accurate and faster to train.',
  };
  input = {
    ...reportFromTrain(result, `Report for ${NASTY}`, compare),
    crossValidation: { folds: 5, top1: { mean: 0.8, std: 0.05 }, topK: [{ k: 2, mean: 0.95, std: 0.02 }] },
  };
  // The data set moved after training: the first photo shown must become a placeholder.
  await rm(input.dataset.files[0]!.path);
  report = await renderReport(input, { maxThumbnailsPerClass: PER_CLASS });
});
after(() => rm(dir, { recursive: true, force: true }));

const count = (text: string, needle: string): number => text.split(needle).length - 1;

describe('renderReport on a real training run', () => {
  it('has mistakes to show (precondition of the gallery checks)', () => {
    assert.ok(input.evaluation.misclassified.length > 0, 'this data set is chosen so the head makes mistakes');
    assert.ok(input.history.some((h) => h.valLoss !== undefined), 'validation curves present');
    assert.ok(input.dataset.skipped.length >= 5);
  });

  it('escapes class names, file names and the title; keeps unicode', () => {
    const { html } = report;
    assert.ok(!html.includes('<b id="pwn">') && !html.includes('<i id="pwn2">'), 'no markup injected');
    assert.ok(count(html, escapeHtml(NASTY)) >= 5, 'nasty class name shown escaped in tables, headings and title');
    assert.ok(html.includes(`${escapeHtml(NASTY)}</title>`));
    assert.ok(html.includes(UNICODE), 'non-ASCII names stay as UTF-8 text');
    assert.match(html, /<meta charset="utf-8">/);
    assert.ok(html.includes(escapeHtml(`photos/pants/${NASTY_FILE}`)), 'skipped file listed relative to the data set root');
    if (input.evaluation.misclassified.some((m) => m.file.endsWith(NASTY_FILE))) assert.ok(html.includes(escapeHtml(`held-out/pants/${NASTY_FILE}`)));
    for (const s of input.dataset.skipped) assert.ok(html.includes(escapeHtml(s.reason)), `skipped reason shown: ${s.reason}`);
  });

  it('embeds one thumbnail per sample photo, per mistake and per photo of the most confused pair, and a placeholder for the missing photo', () => {
    const { html } = report;
    const samples = input.classes.length * PER_CLASS - 1;
    const pair = nextSteps(input).flatMap((step) => step.photos ?? []);
    assert.equal(count(html, '<img src="data:image/jpeg;base64,'), samples + input.evaluation.misclassified.length + pair.length);
    assert.equal(count(html, '<img '), count(html, '<img src="data:image/'), 'every image is a data: URI');
    assert.equal(count(html, 'class="thumb-missing"'), 1);
    assert.match(html, /class="thumb-missing"[^>]*title="[^"]*: file not found/);
    for (const m of input.evaluation.misclassified) assert.ok(html.includes(`${(m.confidence * 100).toFixed(0)}%`));
  });

  it('inlines the vega charts as SVG and returns decodable PNGs of them', async () => {
    const { html, charts } = report;
    assert.deepEqual(Object.keys(charts).sort(), ['compare', 'confusion', 'learningCurves']);
    for (const [name, chart] of Object.entries(charts)) {
      assert.ok(html.includes(chart.svg), `${name} SVG inline`);
      assert.match(chart.svg, /^<svg [^>]*class="marks"/);
      const image = sharp(chart.png);
      const meta = await image.metadata();
      assert.equal(meta.format, 'png');
      assert.ok((meta.width ?? 0) > 200 && (meta.height ?? 0) > 80, `${name} PNG ${meta.width}x${meta.height}`);
      // Something dark was drawn (axes, text, lines), not a blank white canvas.
      const stats = await image.stats();
      assert.ok(stats.channels.slice(0, 3).every((c) => c.min < 100), `${name} PNG has content`);
    }
    // Class names appear as axis labels of the confusion matrix, escaped by vega.
    assert.ok(charts.confusion!.svg.includes(escapeHtml(NASTY).replace(/&#39;/g, "'")));
  });

  it('refers to nothing outside the file', () => {
    const { html } = report;
    const refs = [...html.matchAll(/\s(?:src|href|xlink:href|action|poster|srcset)\s*=\s*"([^"]*)"/gi)].map((m) => m[1]!);
    assert.ok(refs.length > 10);
    for (const ref of refs) assert.match(ref, /^(data:|#)/, `local reference: ${ref.slice(0, 60)}`);
    assert.doesNotMatch(html, /url\(\s*['"]?(?!#)/, 'no CSS url() other than SVG fragment references');
    assert.doesNotMatch(html, /<script|<link rel="stylesheet"|@import|<iframe/i);
    // Inside tags only: vega leaves quotes unescaped in text content, where they are harmless.
    const ids = [...html.matchAll(/<[^>]*\sid="([^"]*)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length, `element ids unique across the inline SVGs: ${ids.join(' ')}`);
  });

  it('shows per-class metrics, top-k, cross-validation, the comparison and the setup', () => {
    const { html } = report;
    for (const id of ['data', 'learning', 'confusion', 'metrics', 'compare', 'setup']) assert.ok(html.includes(`<section id="${id}">`), id);
    assert.ok(html.includes(input.compare!.verdict));
    assert.ok(html.includes('1,234,567'), 'trainable params of the scratch model');
    assert.ok(html.includes('5 folds'));
    assert.ok(html.includes(input.backbone.sha256));
    assert.match(html, /<th>total<\/th><td>\d+(\.\d+)? (s|ms)<\/td>/, 'timings shown with units');
    assert.ok(html.includes(`${(input.evaluation.top1 * 100).toFixed(1)}%`));
  });
});

describe('the report, judged as a new user would', () => {
  it("is headed by the model's name, from the run and from its folder", async () => {
    assert.equal(reportFromTrain(result).title, MODEL);
    const fromFolder = await reportFromModel(join(dir, `${MODEL}.model`));
    assert.equal(fromFolder.title, MODEL);
    const { html } = await renderReport(fromFolder, { maxThumbnailsPerClass: 0 });
    assert.ok(html.includes(`<h1>${MODEL}</h1>`) && html.includes(`<title>${MODEL}</title>`));
  });

  it('leaves zero cells of the heat map white and unlabeled, and small counts visibly coloured', () => {
    const svg = report.charts.confusion!.svg;
    // One rect mark per cell, in data order (row by row), then one text mark per labeled cell.
    const fills = [...svg.matchAll(/aria-roledescription="rect mark" [^>]*fill="([^"]+)"/g)].map((m) => m[1]!);
    const counts = input.evaluation.confusion.flat();
    assert.equal(fills.length, counts.length);
    assert.ok(counts.includes(0) && counts.some((n) => n > 0 && n <= 2), `precondition: empty cells and small counts (${counts.join(' ')})`);
    for (const [i, n] of counts.entries()) {
      if (n === 0) assert.equal(fills[i], EMPTY_CELL, `cell ${i} is empty`);
      else assert.ok(Number(/^rgb\((\d+)/.exec(fills[i]!)?.[1] ?? 255) < 230, `count ${n} drawn in ${fills[i]}, visibly not white`);
    }
    const labels = [...svg.matchAll(/aria-roledescription="text mark"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    assert.deepEqual(labels, counts.filter((n) => n > 0).map(String));
  });

  it('names no best epoch on a handful of validation photos, and says why', () => {
    const photos = input.dataset.files.filter((f) => f.split === 'validation').length;
    assert.ok(photos > 0 && photos < 20, `precondition: a tiny validation set (${photos})`);
    assert.ok(report.html.includes(`The ${photos} validation photos are too few to pick an epoch`));
    assert.ok(!report.html.includes('best epoch') && !report.charts.learningCurves!.svg.includes('best epoch'));
  });

  it('says what to do next from the numbers: each weak class with its training photos and recall', () => {
    const ev = input.evaluation;
    const weak = ev.perClass.flatMap((m, c) => (m.recall !== null && m.recall < ev.top1 ? [{ m, c }] : []));
    assert.ok(weak.length > 0, 'precondition: a class below the overall accuracy');
    const section = report.html.slice(report.html.indexOf('<section id="next">'), report.html.indexOf('<section id="data">'));
    for (const { m, c } of weak) {
      const training = input.dataset.files.filter((f) => f.label === c && f.split !== 'test').length;
      const hits = ev.confusion[c]![c]!;
      const expected = `${m.label}: ${training} training photos, ${Math.round(m.recall! * 100)}% recall (${hits} of ${m.support} test photos`;
      assert.ok(section.includes(escapeHtml(expected)), `${expected} in ${section}`);
    }
    assert.ok(section.includes(`The test score rests on ${ev.count} photos`), 'the size of the test set and what it can show');
  });
});

describe('a class with no test photos', () => {
  it('has no scores in the metrics, the CLI table, headswap.json and the report', async () => {
    const c = partial.classes.indexOf(NASTY);
    const ev = partial.evaluation;
    assert.deepEqual(ev.perClass[c], { label: NASTY, support: 0, precision: null, recall: null, f1: null });
    const present = ev.perClass.flatMap((m) => (m.f1 === null ? [] : [m.f1]));
    assert.equal(present.length, partial.classes.length - 1);
    assert.ok(Math.abs(ev.macroF1 - present.reduce((a, b) => a + b, 0) / present.length) < 1e-12, 'macro-F1 over the classes with test photos');

    const row = formatEvaluation(ev).split('\n').find((l) => l.startsWith(NASTY)) ?? '';
    assert.match(row, /\s0\s+–\s+–\s+–$/, row);

    const saved = JSON.parse(await readFile(join(dir, 'partial.model', 'headswap.json'), 'utf8')) as ModelMetadata;
    assert.deepEqual(saved.metrics.perClass[c], { label: NASTY, support: 0, precision: null, recall: null, f1: null });

    const { html } = await renderReport(await reportFromModel(join(dir, 'partial.model')), { maxThumbnailsPerClass: 0 });
    assert.ok(html.includes(`<tr class="untested"><th>${escapeHtml(NASTY)}</th><td>0</td><td colspan="3" class="none">no test photos</td></tr>`));
    assert.equal(count(html, '>no test photos<'), 1, 'only that class');
    assert.equal(count(html, 'class="bar-cell"'), 3 * (partial.classes.length - 1), 'the other classes keep their scores');
    assert.ok(html.includes(escapeHtml(`1 of ${partial.classes.length} classes have no test photos (${NASTY})`)));
  });
});

describe('renderReport on a minimal input', () => {
  it('renders without validation, mistakes, comparison or existing photos', async () => {
    const photo = join(dir, 'gone.jpg');
    const evaluation = evaluate([{ file: photo, label: 0, probs: Float32Array.of(0.9, 0.1) }], ['a', 'b']);
    const minimal: ReportInput = {
      ...input,
      classes: ['a', 'b'],
      dataset: { files: [{ path: photo, label: 0, split: 'train' }], skipped: [] },
      history: [1, 2, 3].map((epoch) => ({ epoch, loss: 1 / epoch, accuracy: 0.5 + epoch / 10 })),
      bestEpoch: 3,
      evaluation,
      crossValidation: undefined,
      compare: undefined,
    };
    const { html, charts } = await renderReport(minimal);
    assert.deepEqual(Object.keys(charts).sort(), ['confusion', 'learningCurves']);
    assert.ok(html.includes('No validation photos'));
    assert.ok(!html.includes('best epoch'), 'without validation no epoch is called best');
    assert.ok(html.includes('No mistakes on the 1 test photos'));
    assert.ok(html.includes('None: every file in the folders was used'));
    assert.ok(!html.includes('<section id="compare">'));
    assert.equal(count(html, '<img '), 0);
    assert.equal(count(html, 'class="thumb-missing"'), 1);
    assert.ok(html.includes('no photos'), 'class b has no photo to show');
  });
});

describe('renderReport on a clearly overfitting head', () => {
  it('marks and names the best epoch when 400 validation photos show a sustained fall after it', async () => {
    // Validation accuracy rises to 90% at epoch 10, then falls to 72% by epoch 20.
    const history: EpochLog[] = Array.from({ length: 20 }, (_, i) => {
      const epoch = i + 1;
      const valAccuracy = Math.round((epoch <= 10 ? 0.5 + 0.04 * epoch : 0.9 - 0.018 * (epoch - 10)) * 400) / 400;
      return { epoch, loss: 1 / epoch, accuracy: Math.min(1, 0.6 + epoch / 40), valLoss: 1.2 - valAccuracy, valAccuracy };
    });
    const files = Array.from({ length: 400 }, (_, i) => ({ path: join(dir, `gone-${i}.jpg`), label: i % 2, split: 'validation' as const }));
    const clear: ReportInput = { ...input, classes: input.classes, dataset: { files, skipped: [] }, history, bestEpoch: 10, compare: undefined };
    const { html, charts } = await renderReport(clear, { maxThumbnailsPerClass: 0 });
    assert.ok(charts.learningCurves!.svg.includes('best epoch 10'));
    assert.ok(html.includes('The dashed line marks epoch 10 of 20'));
    assert.match(html, /is beyond noise above the \d+\.\d% the 10 later epochs averaged/);
  });
});

describe('renderChart', () => {
  it('never fetches: a spec that points at a URL gets no request', async () => {
    const server = await startServer({ '/data.json': (_req, res) => res.end('[{"a": 1}]') });
    try {
      const chart = await renderChart({ data: { url: `${server.url}/data.json` }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' } } });
      assert.match(chart.svg, /^<svg /);
      assert.deepEqual(server.requests, []);
    } finally {
      await server.close();
    }
  });
});

describe('the report in a real browser', () => {
  it('loads nothing from the network, renders the charts and every image', async (t) => {
    const reason = browserUnavailable();
    if (reason) return t.skip(reason);
    const file = join(dir, 'report.html');
    await writeFile(file, report.html);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const requests: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
      const state = await page.evaluate(() => ({
        charts: [...document.querySelectorAll('figure.chart svg')].map((svg) => {
          const box = svg.getBoundingClientRect();
          const texts = [...svg.querySelectorAll('text')].filter((t) => t.getBoundingClientRect().width > 0).length;
          return { width: box.width, height: box.height, texts };
        }),
        images: [...document.images].map((img) => ({ ok: img.complete && img.naturalWidth > 0, alt: img.alt })),
        placeholders: document.querySelectorAll('.thumb-missing').length,
        injected: document.querySelectorAll('#pwn, #pwn2').length,
        text: document.body.innerText,
        overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      }));
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      t.diagnostic(`screenshot: ${SCREENSHOT}`);

      const foreign = requests.filter((u) => !/^(file|data|about):/.test(u));
      assert.deepEqual(foreign, [], 'no request leaves the machine');
      assert.deepEqual(problems, [], 'no console errors (a CSP violation would show here)');
      assert.equal(state.charts.length, 3);
      for (const c of state.charts) assert.ok(c.width > 100 && c.height > 50 && c.texts > 3, JSON.stringify(c));
      assert.ok(state.images.length > 10);
      assert.deepEqual(state.images.filter((i) => !i.ok), [], 'every <img> decoded');
      assert.equal(state.placeholders, 1);
      assert.equal(state.injected, 0, 'class and file names are text, not markup');
      assert.ok(state.text.includes(NASTY) && state.text.includes(UNICODE));
      assert.ok(state.overflow <= 0, `page scrolls sideways by ${state.overflow}px`);
    } finally {
      await browser.close();
    }
  });
});
