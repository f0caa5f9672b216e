import { existsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Command } from 'commander';
import { HeadswapError } from '../errors.js';
import { reportFromModel } from '../report/input.js';
import { writeReport } from '../report/write.js';
import { info } from './output.js';
import { withStore } from './runs.js';
import { cacheDirOption, decidedDefault } from './usage.js';

/** A model folder, or the folder a recorded run (`headswap runs`) wrote. */
function modelFolder(arg: string, cacheDir?: string): string {
  if (!/^\d+$/.test(arg) || existsSync(arg)) return arg;
  const run = withStore(cacheDir, (s) => s.getRun(Number(arg)));
  if (!run) throw new HeadswapError(`no model folder '${arg}' and no run ${arg} in the history; see 'headswap runs'`);
  if (!run.out) throw new HeadswapError(`run ${arg} (${run.kind}) wrote no model folder; give a folder written by 'headswap train'`);
  return run.out;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write a self-contained HTML report (plots, confusions with thumbnails) for a trained model folder')
    .argument('<model|run>', "model folder written by 'headswap train', or the id of a run in 'headswap runs'")
    .addOption(decidedDefault('--out <file>', 'report file', '<model>/report.html'))
    .addOption(cacheDirOption('where the run history is'))
    .addHelpText('after', '\nExamples:\n  headswap report ./photos.model && open ./photos.model/report.html\n  headswap report 12     # the model of run 12')
    .action(async (arg: string, f: { out?: string; cacheDir?: string }) => {
      const model = modelFolder(arg, f.cacheDir);
      const input = await reportFromModel(model);
      const path = f.out ? await writeReport(input, dirname(f.out), { file: basename(f.out) }) : await writeReport(input, model);
      info(`report written to ${path}`);
    });
}
