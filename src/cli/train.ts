import { Option, type Command } from 'commander';
import { reportFromTrain } from '../report/input.js';
import { writeReport } from '../report/write.js';
import { formatEvaluation, table } from '../evaluate/format.js';
import { DEFAULT_GROUP_BY, GROUP_BY, type GroupBy } from '../dataset/groups.js';
import { DEFAULT_QUALITY, QUALITY, QUALITY_CHOICES, type QualityChoice } from '../pipeline/quality.js';
import { HEAD_DEFAULTS, HIDDEN_L2, MIN_DEFAULT_STEPS, type HeadOptions } from '../head/train.js';
import { DEFAULT_SPLIT_OPTIONS } from '../dataset/split.js';
import { DEFAULT_PIXEL_LIMIT } from '../image/preprocess.js';
import { train, type TrainOptions, type TrainResult } from '../pipeline/train.js';
import { addBackboneOptions, backboneOptions, baseOption, type BackboneFlags } from './backbone-options.js';
import { DEFAULT_BASES, DEFAULT_TOP_K } from '../pipeline/plan.js';
import { escapeControl } from '../util/text.js';
import { spellParts } from '../errors.js';
import { flagOf } from './flags.js';
import { info, percent, progressBar, warn } from './output.js';
import { int, num } from './parse.js';
import { cacheDirOption, decidedDefault } from './usage.js';

interface TrainFlags extends BackboneFlags {
  testDir?: string;
  out?: string;
  force?: boolean;
  valPct: number;
  testPct: number;
  seed: number;
  hidden?: number;
  dropout?: number;
  epochs?: number;
  lr?: number;
  l2?: number;
  labelSmoothing?: number;
  batchSize?: number;
  classWeights?: 'balanced' | 'none';
  cache: boolean;
  cacheDir?: string;
  pixelLimit?: number;
  top: number;
  cv?: number;
  quality: QualityChoice;
  groupBy: GroupBy;
  groups?: string;
  report?: boolean;
  json?: boolean;
  portable?: boolean;
}

/** `--quality`, for `train` and for the transfer run of `compare`. */
export function qualityOption(help: string): Option {
  return new Option('--quality <level>', help).choices(QUALITY_CHOICES).default(DEFAULT_QUALITY);
}

/**
 * The options of `train` in groups, or with `demoOut` those of `demo`: it trains on bundled
 * photos that have their own test folder, so it has no --test-dir nor --test-pct, and it always
 * replaces its output folder (default `demoOut`). Defaults come from where train() decides them;
 * head settings the CLI leaves to train() (the quality level changes some) carry their default
 * as words only.
 */
export function addTrainOptions(cmd: Command, demoOut?: string): Command {
  const train = demoOut === undefined;
  cmd.optionsGroup('Data options:');
  if (train) cmd.addOption(decidedDefault('--test-dir <dir>', 'separate folder of the same classes to evaluate on', 'none: --test-pct of <dir> is held out'));
  cmd.option('--val-pct <n>', 'percent of each class held out for validation (early stopping)', num(0, 50), DEFAULT_SPLIT_OPTIONS.valPct);
  if (train) cmd.option('--test-pct <n>', 'percent of each class held out for the test score, without --test-dir', num(0, 50), DEFAULT_SPLIT_OPTIONS.testPct);
  cmd
    .option('--seed <n>', 'seed for the split and the head training', int(0), DEFAULT_SPLIT_OPTIONS.seed)
    .addOption(
      new Option('--group-by <how>', 'keep photos that belong together on one side of every split and fold: auto = file series (names, _nohash_ markers, capture times, --groups) and near-copies; series; similarity; none')
        .choices(GROUP_BY)
        .default(DEFAULT_GROUP_BY),
    )
    .addOption(decidedDefault('--groups <file>', "file of 'relPath<TAB or comma>group' lines: photos that must stay together", 'none'))
    .addOption(decidedDefault('--pixel-limit <n>', 'refuse images with more pixels than this', `${DEFAULT_PIXEL_LIMIT} = ${DEFAULT_PIXEL_LIMIT / 1e6} megapixels`, int(1)));
  addBackboneOptions(cmd, {
    baseHelp: "zoo id ('headswap backbones'), .onnx or .tflite file, TF.js model folder/model.json, or URL; several, comma-separated, are an ensemble: one head each, averaged in one model",
    defaultBase: DEFAULT_BASES.join(','),
    cut: true,
  });
  const regionL2 = QUALITY.fast.head?.l2;
  cmd
    .optionsGroup('Head options:')
    .addOption(decidedDefault('--hidden <units>', 'add a hidden ReLU layer of this size to the head', `${HEAD_DEFAULTS.hidden} = none`, int(0)))
    .addOption(decidedDefault('--dropout <rate>', 'dropout on the features while training', HEAD_DEFAULTS.dropout, num(0, 0.95)))
    .addOption(decidedDefault('--epochs <n>', 'maximum training epochs (early stopping on the validation photos ends sooner)', `${HEAD_DEFAULTS.epochs}, more on small sets: at least ${MIN_DEFAULT_STEPS} steps`, int(1)))
    .addOption(decidedDefault('--lr <rate>', 'Adam learning rate, decayed to 0 over the epochs', HEAD_DEFAULTS.learningRate, num(1e-6, 1)))
    .addOption(
      decidedDefault('--l2 <lambda>', 'L2 weight penalty', `${HEAD_DEFAULTS.l2}${regionL2 === undefined ? '' : `; ${regionL2} with the region features of --quality fast and up`}; ${HIDDEN_L2} with --hidden`, num(0, 10)),
    )
    .addOption(decidedDefault('--label-smoothing <eps>', 'probability spread evenly over all classes in the training targets', HEAD_DEFAULTS.labelSmoothing, num(0, 0.5)))
    .addOption(decidedDefault('--batch-size <n>', 'head training batch size (capped at the training-set size)', HEAD_DEFAULTS.batchSize, int(1)))
    .addOption(decidedDefault('--class-weights <mode>', 'balanced: weigh classes equally however many photos each has', HEAD_DEFAULTS.classWeights).choices(['balanced', 'none']))
    .optionsGroup('Quality options:')
    .addOption(
      qualityOption(
        'auto: plain passes, and the backbones (each alone or the ensemble) chosen by grouped cross-validation on your photos; plain: one backbone pass per photo; fast: + mirror-image averaging at prediction and 3x3 region features; balanced: + training on the mirror and 3 crops of each photo; best: + 10 crops (augmented views are cached)',
      ),
    )
    .addOption(decidedDefault('--cv <folds>', 'also estimate accuracy by K-fold cross-validation over whole groups, with folds at random and in name order (cheap: features are cached)', 'off', int(2, 50)))
    .option('--top <k>', 'largest k for top-k accuracy', int(1, 20), DEFAULT_TOP_K)
    .optionsGroup('Output options:');
  if (train) {
    cmd
      .addOption(decidedDefault('--out <dir>', 'output model folder', '<dir>.model'))
      .option('--force', 'replace the output folder if it exists')
      .option('--portable', 'export model.onnx with standard ONNX operators only, for runtimes other than onnxruntime (OpenCV and the like): float weights, ~4x larger, slower on onnxruntime');
  }
  else cmd.option('--out <dir>', 'where to write the demo model (replaced if it exists)', demoOut);
  return cmd
    .option('--report', 'also write report.html (plots, confusions with thumbnails) into the model folder')
    .option('--json', 'print the result as JSON on stdout')
    .option('--no-cache', 'do not read or write the feature cache')
    .addOption(cacheDirOption('feature cache and model downloads'));
}

function headOptions(f: TrainFlags): HeadOptions {
  const h: HeadOptions = {};
  if (f.hidden !== undefined) h.hidden = f.hidden;
  if (f.dropout !== undefined) h.dropout = f.dropout;
  if (f.epochs !== undefined) h.epochs = f.epochs;
  if (f.lr !== undefined) h.learningRate = f.lr;
  if (f.l2 !== undefined) h.l2 = f.l2;
  if (f.labelSmoothing !== undefined) h.labelSmoothing = f.labelSmoothing;
  if (f.batchSize !== undefined) h.batchSize = f.batchSize;
  if (f.classWeights !== undefined) h.classWeights = f.classWeights;
  return h;
}

export async function runTrain(data: string, f: TrainFlags, extra: Partial<TrainOptions> = {}): Promise<void> {
  const bar = progressBar();
  const result = await train({
    data,
    testDir: f.testDir,
    out: f.out,
    force: f.force,
    base: baseOption(f.base),
    backbone: backboneOptions(f),
    valPct: f.valPct,
    testPct: f.testPct,
    seed: f.seed,
    head: headOptions(f),
    cacheDir: f.cacheDir,
    noCache: !f.cache,
    pixelLimit: f.pixelLimit,
    topK: f.top,
    cv: f.cv,
    quality: f.quality,
    groupBy: f.groupBy,
    groupsFile: f.groups,
    portable: f.portable,
    onProgress: (p) => bar.update(p),
    onWarning: (_message, parts) => warn(spellParts(parts, flagOf)),
    ...extra,
  }).finally(() => bar.stop());
  if (f.json) process.stdout.write(`${JSON.stringify(resultJson(result), null, 2)}\n`);
  else process.stdout.write(`${formatTrainResult(result)}\n`);
  // The CLI always exports, so there is a model folder to write the report into.
  if (f.report && result.out) {
    info(`report written to ${await writeReport(reportFromTrain(result), result.out)}`);
  }
}

/** The result without typed arrays (weights live in model.onnx). */
export function resultJson(r: TrainResult): unknown {
  const { weights: _weights, ...head } = r.head;
  return { ...r, head };
}

/** A copy of plain data with every string's control characters escaped (typed arrays kept). */
function escapeStrings<T>(value: T): T {
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return escapeControl(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}

export function formatTrainResult(r: TrainResult): string {
  const lines: string[] = [];
  const total = (k: 'train' | 'validation' | 'test'): number => Object.values(r.counts).reduce((a, c) => a + c[k], 0);
  const q = r.metadata.training.quality;
  const regions = r.metadata.backbone.feature.regions;
  const extras = [
    regions ? `${regions.rows}x${regions.cols} region features` : '',
    q?.tta ? 'mirror-image averaging' : '',
    q?.views.length ? `${q.views.length} augmented views per training photo` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const backbones = (r.members ?? [r]).map((m) => `${m.backbone.id} (${m.backbone.featureDims} features)`).join(' + ');
  lines.push(`${r.members ? 'ensemble' : 'backbone'} ${backbones} · ${r.classes.length} classes · quality ${q?.chosenBy === 'auto' ? 'auto (plain)' : (q?.name ?? 'plain')}${extras ? ` (${extras})` : ''}`);
  if (r.recipe) {
    const scores = r.recipe.candidates.map((c) => `${c.name} ${percent(c.cvTop1)}`).join(' · ');
    lines.push(`recipe chosen by ${r.recipe.folds}-fold grouped cross-validation on the training photos (${(r.recipe.millis / 1000).toFixed(1)}s): ${scores} → ${escapeControl(r.recipe.reason)}`);
  }
  const g = r.groups;
  if (g.by !== 'none') {
    const photos = total('train') + total('validation') + (r.metadata.dataset.testDir ? 0 : total('test'));
    const why = Object.entries(g.reasons).map(([reason, n]) => `${reason} ${n}`).join(', ');
    lines.push(
      g.grouped === 0
        ? `groups (--group-by ${g.by}): no series or near-copies among the ${photos} photos`
        : `groups (--group-by ${g.by}): ${g.count} for ${photos} photos, the largest of ${g.largest} (photos tied by ${why}); splits and folds keep each group together`,
    );
  }
  lines.push(
    table(
      [
        ['class', 'train', 'validation', 'test'],
        ...r.classes.map((c) => [escapeControl(c), String(r.counts[c]!.train), String(r.counts[c]!.validation), String(r.counts[c]!.test)]),
        ['total', String(total('train')), String(total('validation')), String(total('test'))],
      ],
      ['l', 'r', 'r', 'r'],
    ),
  );
  const t = r.timings;
  lines.push(
    `features: ${r.features.computed} computed, ${r.features.cached} from cache in ${(t.featuresMs / 1000).toFixed(1)}s (${t.imagesPerSecond.toFixed(0)} images/s)` +
      ` · head: ${r.head.history.length} epochs (best ${r.head.bestEpoch}) in ${t.headMs.toFixed(0)} ms · total ${(t.totalMs / 1000).toFixed(1)}s`,
  );
  if (r.skipped.length > 0) lines.push(`skipped ${r.skipped.length} file(s) (listed above)`);
  // Class and file names can hold newlines or escape sequences; the tables must stay tables.
  lines.push('', formatEvaluation(escapeStrings(r.evaluation)));
  if (r.members) {
    const each = r.members.map((m) => `${m.backbone.id} ${percent(m.evaluation.top1)}`).join(' · ');
    lines.push(`each backbone alone on the same test photos: ${each} · the ensemble ${percent(r.evaluation.top1)}`);
  }
  const cv = r.crossValidation;
  if (cv) {
    const ks = cv.topK.filter((t) => t.k > 1).map((t) => ` · top-${t.k} ${percent(t.mean)} ± ${percent(t.std)}`).join('');
    lines.push(`${cv.folds}-fold cross-validation over ${cv.groups} groups, folds at random: top-1 ${percent(cv.top1.mean)} ± ${percent(cv.top1.std)}${ks}`);
    const o = r.crossValidationOrdered;
    if (o) lines.push(`${o.folds}-fold cross-validation, folds in name order (scored on photos named before and after): top-1 ${percent(o.top1.mean)} ± ${percent(o.top1.std)}`);
    lines.push(`the 95% CI above is for the ${r.evaluation.count} held-out test photos; the ± of cross-validation is the spread of its folds`);
  }
  const smallest = Math.min(...Object.values(r.counts).map((c) => c.test));
  if (smallest < 20) {
    const [lo, hi] = r.evaluation.top1Ci95;
    const hint = cv ? '' : '; add --cv 5 for a steadier estimate';
    lines.push(`note: only ${smallest} test image(s) in the smallest class; top-1 could be anywhere from ${percent(lo)} to ${percent(hi)} (95% CI)${hint}`);
  }
  if (r.runId !== undefined) lines.push(`recorded as run ${r.runId} ('headswap runs')`);
  if (r.out) lines.push(`model written to ${r.out}/ (model.onnx, labels.json, headswap.json)`);
  return lines.join('\n');
}

export function registerTrain(program: Command): void {
  addTrainOptions(
    program
      .command('train')
      .description('train a classifier on a folder with one sub-folder of images per class')
      .argument('<dir>', 'folder of class sub-folders: <dir>/<class>/<image>'),
  )
    .addHelpText('after', '\nExamples:\n  headswap train ./photos\n  headswap train ./photos --test-dir ./held-out --out ./shoes.model --seed 1\n  headswap train ./photos --base ./my-network.onnx --hidden 256 --dropout 0.3')
    .action((dir: string, flags: TrainFlags) => runTrain(dir, flags));
}
