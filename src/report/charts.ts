/**
 * The report's charts: Vega-Lite specs with inline data, compiled by vega-lite and rendered to
 * SVG by vega's headless view (no DOM, no canvas), then to PNG by sharp.
 */
import sharp from 'sharp';
import type * as Vega from 'vega';
import type { TopLevelSpec } from 'vega-lite';
import type { CompareResult } from '../compare/types.js';
import type { EpochLog } from '../head/train.js';
import type { ValidationBand } from './curves.js';

export interface Chart {
  readonly svg: string;
  readonly png: Uint8Array;
}

/** The page's font stack, so chart text matches the report (no web fonts: nothing to fetch). */
export const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const SPLIT_COLORS = { train: '#4c78a8', validation: '#f58518' } as const;
/** Fill and outline of a confusion cell with count 0. */
export const EMPTY_CELL = '#ffffff';
const EMPTY_CELL_STROKE = '#dde1e8';
/** Where on vega's "blues" scheme a share just above 0 starts: light, yet clearly not white. */
const FIRST_BLUE = 0.2;
/** 2x: PNGs stay sharp on high-density screens and in slides. */
const PNG_DENSITY = 144;

const CONFIG = {
  font: FONT,
  background: 'white',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 13, fontWeight: 'bold' as const, anchor: 'start' as const },
};

const refuse = (uri: string): Promise<never> => Promise.reject(new Error(`report charts load nothing (asked for ${uri})`));
/**
 * A loader that refuses everything: the specs carry their data inline, and a report must never
 * reach the network or the file system while rendering (e.g. through a data or image url).
 */
const NO_LOADER: Vega.Loader = { load: refuse, sanitize: refuse, http: refuse, file: refuse };

/**
 * Renders a spec to SVG and PNG. Without node-canvas, vega estimates text widths from the font
 * size and character count; that only changes where long labels are cut and how much room they
 * get, since the SVG text itself is drawn by the browser (or librsvg for the PNG).
 */
export async function renderChart(spec: TopLevelSpec): Promise<Chart> {
  // Loaded on first use: vega's module graph has a top-level await (vega-canvas), which would
  // stop CommonJS consumers from require()-ing any entry that imports this file.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = compile({ ...spec, config: CONFIG }, { logger: vega.logger(vega.Error) }).spec;
  // vega-lite's Vega spec type and vega's own typings are separate packages that differ in detail.
  const view = new vega.View(vega.parse(compiled as Vega.Spec), { renderer: 'none', loader: NO_LOADER, logLevel: vega.Error });
  try {
    const svg = await view.toSVG();
    const png = await sharp(Buffer.from(svg), { density: PNG_DENSITY }).png().toBuffer();
    return { svg, png: new Uint8Array(png.buffer, png.byteOffset, png.byteLength) };
  } finally {
    view.finalize();
  }
}

/**
 * Loss and accuracy per epoch, train vs validation side by side. Validation lines appear only for
 * epochs that have them; `band` shades validation accuracy's 95% interval on the validation
 * photos; `marked` draws the best epoch, only when it stands out of that noise (report/curves.ts).
 */
export function learningCurvesSpec(history: readonly EpochLog[], marked: number | undefined, band: readonly ValidationBand[] = []): TopLevelSpec {
  const values = history.flatMap((h) => [
    { epoch: h.epoch, split: 'train', metric: 'loss', value: h.loss },
    { epoch: h.epoch, split: 'train', metric: 'accuracy', value: h.accuracy },
    ...(h.valLoss === undefined ? [] : [{ epoch: h.epoch, split: 'validation', metric: 'loss', value: h.valLoss }]),
    ...(h.valAccuracy === undefined ? [] : [{ epoch: h.epoch, split: 'validation', metric: 'accuracy', value: h.valAccuracy }]),
  ]);
  const splits = [...new Set(values.map((v) => v.split))] as (keyof typeof SPLIT_COLORS)[];
  const best = marked !== undefined && history.some((h) => h.epoch === marked) ? [{ epoch: marked, label: `best epoch ${marked}` }] : [];
  // Points help read short runs; on long runs they only clutter the line.
  const point = history.length <= 40;
  // The label goes on the side of the rule with more room.
  const side = (marked ?? 0) > 0.6 * (history.at(-1)?.epoch ?? 0) ? { align: 'right' as const, dx: -4 } : { align: 'left' as const, dx: 4 };
  const x = { field: 'epoch', type: 'quantitative' as const, title: 'epoch', scale: { nice: false, zero: false }, axis: { tickMinStep: 1, format: 'd' } };
  const panel = (metric: 'loss' | 'accuracy', title: string) => ({
    title,
    width: 390,
    height: 230,
    layer: [
      // Drawn first, under the lines: the range validation accuracy could take by chance alone.
      ...(metric === 'accuracy' && band.length > 0
        ? [
            {
              data: { values: band.map((b) => ({ epoch: b.epoch, lo: b.lo, hi: b.hi })) },
              mark: { type: 'area' as const, color: SPLIT_COLORS.validation, opacity: 0.16 },
              encoding: { x, y: { field: 'lo', type: 'quantitative' as const }, y2: { field: 'hi' } },
            },
          ]
        : []),
      {
        data: { values },
        transform: [{ filter: { field: 'metric', equal: metric } }],
        mark: { type: 'line' as const, point, strokeWidth: 2 },
        encoding: {
          x,
          y:
            metric === 'accuracy'
              ? { field: 'value', type: 'quantitative' as const, title: 'accuracy', scale: { domain: [0, 1] }, axis: { format: '%' } }
              : { field: 'value', type: 'quantitative' as const, title: 'loss' },
          color: {
            field: 'split',
            type: 'nominal' as const,
            title: null,
            scale: { domain: splits, range: splits.map((s) => SPLIT_COLORS[s]) },
            legend: { orient: 'bottom' as const },
          },
        },
      },
      {
        data: { values: best },
        mark: { type: 'rule' as const, strokeDash: [4, 3], color: '#555' },
        encoding: { x: { field: 'epoch', type: 'quantitative' as const } },
      },
      {
        data: { values: best },
        // Beside the rule where the curves usually are not: loss falls (label on top), accuracy rises (label at the bottom).
        mark:
          metric === 'loss'
            ? { type: 'text' as const, ...side, baseline: 'top' as const, y: 2, color: '#555', fontSize: 11 }
            : { type: 'text' as const, ...side, baseline: 'bottom' as const, y: { expr: 'height - 2' }, color: '#555', fontSize: 11 },
        encoding: { x: { field: 'epoch', type: 'quantitative' as const }, text: { field: 'label' } },
      },
    ],
  });
  return { hconcat: [panel('loss', 'Loss'), panel('accuracy', 'Accuracy')], spacing: 40 };
}

/**
 * Confusion matrix heat map: rows are true classes, columns predictions, colored by the share
 * of the row (so classes of different sizes compare), each non-zero cell labeled with its count.
 * Empty cells are white with a grey outline, and the colour scale starts at a visible blue, so
 * one stray mistake stands out from no mistake at all.
 */
export function confusionSpec(classes: readonly string[], confusion: readonly (readonly number[])[]): TopLevelSpec {
  const values = confusion.flatMap((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((count, p) => ({ truth: classes[t] ?? String(t), predicted: classes[p] ?? String(p), count, share: total > 0 ? count / total : 0 }));
  });
  // Cells shrink with many classes so the matrix stays on screen; counts go once they are unreadable.
  const step = Math.max(12, Math.min(56, Math.floor(560 / Math.max(1, classes.length))));
  const order = [...classes];
  // Without a canvas, vega lays out text by estimated widths that run wide: axis titles would float
  // far from the labels (a short subtitle says it instead) and rotated labels reserve too much room
  // (so they are capped shorter). Labels stay horizontal when every name fits its column (~7 px a
  // character at 11 px).
  const horizontal = classes.every((c) => [...c].length * 7 <= step);
  const x = {
    field: 'predicted',
    type: 'nominal' as const,
    sort: order,
    title: null,
    axis: { labelAngle: horizontal ? 0 : -40, labelLimit: horizontal ? 240 : 130, ticks: false, domain: false },
  };
  const y = { field: 'truth', type: 'nominal' as const, sort: order, title: null, axis: { labelLimit: 240, ticks: false, domain: false } };
  return {
    title: { text: 'Confusion matrix', subtitle: 'rows: true class, columns: predicted' },
    data: { values },
    width: { step },
    height: { step },
    layer: [
      {
        mark: { type: 'rect', stroke: EMPTY_CELL_STROKE, strokeWidth: 1 },
        encoding: {
          x,
          y,
          color: {
            field: 'share',
            type: 'quantitative',
            title: 'share of row',
            scale: { scheme: { name: 'blues', extent: [FIRST_BLUE, 1] }, domain: [0, 1] },
            legend: { format: '%' },
            condition: { test: 'datum.count === 0', value: EMPTY_CELL },
          },
        },
      },
      ...(step >= 18
        ? [
            {
              transform: [{ filter: 'datum.count > 0' }],
              mark: { type: 'text' as const, fontSize: Math.min(14, step / 2.6) },
              encoding: {
                x,
                y,
                text: { field: 'count', type: 'quantitative' as const },
                color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: '#222' },
              },
            },
          ]
        : []),
    ],
  };
}

/** Top-1 of transfer vs scratch as bars with their 95% intervals: the "why" in one picture. */
export function compareSpec(compare: CompareResult): TopLevelSpec {
  const values = [compare.transfer, compare.scratch].map((a) => ({
    approach: a.name === 'transfer' ? 'transfer' : 'from scratch',
    top1: a.evaluation.top1,
    lo: a.evaluation.top1Ci95[0],
    hi: a.evaluation.top1Ci95[1],
    label: `${(a.evaluation.top1 * 100).toFixed(1)}%`,
  }));
  const y = { field: 'approach', type: 'nominal' as const, title: null, sort: null, axis: { labelLimit: 220 } };
  return {
    data: { values },
    width: 480,
    height: { step: 36 },
    layer: [
      {
        mark: { type: 'bar', color: '#4c78a8', opacity: 0.85 },
        encoding: { y, x: { field: 'top1', type: 'quantitative', title: 'top-1 accuracy (bar) and 95% interval (line)', scale: { domain: [0, 1] }, axis: { format: '%', tickCount: 5 } } },
      },
      { mark: { type: 'rule', color: '#222', strokeWidth: 1.5 }, encoding: { y, x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } } },
      {
        mark: { type: 'text', align: 'left', dx: 6, color: '#222', fontSize: 11 },
        encoding: { y, x: { field: 'hi', type: 'quantitative' }, text: { field: 'label' } },
      },
    ],
  };
}
