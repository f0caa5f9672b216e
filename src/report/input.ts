import { basename, dirname, join, resolve } from 'node:path';
import type { CompareResult } from '../compare/types.js';
import { HeadswapError } from '../errors.js';
import { METADATA_FILE, readModelMetadata } from '../export/metadata.js';
import type { TrainResult } from '../pipeline/train.js';
import type { ReportInput } from './types.js';

/** Folder names that say which split they hold, not what the photos are (data/clothing7/train). */
const SPLIT_FOLDERS = new Set(['train', 'training']);

/**
 * A model's name for the report's heading: its folder's name without `.model`. When that is only
 * a split folder's name (`train.model`, the default for data/clothing7/train) or there is no
 * folder, the data set's folder name, or its parent's when the data folder is a split folder.
 */
export function modelName(modelDir: string | undefined, dataRoot: string): string {
  const folder = modelDir === undefined ? '' : basename(resolve(modelDir)).replace(/\.model$/i, '');
  if (folder && !SPLIT_FOLDERS.has(folder.toLowerCase())) return folder;
  const data = basename(resolve(dataRoot));
  const parent = basename(dirname(resolve(dataRoot)));
  return SPLIT_FOLDERS.has(data.toLowerCase()) && parent ? parent : data || folder;
}

/**
 * The report of a run that just finished (all paths absolute, still in memory). `title` defaults
 * to the model's name (`modelName`).
 */
export function reportFromTrain(r: TrainResult, title?: string, compare?: CompareResult): ReportInput {
  const m = r.metadata;
  return {
    title: title ?? modelName(r.out, m.dataset.root),
    createdAt: m.createdAt,
    classes: r.classes,
    backbone: r.backbone,
    ...(r.members ? { members: r.members.map((x) => ({ id: x.backbone.id, origin: x.backbone.origin, featureDims: x.backbone.featureDims, top1: x.evaluation.top1, top1Ci95: x.evaluation.top1Ci95, topK: x.evaluation.topK })) } : {}),
    dataset: { files: r.files, skipped: r.skipped },
    history: r.head.history,
    bestEpoch: r.head.bestEpoch,
    evaluation: r.evaluation,
    crossValidation: r.crossValidation,
    crossValidationOrdered: r.crossValidationOrdered,
    groups: r.groups,
    ...(m.training.recipe ? { recipe: m.training.recipe } : {}),
    compare,
    options: { quality: m.training.quality?.name ?? 'plain', ...r.head.options, seed: m.training.seed, valPct: m.training.valPct, testPct: m.training.testPct, testDir: m.dataset.testDir },
    timings: { features: r.timings.featuresMs / 1000, head: r.timings.headMs / 1000, export: r.timings.exportMs / 1000, total: r.timings.totalMs / 1000 },
    versions: m.versions,
  };
}

/** The report of an exported model folder, rebuilt from its `headswap.json`. */
export async function reportFromModel(dir: string): Promise<ReportInput> {
  const path = join(dir, METADATA_FILE);
  const m = await readModelMetadata(dir);
  if (!m.training?.history || !m.dataset?.files) {
    throw new HeadswapError(`${path}: written by an older headswap without the data the report needs; train again to get a report`);
  }
  const testRoot = m.dataset.testDir ?? m.dataset.root;
  const abs = (f: { file: string; split: string }): string => resolve(f.split === 'test' ? testRoot : m.dataset.root, f.file);
  return {
    title: modelName(dir, m.dataset.root),
    createdAt: m.createdAt,
    classes: m.classes,
    backbone: m.backbone,
    ...(m.ensemble ? { members: m.ensemble.members.map((x) => ({ id: x.backbone.id, origin: x.backbone.origin, featureDims: x.backbone.featureDims, ...x.metrics })) } : {}),
    dataset: { files: m.dataset.files.map((f) => ({ path: abs(f), label: f.label, split: f.split })), skipped: m.dataset.skipped },
    history: m.training.history,
    bestEpoch: m.training.bestEpoch,
    evaluation: { ...m.metrics, misclassified: m.metrics.misclassified.map((x) => ({ ...x, file: resolve(testRoot, x.file) })) },
    crossValidation: m.training.crossValidation ?? undefined,
    crossValidationOrdered: m.training.crossValidationOrdered,
    ...(m.training.groups ? { groups: m.training.groups } : {}),
    ...(m.training.recipe ? { recipe: m.training.recipe } : {}),
    options: { quality: m.training.quality?.name ?? 'plain', ...m.training.head, seed: m.training.seed, valPct: m.training.valPct, testPct: m.training.testPct, testDir: m.dataset.testDir },
    timings: Object.fromEntries(Object.entries(m.training.timings).map(([k, v]) => [k.replace(/Ms$/, ''), v / 1000])),
    versions: m.versions,
  };
}
