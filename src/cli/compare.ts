import { basename, dirname, resolve } from 'node:path';
import type { Command } from 'commander';
// compare.ts loads TensorFlow.js (heavy) only when a comparison runs.
import { BUDGET_FACTOR, DEFAULT_BUDGET_CAP_SECONDS, compareRuns } from '../compare/compare.js';
import { DEFAULT_SPLIT_OPTIONS } from '../dataset/split.js';
import { DEFAULT_BASES } from '../pipeline/plan.js';
import { baseOption } from './backbone-options.js';
import { reportFromTrain } from '../report/input.js';
import { writeReport } from '../report/write.js';
import type { ApproachResult, CompareResult } from '../compare/types.js';
import { table } from '../evaluate/format.js';
import type { QualityChoice } from '../pipeline/quality.js';
import { qualityOption } from './train.js';
import { spellParts } from '../errors.js';
import { flagOf } from './flags.js';
import { info, percent, progressBar, warn } from './output.js';
import { int, num } from './parse.js';
import { cacheDirOption, decidedDefault } from './usage.js';

interface Flags {
  testDir?: string;
  budget?: number;
  base: string;
  seed: number;
  quality: QualityChoice;
  cacheDir?: string;
  json?: boolean;
  report?: boolean | string;
}

function topK(r: ApproachResult, k: number): string {
  const hit = r.evaluation.topK.find((t) => t.k === k);
  return hit ? percent(hit.accuracy) : '-';
}

export function formatComparison(c: CompareResult): string {
  const { transfer: t, scratch: s } = c;
  const both = (f: (r: ApproachResult) => string): [string, string] => [f(t), f(s)];
  const classes = t.evaluation.perClass.length;
  const epochs = `${s.epochs} epoch${s.epochs === 1 ? '' : 's'}`;
  const rows: string[][] = [
    ['', 'transfer learning', 'from scratch'],
    [`top-1 (${t.evaluation.count} test photos)`, ...both((r) => percent(r.evaluation.top1))],
    ...(classes > 5 ? [['top-5', ...both((r) => topK(r, 5))]] : []),
    ['95% CI of top-1', ...both((r) => r.evaluation.top1Ci95.map((x) => percent(x)).join(' - '))],
    ['training time', `${t.trainSeconds.toFixed(1)} s`, `${s.trainSeconds.toFixed(1)} s (${epochs}, budget ${s.budgetSeconds.toFixed(0)} s)`],
    ['trainable parameters', ...both((r) => r.trainableParams.toLocaleString('en-US'))],
    ['training photos', ...both((r) => String(r.imagesUsed))],
    ['pretraining reused', ...both((r) => r.pretraining ?? 'unknown (network outside the zoo)')],
  ];
  return [
    `transfer learning: ${t.description}`,
    `from scratch:      ${s.description}, trained with ${s.library}`,
    '',
    table(rows),
    '',
    c.verdict,
  ].join('\n');
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description('train the same photos with transfer learning and with a small CNN from scratch, and compare the two')
    .argument('<dir>', 'folder of class sub-folders: <dir>/<class>/<image>')
    .optionsGroup('Data options:')
    .option('--test-dir <dir>', 'separate folder of the same classes to score both on')
    .option('--seed <n>', 'seed for the split and both trainings', int(0), DEFAULT_SPLIT_OPTIONS.seed)
    .optionsGroup('Transfer run options:')
    .option('--base <id|path|url>', "backbone(s) for transfer learning, as for 'headswap train'", DEFAULT_BASES.join(','))
    .addOption(qualityOption("the transfer run's --quality (see 'headswap train --help')"))
    .optionsGroup('From-scratch run options:')
    .addOption(
      decidedDefault(
        '--budget <seconds>',
        `most seconds the from-scratch network may train (it gets ${BUDGET_FACTOR}x the transfer run's time, and at least as much)`,
        DEFAULT_BUDGET_CAP_SECONDS,
        num(1, 86_400),
      ),
    )
    .optionsGroup('Output options:')
    .option('--json', 'print the comparison as JSON on stdout')
    .option('--report [file]', 'also write an HTML report with the comparison (default: <dir>.compare.html)')
    .addOption(cacheDirOption('model downloads and the run history'))
    .addHelpText('after', '\nExamples:\n  headswap compare ./photos\n  headswap compare ./photos --test-dir ./held-out --budget 600')
    .action(async (dir: string, f: Flags) => {
      const bars = progressBar();
      const { result, transferRun, runId } = await compareRuns({
        data: dir,
        testDir: f.testDir,
        budgetSeconds: f.budget,
        base: baseOption(f.base),
        seed: f.seed,
        quality: f.quality,
        cacheDir: f.cacheDir,
        onProgress: (p) => bars.update(p),
        onWarning: (_message, parts) => warn(spellParts(parts, flagOf)),
      }).finally(() => bars.stop());
      process.stdout.write(f.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatComparison(result)}\n`);
      if (runId !== undefined) info(`recorded as run ${runId} ('headswap runs')`);
      if (f.report) {
        const file = typeof f.report === 'string' ? f.report : `${basename(resolve(dir))}.compare.html`;
        const input = reportFromTrain(transferRun, `${basename(resolve(dir))}: transfer vs from scratch`, result);
        info(`report written to ${await writeReport(input, dirname(resolve(file)), { file: basename(file) })}`);
      }
    });
}
