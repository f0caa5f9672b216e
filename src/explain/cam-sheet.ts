import { basename } from 'node:path';
import type { OverlayOptions } from 'sharp';
import type { RgbImage } from '../image/types.js';
import type { ActivationMap, ClassActivation, ModelExplanation } from './cam.js';
import { colourBar, composeSheet, escapeMarkup, fromRgb, overlay, rawRgb, type Label } from './render.js';

const MARGIN = 20;
const GAP = 10;
const LABEL_WIDTH = 230;
const CAPTION = 22;
const HEADER = 68;

/**
 * The colour scale of a class map: 0 to its largest value, so bright is evidence for the class
 * and dark is none or evidence against (as Grad-CAM shows its ReLU); a map with no positive cell
 * is stretched min..max instead, so it still shows where it is least negative.
 */
export function camScale(map: ActivationMap): readonly [number, number] {
  let [lo, hi] = [Infinity, -Infinity];
  for (const v of map.data) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return hi > 0 ? [0, hi] : [lo, hi];
}

/** The photo with a class map as a heat overlay, on the map's own scale. */
export function camOverlay(photo: RgbImage, map: ActivationMap): Promise<RgbImage> {
  return overlay(photo, map.data, map.height, map.width, camScale(map));
}

/** `camOverlay` as the bytes of a PNG file. */
export async function camPng(photo: RgbImage, map: ActivationMap): Promise<Buffer> {
  return fromRgb(await camOverlay(photo, map)).png().toBuffer();
}

export function percent(p: number): string {
  return `${(100 * p).toFixed(p >= 0.9995 || p < 0.0005 ? 2 : 1)}%`;
}

function methodText(e: ModelExplanation): string {
  return e.method === 'cam' ? "CAM: exact, from the linear head's weights" : "Grad-CAM: the head's gradient per cell times the activation";
}

/**
 * The class maps as one picture: a header naming the prediction, the photo as the network sees
 * it with the legend, then one row per class: the model's map (for an ensemble, its members'
 * maps weighted by their probabilities) and each member's own. Labels are drawn into the PNG.
 */
export async function renderClassSheet(s: { readonly name: string; readonly photo: RgbImage; readonly explanation: ModelExplanation }): Promise<{ png: Buffer; width: number; height: number }> {
  const e = s.explanation;
  const [tw, th] = [s.photo.width, s.photo.height];
  const ensemble = e.classes[0]!.members.length > 1;
  const columns = 1 + (ensemble ? e.classes[0]!.members.length : 0);
  const left = MARGIN + LABEL_WIDTH;
  const rowHeight = th + CAPTION + GAP;
  const width = Math.max(left + columns * (tw + GAP) - GAP, left + tw + 2 * GAP + 490) + MARGIN;
  const height = MARGIN + HEADER + rowHeight * (1 + e.classes.length) + MARGIN;
  const images: OverlayOptions[] = [];
  const labels: Label[] = [];
  const label = (x: number, y: number, text: string, size: number, extra: Partial<Label> = {}): void => {
    labels.push({ x, y, text, size, ...extra });
  };
  const top = e.classes[0]!;
  const { width: mw, height: mh } = top.map;
  label(MARGIN, MARGIN + 26, `Why the model says '${top.label}' (${percent(top.probability)}) for ${basename(s.name)}`, 24, { weight: 'bold', colour: '#ffffff' });
  label(MARGIN, MARGIN + 48, `class activation maps over the backbone's last ${mw}x${mh} map${e.tta ? ', photo and mirror image averaged' : ''}`, 14, { colour: '#a8a8b0' });

  let y = MARGIN + HEADER;
  images.push({ ...rawRgb(s.photo), left, top: y });
  label(left, y + th + 16, `network input ${tw}x${th}`, 13, { colour: '#a8a8b0' });
  label(MARGIN, y + 22, 'the photo', 18, { weight: 'bold' });
  const bx = left + tw + 2 * GAP;
  label(bx, y + 16, 'heat map: evidence for the class', 13, { colour: '#a8a8b0' });
  images.push({ ...rawRgb(colourBar(180, 14)), left: bx, top: y + 24 });
  label(bx, y + 54, 'none', 12, { colour: '#a8a8b0' });
  label(bx + 180 - 28, y + 54, 'most', 12, { colour: '#a8a8b0' });
  const notes = [
    'How to read it: the trained head scores each class from the average',
    `of the backbone's last map; each cell's share of that score is shown,`,
    'so bright regions are what pushed the model towards the class.',
    'Each map is on its own scale (0 to its strongest cell).',
    `${methodText(e)}.`,
    ...(ensemble ? ['Ensemble: the members\' maps weighted by their probabilities.'] : []),
  ];
  notes.forEach((line, i) => label(bx, y + 90 + i * 19, line, 13, { colour: '#c8c8d0' }));

  for (const [i, c] of e.classes.entries()) {
    y += rowHeight;
    label(MARGIN, y + 22, c.label, 20, { weight: 'bold' });
    label(MARGIN, y + 46, `probability ${percent(c.probability)}`, 14);
    label(MARGIN, y + 68, i === 0 ? 'the predicted class' : `asked for (rank ${rank(e, c)})`, 13, { colour: '#a8a8b0' });
    const tiles: { map: ActivationMap; caption: string }[] = [{ map: c.map, caption: ensemble ? `ensemble · ${percent(c.probability)}` : `${c.members[0]!.backbone} · ${percent(c.probability)}` }];
    if (ensemble) tiles.push(...c.members.map((m) => ({ map: m.map, caption: `${m.backbone} · ${percent(m.probability)}` })));
    for (const [j, t] of tiles.entries()) {
      const x = left + j * (tw + GAP);
      images.push({ ...rawRgb(await camOverlay(s.photo, t.map)), left: x, top: y });
      label(x, y + th + 16, t.caption, 13, { colour: '#a8a8b0' });
    }
  }
  return { png: await composeSheet(width, height, images, labels), width, height };
}

/** 1-based rank of a class by the model's probability. */
function rank(e: ModelExplanation, c: ClassActivation): number {
  return 1 + [...e.probabilities].filter((p, i) => p > c.probability || (p === c.probability && i < c.index)).length;
}

/** The class maps' part of the explain page: the picture and the numbers as text. */
export function classSection(e: ModelExplanation, sheet: { png: Buffer; width: number; height: number }): string {
  const rows = e.classes
    .map((c) => `<tr><td>${escapeMarkup(c.label)}</td><td>${percent(c.probability)}</td><td>${c.members.map((m) => `${escapeMarkup(m.backbone)} ${percent(m.probability)} (${m.method})`).join(', ')}</td></tr>`)
    .join('\n');
  return `<h2>Why the model says '${escapeMarkup(e.classes[0]!.label)}'</h2>
<p>Class activation maps: the trained head scores each class from the average of the backbone's last convolution map, so each
cell of that map has a share of the score. Bright regions pushed the model towards the class. ${escapeMarkup(methodText(e))}${e.tta ? '; the photo and its mirror image are averaged, as the model does' : ''}.</p>
<img src="data:image/png;base64,${sheet.png.toString('base64')}" width="${sheet.width}" height="${sheet.height}" alt="class activation maps of ${escapeMarkup(e.classes.map((c) => c.label).join(', '))}">
<table>
<tr><th>class</th><th>probability</th><th>members</th></tr>
${rows}
</table>
`;
}
