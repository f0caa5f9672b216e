/**
 * Plain-text terminal rendering of an Evaluation. Widths are counted in code points, so
 * accented letters and emoji count once; East Asian wide glyphs will still misalign by a
 * column, which is acceptable for a summary.
 */
import type { Evaluation } from './metrics.js';

export type Align = 'l' | 'r';

const COLUMN_GAP = '  ';
const INDENT = '  ';
// Limits that keep a line within a normal terminal even with long class names.
const CLASS_NAME_MAX = 32;
const ROW_NAME_MAX = 20;
const MATRIX_HEADER_MAX = 6;
const FILE_NAME_MAX = 40;
// Past this many classes the matrix is wider than a terminal; list the top confusions instead.
const MATRIX_MAX_CLASSES = 12;
const TOP_CONFUSIONS = 10;
const NOT_MEASURED = '–';

/**
 * Aligned columns, two spaces apart; columns default to left-aligned. Rows may have different
 * lengths. Trailing spaces are trimmed so left-aligned last columns do not pad the line.
 */
export function table(rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, textWidth(cell));
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => {
          const pad = ' '.repeat((widths[i] ?? 0) - textWidth(cell));
          return align[i] === 'r' ? pad + cell : cell + pad;
        })
        .join(COLUMN_GAP)
        .trimEnd(),
    )
    .join('\n');
}

export function formatEvaluation(ev: Evaluation, options: { maxMisclassified?: number } = {}): string {
  const maxMisclassified = Math.max(0, options.maxMisclassified ?? 10);
  return [summary(ev), classTable(ev), confusionSection(ev), mistakes(ev, maxMisclassified)].join('\n\n') + '\n';
}

function summary(ev: Evaluation): string {
  const classes = ev.perClass.length;
  const [lo, hi] = ev.top1Ci95;
  const parts = [`top-1 ${pct(ev.top1)} (95% CI ${percentNumber(lo)}-${percentNumber(hi)}%)`];
  // Only k = 3 and 5, and only below the class count: top-k with k = classes is always 100%.
  for (const { k, accuracy } of ev.topK) {
    if ((k === 3 || k === 5) && k < classes) parts.push(`top-${k} ${pct(accuracy)}`);
  }
  const images = ev.count === 1 ? 'image' : 'images';
  const present = ev.perClass.filter((c) => c.support > 0).length;
  const over = present < classes ? ` (over the ${present} of ${classes} classes with test images)` : '';
  return `${parts.join(' · ')} on ${ev.count} test ${images}\nmacro-F1 ${pct(ev.macroF1)}${over} · log loss ${ev.logLoss.toFixed(3)}`;
}

function classTable(ev: Evaluation): string {
  // A class without test images has no scores: its row says so instead of showing zeros.
  const rows = ev.perClass.map((c) => [
    truncate(c.label, CLASS_NAME_MAX),
    String(c.support),
    ...[c.precision, c.recall, c.f1].map((x) => (x === null ? NOT_MEASURED : pct(x))),
  ]);
  const absent = ev.perClass.filter((c) => c.support === 0).length;
  const note = absent > 0 ? `\n${NOT_MEASURED} = no test images of this class: not measured, left out of macro-F1` : '';
  return table([['class', 'support', 'precision', 'recall', 'F1'], ...rows], ['l', 'r', 'r', 'r', 'r']) + note;
}

function confusionSection(ev: Evaluation): string {
  const names = ev.perClass.map((c) => c.label);
  if (names.length > MATRIX_MAX_CLASSES) return topConfusions(ev, names);
  const header = ['', ...names.map((n) => truncate(n, MATRIX_HEADER_MAX))];
  const rows = ev.confusion.map((counts, t) => [
    truncate(names[t] ?? '', ROW_NAME_MAX),
    // Dots instead of zeros make the few non-zero cells stand out.
    ...counts.map((n) => (n === 0 ? '.' : String(n))),
  ]);
  const align: Align[] = ['l', ...names.map((): Align => 'r')];
  return `confusion matrix (rows: true class, columns: predicted, . = 0)\n${indent(table([header, ...rows], align))}`;
}

function topConfusions(ev: Evaluation, names: readonly string[]): string {
  const pairs: { t: number; p: number; n: number }[] = [];
  for (const [t, counts] of ev.confusion.entries()) {
    for (const [p, n] of counts.entries()) if (t !== p && n > 0) pairs.push({ t, p, n });
  }
  const heading = `confusion matrix omitted for ${names.length} classes`;
  if (pairs.length === 0) return `${heading}; no confusions`;
  pairs.sort((a, b) => b.n - a.n);
  const rows = pairs
    .slice(0, TOP_CONFUSIONS)
    .map(({ t, p, n }) => [truncate(names[t] ?? '', ROW_NAME_MAX), truncate(names[p] ?? '', ROW_NAME_MAX), String(n)]);
  return `${heading}; most frequent confusions:\n${indent(table([['true', 'predicted', 'count'], ...rows], ['l', 'l', 'r']))}`;
}

function mistakes(ev: Evaluation, max: number): string {
  const all = ev.misclassified;
  if (all.length === 0) return 'no misclassified images';
  const shown = all.slice(0, max);
  const lines = [`${all.length} misclassified${shown.length > 0 ? ', most confident first:' : ''}`];
  if (shown.length > 0) {
    const rows = shown.map((m) => [
      truncate(basename(m.file), FILE_NAME_MAX),
      truncate(m.trueLabel, ROW_NAME_MAX),
      truncate(m.predicted, ROW_NAME_MAX),
      pct(m.confidence),
      pct(m.trueProb),
    ]);
    lines.push(indent(table([['file', 'true', 'predicted', 'confidence', 'p(true)'], ...rows], ['l', 'l', 'l', 'r', 'r'])));
  }
  if (all.length > shown.length) lines.push(`... and ${all.length - shown.length} more`);
  return lines.join('\n');
}

function pct(x: number): string {
  return `${percentNumber(x)}%`;
}

function percentNumber(x: number): string {
  return (x * 100).toFixed(1);
}

function textWidth(s: string): number {
  return Array.from(s).length;
}

/** Cuts by code point so a surrogate pair (emoji) is never split in half. */
function truncate(s: string, max: number): string {
  const chars = Array.from(s);
  return chars.length <= max ? s : `${chars.slice(0, max - 1).join('').trimEnd()}…`;
}

// Both separators: predictions may carry Windows paths; this module does no I/O.
function basename(file: string): string {
  return file.split(/[\\/]/).pop() ?? file;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => INDENT + line)
    .join('\n');
}
