import { basename, extname, resolve } from 'node:path';
import type { OverlayOptions } from 'sharp';
import { Backbone } from '../backbone/backbone.js';
import { DEFAULT_BACKBONE } from '../backbone/zoo.js';
import { HeadswapError } from '../errors.js';
import { loadRgb, type ImageInput } from '../image/preprocess.js';
import type { RgbImage } from '../image/types.js';
import { writeFileAtomic } from '../util/fs.js';
import { classSection, renderClassSheet } from './cam-sheet.js';
import { ModelExplainer, type ModelExplanation } from './cam.js';
import { filterGrid, firstConvolution, type FirstConvolution } from './filters.js';
import { activations, channelPlane, chooseLayers, runNetwork, strongestChannels, type MapLayer } from './layers.js';
import { colourBar, composeSheet, escapeMarkup, fromRgb, overlay, rawRgb, type Label } from './render.js';

export interface ExplainOptions {
  /** Backbone: zoo id, `.onnx` path or URL, or one already loaded. Default `mobilenet_v2`, or the model's first backbone with `model`. */
  readonly base?: string | Backbone;
  /** Strongest channels shown per depth; default 6. */
  readonly channels?: number;
  /** A trained model folder (or one opened): adds its class activation maps (`classMaps`). */
  readonly model?: string | ModelExplainer;
  /** Classes to map besides the predicted one (with `model`). */
  readonly classes?: readonly string[];
  /** Intra-op threads for the model; default all cores. */
  readonly threads?: number;
}

/** Class activation maps of a model on one photo, and their picture. */
export interface ClassMaps extends ModelExplanation {
  /** The photo as the model sees it (its input size), which the maps cover. */
  readonly photo: RgbImage;
  /** The picture: the photo with each class's map as a heat overlay, class and probability written on it. */
  readonly png: Buffer;
  readonly width: number;
  readonly height: number;
}

export interface ExplainedChannel {
  readonly index: number;
  /** Mean activation over the map for this image (dequantized). */
  readonly mean: number;
}

export interface ExplainedLayer extends MapLayer {
  /** Strongest first. */
  readonly strongest: readonly ExplainedChannel[];
}

export interface ExplainedFilters {
  readonly node: string;
  readonly op: 'Conv' | 'QLinearConv';
  readonly weightTensor: string;
  readonly quantized: boolean;
  /** `[filters, inputChannels, kernelHeight, kernelWidth]`. */
  readonly dims: readonly [number, number, number, number];
  readonly strides: readonly [number, number];
}

export interface ExplainResult {
  /** Name of the image as given. */
  readonly image: string;
  /** The backbone as the user named it. */
  readonly base: string;
  readonly filters: ExplainedFilters;
  /** The four depths, early to late. */
  readonly layers: readonly ExplainedLayer[];
  /** The contact sheet. */
  readonly png: Buffer;
  readonly width: number;
  readonly height: number;
  /** A self-contained page embedding the sheet (data: URI) with the same labels as text. */
  readonly html: string;
  /** With `model`: why it predicts what it does. */
  readonly classMaps?: ClassMaps;
}

export const DEFAULT_CHANNELS = 6;
export const MAX_CHANNELS = 16;

/** Longest side of a photo tile in the sheet. */
const TILE = 224;
const MARGIN = 20;
const GAP = 10;
const LABEL_WIDTH = 270;
const CAPTION = 22;
const HEADER = 68;
/** Room right of the filters for the colour scale and the notes. */
const LEGEND_WIDTH = 480;

/**
 * Shows what a frozen backbone computes on one photo, as in the classic transfer-learning slide:
 * the first layer's filters, then the most active channels of four feature maps from early to late
 * as heat maps over the photo.
 */
export async function explainImage(image: ImageInput, options: ExplainOptions = {}): Promise<ExplainResult> {
  const k = options.channels ?? DEFAULT_CHANNELS;
  if (!Number.isInteger(k) || k < 1 || k > MAX_CHANNELS) throw new HeadswapError(`channels must be a whole number from 1 to ${MAX_CHANNELS}, got ${k}`);
  const classMaps = options.model === undefined ? undefined : await explainClasses(image, options.model, options);
  const base = options.base ?? classMaps?.backbone ?? DEFAULT_BACKBONE;
  const layers = await explainLayers(image, base, k);
  if (!classMaps) return layers;
  const { backbone: _backbone, ...maps } = classMaps;
  return { ...layers, html: layers.html.replace('</body>', `${classSection(maps, maps)}</body>`), classMaps: maps };
}

/**
 * Class activation maps of a trained model folder (or one opened) on one photo: the predicted
 * class and `classes`, each member's map and their probability-weighted mean, and the picture.
 * Also names the model's first backbone (`backbone`), whose layers `explainImage` shows.
 */
export async function explainClasses(
  image: ImageInput,
  model: string | ModelExplainer,
  options: { readonly classes?: readonly string[]; readonly threads?: number; readonly pixelLimit?: number } = {},
): Promise<ClassMaps & { readonly backbone: string }> {
  const explainer = model instanceof ModelExplainer ? model : await ModelExplainer.load(model, { threads: options.threads });
  try {
    // Class names are checked before the photo is decoded: a typo costs nothing.
    for (const c of options.classes ?? []) explainer.classIndex(c);
    const photo = await explainer.loadImage(image, { pixelLimit: options.pixelLimit });
    const explanation = await explainer.explain(photo, options.classes);
    const sheet = await renderClassSheet({ name: typeof image === 'string' ? image : image.name, photo, explanation });
    return { ...explanation, photo, ...sheet, backbone: explainer.metadata.backbone.origin };
  } finally {
    if (!(model instanceof ModelExplainer)) await explainer.release();
  }
}

async function explainLayers(image: ImageInput, source: string | Backbone, k: number): Promise<ExplainResult> {
  const backbone = source instanceof Backbone ? source : await Backbone.load(source);
  const base = backbone.source.origin;
  const conv = firstConvolution(backbone.graph(), base);
  const photo = await loadRgb(image, backbone.preprocessing);
  const run = await runNetwork(backbone, photo);
  const maps = activations(run, chooseLayers(run, conv.output));
  const layers = maps.map((a) => ({ ...a.layer, strongest: strongestChannels(a, Math.min(k, a.layer.channels)) }));
  const tiles = await Promise.all(
    maps.map((a, i) => Promise.all(layers[i]!.strongest.map((c) => overlay(photo, channelPlane(a, c.index), a.layer.size[0], a.layer.size[1])))),
  );
  const filters: ExplainedFilters = { node: conv.node, op: conv.op, weightTensor: conv.weightTensor, quantized: conv.quantized, dims: conv.dims, strides: conv.strides };
  const name = typeof image === 'string' ? image : image.name;
  // Titles name a file or URL backbone by its file name: short, and the page stays free of URLs.
  const network = backbone.id === 'custom' ? basename(base) : backbone.id;
  const sheet = await renderSheet({ name, network, photo, conv, filters, layers, tiles });
  const html = renderHtml({ name, network, filters, layers, ...sheet });
  return { image: name, base, filters, layers, ...sheet, html };
}

interface SheetInput {
  readonly name: string;
  readonly network: string;
  readonly photo: RgbImage;
  readonly conv: FirstConvolution;
  readonly filters: ExplainedFilters;
  readonly layers: readonly ExplainedLayer[];
  readonly tiles: readonly (readonly RgbImage[])[];
}

/** Shortens long tensor names in the middle so they fit the sheet's label column (the HTML has them whole). */
function clip(name: string, max = 31): string {
  return name.length <= max ? name : `${name.slice(0, Math.ceil((max - 1) / 2))}…${name.slice(-Math.floor((max - 1) / 2))}`;
}

function shape(dims: readonly number[]): string {
  return `[${dims.join(', ')}]`;
}

function filterCaption(f: ExplainedFilters): string {
  const [n, c, kh, kw] = f.dims;
  return `${n} filters of ${kh}x${kw}x${c}, stride ${f.strides[0]}`;
}

/**
 * The contact sheet: a header; the photo as the network sees it next to the first-layer filters
 * and the colour scale; then one row per depth with its label column and the overlays. Labels
 * are drawn into the PNG so the sheet explains itself when shared alone.
 */
async function renderSheet(s: SheetInput): Promise<{ png: Buffer; width: number; height: number }> {
  const fit = TILE / Math.max(s.photo.width, s.photo.height);
  const [tw, th] = [Math.round(s.photo.width * fit), Math.round(s.photo.height * fit)];
  const tile = async (image: RgbImage): Promise<OverlayOptions> =>
    fit === 1 ? rawRgb(image) : { input: await fromRgb(image).resize(tw, th, { kernel: 'lanczos3' }).png().toBuffer() };
  const left = MARGIN + LABEL_WIDTH;
  const rowHeight = th + CAPTION + GAP;
  const grid = filterGrid(s.conv, th);
  const [gw, gh] = [grid.width, grid.height];
  const columns = Math.max(...s.layers.map((l) => l.strongest.length));
  const width = Math.max(left + columns * (tw + GAP) - GAP, left + tw + 2 * GAP + gw + 2 * GAP + LEGEND_WIDTH) + MARGIN;
  const height = MARGIN + HEADER + rowHeight * (1 + s.layers.length) + MARGIN;
  const images: OverlayOptions[] = [];
  const labels: Label[] = [];
  const label = (x: number, y: number, text: string, size: number, extra: Partial<Label> = {}): void => {
    labels.push({ x, y, text, size, ...extra });
  };

  label(MARGIN, MARGIN + 26, `What ${s.network} sees in ${basename(s.name)}`, 26, { weight: 'bold', colour: '#ffffff' });
  label(MARGIN, MARGIN + 48, 'first-layer filters, then the most active channels at four depths, each as a heat map over the photo', 15, { colour: '#a8a8b0' });

  let y = MARGIN + HEADER;
  images.push({ ...(await tile(s.photo)), left, top: y });
  label(left, y + th + 16, `network input ${s.photo.width}x${s.photo.height}`, 13, { colour: '#a8a8b0' });
  const gx = left + tw + 2 * GAP;
  images.push({ ...rawRgb(grid), left: gx, top: y });
  label(gx, y + gh + 16, `${filterCaption(s.filters)} (${clip(s.filters.weightTensor)}${s.filters.quantized ? ', dequantized' : ''})`, 13, { mono: true, colour: '#a8a8b0' });
  label(MARGIN, y + 22, 'the photo, and', 18, { weight: 'bold' });
  label(MARGIN, y + 46, 'layer 1 filters', 18, { weight: 'bold' });
  label(MARGIN, y + 70, 'grey = weight 0; each filter', 13, { colour: '#a8a8b0' });
  label(MARGIN, y + 88, 'stretched to its largest weight', 13, { colour: '#a8a8b0' });
  const bx = gx + gw + 2 * GAP;
  images.push({ ...rawRgb(colourBar(180, 14)), left: bx, top: y + 24 });
  label(bx, y + 16, 'heat map: activation', 13, { colour: '#a8a8b0' });
  label(bx, y + 54, 'low', 12, { colour: '#a8a8b0' });
  label(bx + 180 - 28, y + 54, 'high', 12, { colour: '#a8a8b0' });
  label(bx, y + 78, 'each channel on its own scale', 12, { colour: '#a8a8b0' });
  const notes = [
    'How to read it: each row is one depth of the frozen network, each tile',
    'one channel (a feature detector) that this photo activates strongly.',
    'Early layers respond to light, dark and colour; deeper ones to edges',
    'and textures, then shapes, then object parts, on ever coarser grids.',
    'headswap keeps all of this and trains only a new last layer.',
  ];
  notes.forEach((line, i) => label(bx, y + 120 + i * 19, line, 13, { colour: '#c8c8d0' }));

  for (const [i, layer] of s.layers.entries()) {
    y += rowHeight;
    label(MARGIN, y + 22, `layer ${layer.depth}: ${layer.title}`, 18, { weight: 'bold' });
    label(MARGIN, y + 46, clip(layer.tensor), 13, { mono: true });
    label(MARGIN, y + 66, `${shape(layer.dims)} ${layer.layout}`, 13, { mono: true, colour: '#a8a8b0' });
    label(MARGIN, y + 86, `stride ${layer.stride}, ${layer.size[0]}x${layer.size[1]} map`, 13, { colour: '#a8a8b0' });
    label(MARGIN, y + 106, `top ${layer.strongest.length} of ${layer.channels} channels`, 13, { colour: '#a8a8b0' });
    label(MARGIN, y + 124, 'by mean activation', 13, { colour: '#a8a8b0' });
    for (const [j, c] of layer.strongest.entries()) {
      const x = left + j * (tw + GAP);
      images.push({ ...(await tile(s.tiles[i]![j]!)), left: x, top: y });
      label(x, y + th + 16, `channel ${c.index} · mean ${c.mean.toFixed(2)}`, 13, { colour: '#a8a8b0' });
    }
  }
  return { png: await composeSheet(width, height, images, labels), width, height };
}

/** A page that opens anywhere offline: the sheet inline as a data: URI, the labels again as text. */
function renderHtml(p: { name: string; network: string; filters: ExplainedFilters; layers: readonly ExplainedLayer[]; png: Buffer; width: number; height: number }): string {
  const title = `What ${p.network} sees in ${basename(p.name)}`;
  const rows = p.layers
    .map(
      (l) =>
        `<tr><td>layer ${l.depth}: ${escapeMarkup(l.title)}</td><td><code>${escapeMarkup(l.tensor)}</code></td><td><code>${shape(l.dims)}</code> ${l.layout}</td><td>${l.stride}</td><td>${l.strongest.map((c) => `${c.index} (${c.mean.toFixed(3)})`).join(', ')}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeMarkup(title)}</title>
<style>
body { margin: 0; padding: 24px; background: #121216; color: #e8e8e8; font: 15px/1.5 system-ui, sans-serif; }
img { max-width: 100%; height: auto; display: block; margin: 16px 0; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid #333; vertical-align: top; }
code { font-family: ui-monospace, monospace; }
p { max-width: 60em; color: #b8b8c0; }
</style>
</head>
<body>
<h1>${escapeMarkup(title)}</h1>
<p>A network trained on ImageNet builds its picture of a photo in stages. Its first layer's filters
(${escapeMarkup(filterCaption(p.filters))}, from <code>${escapeMarkup(p.filters.weightTensor)}</code>) respond to light and dark
and to colour contrasts; later layers combine them into edges, then shapes, then parts of objects. Each row below
shows the channels of one layer that respond most to this photo (highest mean activation), as heat maps over the
photo: bright means strong activation, on each channel's own scale. headswap keeps all of this frozen and trains
only a new last layer on your classes.</p>
<img src="data:image/png;base64,${p.png.toString('base64')}" width="${p.width}" height="${p.height}" alt="${escapeMarkup(title)}: first-layer filters and heat maps of the most active channels at four depths">
<table>
<tr><th>depth</th><th>tensor</th><th>shape</th><th>stride</th><th>strongest channels (mean activation)</th></tr>
${rows}
</table>
</body>
</html>
`;
}

/** Where `explain` writes by default: `<image name>.explain.png` in the current directory. */
export function defaultOut(image: string): string {
  return resolve(`${basename(image, extname(image))}.explain.png`);
}

/**
 * Runs `explainImage` and writes the sheet to `out` (a `.png`), the page next to it (`.html`)
 * and, with `model`, the class maps' picture next to it (`.classes.png`), each atomically.
 */
export async function explain(
  image: string,
  options: ExplainOptions & { readonly out?: string } = {},
): Promise<ExplainResult & { readonly pngPath: string; readonly htmlPath: string; readonly classesPath?: string }> {
  const pngPath = resolve(options.out ?? defaultOut(image));
  if (extname(pngPath).toLowerCase() !== '.png') throw new HeadswapError(`${options.out}: the output must be a .png file (the .html page is written next to it)`);
  const result = await explainImage(image, options);
  const stem = pngPath.slice(0, -extname(pngPath).length);
  const htmlPath = `${stem}.html`;
  const classesPath = result.classMaps && `${stem}.classes.png`;
  await writeFileAtomic(pngPath, result.png);
  await writeFileAtomic(htmlPath, result.html);
  if (classesPath) await writeFileAtomic(classesPath, result.classMaps!.png);
  return { ...result, pngPath, htmlPath, ...(classesPath ? { classesPath } : {}) };
}
