/**
 * Transfer learning against a CNN trained from scratch on clothing7 (train/ -> test/), as
 * `headswap compare` runs it (scratch budget 10x the transfer run, at most 120 s), then the same
 * scratch network again with a long budget, to show the gap is not just a matter of training time.
 *   node --import tsx bench/compare.ts [longBudgetSeconds=600] [seed=0]
 * Prints JSON. Floor: transfer top-1 minus the long scratch run's top-1 is at least 25 points
 * (exit code 1 otherwise).
 */
import { compare } from '../src/compare/compare.js';
import { trainFromScratch } from '../src/compare/scratch.js';
import type { ApproachResult, ScratchResult } from '../src/compare/types.js';
import { scanDataset } from '../src/dataset/scan.js';
import { packagePath } from '../src/util/paths.js';

const FLOOR_POINTS = 25;
const data = packagePath('data', 'clothing7', 'train');
const testDir = packagePath('data', 'clothing7', 'test');
const longBudget = Number(process.argv[2] ?? 600);
const seed = Number(process.argv[3] ?? 0);

const points = (x: number): number => +(x * 100).toFixed(1);

function summary(r: ApproachResult): Record<string, unknown> {
  return {
    top1: points(r.evaluation.top1),
    top5: points(r.evaluation.topK.find((t) => t.k === 5)?.accuracy ?? NaN),
    ci95Top1: r.evaluation.top1Ci95.map(points),
    macroF1: points(r.evaluation.macroF1),
    seconds: +r.trainSeconds.toFixed(1),
    trainableParams: r.trainableParams,
    images: r.imagesUsed,
    testImages: r.evaluation.count,
  };
}

function scratchSummary(r: ScratchResult): Record<string, unknown> {
  return { ...summary(r), budgetSeconds: +r.budgetSeconds.toFixed(1), epochs: r.epochs, secondsPerEpoch: +(r.trainSeconds / r.epochs).toFixed(2) };
}

// A measurement, not a user's run: keep it out of the run history.
const result = await compare({ data, testDir, seed, record: false });
// The long run trains on the same photos compare() used: with a test folder, all of train/.
const classes = result.transfer.evaluation.perClass.map((c) => c.label);
const labeled = async (root: string) => (await scanDataset(root, { classes })).files.map((f) => ({ path: f.path, label: f.label }));
const long = await trainFromScratch({ train: await labeled(data), test: await labeled(testDir), classes, budgetSeconds: longBudget, seed });
const gap = points(result.transfer.evaluation.top1 - long.evaluation.top1);

console.log(
  JSON.stringify(
    {
      dataset: 'clothing7 (train/ -> test/)',
      seed,
      transfer: { ...summary(result.transfer), description: result.transfer.description },
      scratchAsCompare: scratchSummary(result.scratch),
      scratchLong: scratchSummary(long),
      scratchNetwork: long.description,
      library: long.library,
      verdict: result.verdict,
      floor: { requiredPoints: FLOOR_POINTS, gapPointsLongRun: gap, gapPointsCompareRun: points(result.transfer.evaluation.top1 - result.scratch.evaluation.top1), ok: gap >= FLOOR_POINTS },
    },
    null,
    2,
  ),
);
if (gap < FLOOR_POINTS) process.exitCode = 1;
