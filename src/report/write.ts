import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs.js';
import { renderReport, type ReportOptions } from './html.js';
import type { ReportInput } from './types.js';

export const REPORT_FILE = 'report.html';

/**
 * Writes `report.html` and PNG copies of its key charts (`<name>.png`) into `dir`, each file
 * atomically. Returns the report's path.
 */
export async function writeReport(input: ReportInput, dir: string, options: ReportOptions & { file?: string } = {}): Promise<string> {
  const { html, charts } = await renderReport(input, options);
  const path = join(dir, options.file ?? REPORT_FILE);
  await writeFileAtomic(path, html);
  for (const [name, chart] of Object.entries(charts)) await writeFileAtomic(join(dir, `${name}.png`), chart.png);
  return path;
}
