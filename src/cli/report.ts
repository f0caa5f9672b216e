import { basename, dirname } from 'node:path';
import type { Command } from 'commander';
import { reportFromModel } from '../report/input.js';
import { writeReport } from '../report/write.js';
import { info } from './output.js';

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write a self-contained HTML report (plots, confusions with thumbnails) for a trained model folder')
    .argument('<model>', "model folder written by 'headswap train'")
    .option('--out <file>', 'report file (default <model>/report.html)')
    .addHelpText('after', '\nExample:\n  headswap report ./photos.model && open ./photos.model/report.html')
    .action(async (model: string, f: { out?: string }) => {
      const input = await reportFromModel(model);
      const path = f.out ? await writeReport(input, dirname(f.out), { file: basename(f.out) }) : await writeReport(input, model);
      info(`report written to ${path}`);
    });
}
