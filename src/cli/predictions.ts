import type { ClassifierPrediction } from '../export/classifier.js';
import { escapeControl } from '../util/text.js';
import { percent } from './output.js';

export type PredictionFormat = 'text' | 'json' | 'csv';

function csvCell(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Writes predictions as they stream in, one row per image: text, JSON lines, or CSV with a
 * header, so any number of images can be piped without holding them.
 */
export async function writePredictions(stream: AsyncIterable<ClassifierPrediction>, format: PredictionFormat, top: number): Promise<number> {
  let count = 0;
  if (format === 'csv') {
    const cols = Array.from({ length: top }, (_, i) => [`label${i + 1}`, `p${i + 1}`]).flat();
    process.stdout.write(`${['input', ...cols].join(',')}\n`);
  }
  for await (const p of stream) {
    count++;
    if (format === 'json') {
      // The shape classifier.predict() returns, without the full probability vector.
      process.stdout.write(`${JSON.stringify({ input: p.input, top: p.top.map(({ label, index, probability }) => ({ label, index, probability })) })}\n`);
    } else if (format === 'csv') {
      process.stdout.write(`${[csvCell(p.input), ...p.top.flatMap((t) => [csvCell(t.label), t.probability.toFixed(6)])].join(',')}\n`);
    } else {
      // Escaped so a newline or tab in a file name cannot break the one-row-per-image format.
      process.stdout.write(`${escapeControl(p.input)}\t${p.top.map((t) => `${t.label} ${percent(t.probability)}`).join('  ')}\n`);
    }
  }
  return count;
}
