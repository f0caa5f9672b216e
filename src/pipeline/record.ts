import { relative, resolve } from 'node:path';
import type { Backbone } from '../backbone/backbone.js';
import type { ImageFile, Skipped } from '../dataset/scan.js';
import type { GroupBy, GroupReason, PhotoGroups } from '../dataset/groups.js';
import type { CrossValidation } from '../evaluate/cv.js';
import type { Evaluation } from '../evaluate/metrics.js';
import { PIXELS_VERSION } from '../image/resize.js';
import type { ModelMetadata } from '../export/metadata.js';
import type { TrainedHead } from '../head/train.js';
import { PIXELS, PROBABILITIES } from '../onnx/edit.js';
import type { NewRun } from '../runs/types.js';
import { sha256 } from '../util/fs.js';
import { toolVersions } from '../util/versions.js';
import type { RecipeChoice } from './auto.js';
import type { TrainPlan } from './plan.js';

/** How the data folder's photos were grouped (dataset/groups.ts), without the per-photo map. */
export interface GroupSummary {
  readonly by: GroupBy;
  readonly count: number;
  readonly largest: number;
  /** Photos that share a group with another. */
  readonly grouped: number;
  readonly reasons: Readonly<Partial<Record<GroupReason, number>>>;
}


export interface SplitCounts {
  readonly train: number;
  readonly validation: number;
  readonly test: number;
}

/** A photo that made it into the run: its file and the sha256 of its bytes. */
export interface UsedPhoto {
  readonly file: ImageFile;
  readonly hash: string;
}

/** What a run says of its groups (the per-photo map stays inside). */
export function groupSummary(g: PhotoGroups): GroupSummary {
  return { by: g.by, count: g.count, largest: g.largest, grouped: g.grouped, reasons: g.reasons };
}

/** What a finished training run knows, for headswap.json and the run history. */
export interface RunFacts {
  readonly plan: TrainPlan;
  readonly backbone: Backbone;
  readonly classes: readonly string[];
  readonly sets: { readonly train: readonly UsedPhoto[]; readonly validation: readonly UsedPhoto[]; readonly test: readonly UsedPhoto[] };
  readonly featureDims: number;
  /** An ensemble's backbones, each with its head and held-out score (undefined for one backbone). */
  readonly members: readonly { readonly backbone: Backbone; readonly head: TrainedHead; readonly evaluation: Evaluation; readonly featureDims: number }[] | undefined;
  /** Mirror averaging as it ran (off for a fixed-batch backbone). */
  readonly tta: boolean;
  /** The (first backbone's) head. */
  readonly head: TrainedHead;
  /** Training time of every head. */
  readonly headMs: number;
  /** The held-out score (of the ensemble, for several backbones). */
  readonly evaluation: Evaluation;
  readonly crossValidation: CrossValidation | undefined;
  readonly crossValidationOrdered: CrossValidation | undefined;
  readonly groups: PhotoGroups;
  readonly recipe: RecipeChoice | undefined;
  readonly skipped: readonly Skipped[];
  readonly featuresMs: number;
}

/** Identifies the exact training data: which files (by content) carry which labels. */
export function datasetFingerprint(items: readonly UsedPhoto[], classes: readonly string[]): string {
  const rows = items.map((t) => `${classes[t.file.label]}\t${t.hash}`).sort();
  return sha256(rows.join('\n'));
}

export function splitCounts(f: Pick<RunFacts, 'classes' | 'sets'>): Record<string, SplitCounts> {
  const counts: Record<string, SplitCounts> = {};
  for (const [c, name] of f.classes.entries()) {
    const n = (set: readonly UsedPhoto[]): number => set.filter((t) => t.file.label === c).length;
    counts[name] = { train: n(f.sets.train), validation: n(f.sets.validation), test: n(f.sets.test) };
  }
  return counts;
}

/** Every photo used, with its split, in split order (train, validation, test). */
export function usedFiles(f: Pick<RunFacts, 'sets'>): { path: string; label: number; split: 'train' | 'validation' | 'test' }[] {
  return (['train', 'validation', 'test'] as const).flatMap((split) => f.sets[split].map((t) => ({ path: t.file.path, label: t.file.label, split })));
}

function backboneRecord(b: Backbone, featureDims: number): ModelMetadata['backbone'] {
  return { id: b.id, origin: b.source.origin, sha256: b.source.sha256, feature: b.feature, featureDims };
}

/** The contents of headswap.json. */
export function modelMetadata(f: RunFacts): ModelMetadata {
  const { plan, backbone, head, evaluation } = f;
  const fingerprint = datasetFingerprint([...f.sets.train, ...f.sets.validation, ...f.sets.test], f.classes);
  return {
    format: 'headswap-model',
    formatVersion: 1,
    createdAt: new Date().toISOString(),
    classes: f.classes,
    backbone: backboneRecord(backbone, f.featureDims),
    ...(f.members
      ? {
          ensemble: {
            combine: 'mean' as const,
            members: f.members.map((m) => ({
              backbone: backboneRecord(m.backbone, m.featureDims),
              head: m.head.options,
              metrics: { top1: m.evaluation.top1, topK: m.evaluation.topK, macroF1: m.evaluation.macroF1, logLoss: m.evaluation.logLoss, top1Ci95: m.evaluation.top1Ci95 },
            })),
          },
        }
      : {}),
    input: { name: PIXELS, dtype: 'uint8', layout: 'NHWC', size: backbone.preprocessing.size, pixels: PIXELS_VERSION },
    output: { name: PROBABILITIES, kind: 'probabilities' },
    graph: { portable: plan.portable },
    preprocessing: backbone.preprocessing,
    metrics: { ...evaluation, misclassified: evaluation.misclassified.map((m) => ({ ...m, file: relative(plan.testDir ?? plan.data, m.file) })) },
    training: {
      head: head.options,
      bestEpoch: head.bestEpoch,
      epochs: head.history.length,
      history: head.history,
      seed: plan.seed,
      quality: { name: plan.quality === 'auto' ? 'plain' : plan.quality, tta: f.tta, views: plan.views.map((v) => v.id), ...(plan.quality === 'auto' ? { chosenBy: 'auto' as const } : {}) },
      ...(f.recipe ? { recipe: { chosen: f.recipe.chosen.name, reason: f.recipe.reason, folds: f.recipe.folds, millis: f.recipe.millis, candidates: f.recipe.candidates.map((c) => ({ name: c.name, cvTop1: c.cvTop1, cvStd: c.cvStd, perFold: c.perFold })) } } : {}),
      groups: groupSummary(f.groups),
      valPct: plan.valPct,
      testPct: plan.heldOutPct,
      counts: splitCounts(f),
      crossValidation: f.crossValidation ?? null,
      ...(f.crossValidationOrdered ? { crossValidationOrdered: f.crossValidationOrdered } : {}),
      timings: { featuresMs: f.featuresMs, headMs: f.headMs },
    },
    dataset: {
      fingerprint,
      root: resolve(plan.data),
      testDir: plan.testDir ? resolve(plan.testDir) : null,
      // Paths relative to their folder, so the record survives moving the data set as a whole.
      files: usedFiles(f).map((u) => ({ file: relative(u.split === 'test' && plan.testDir ? plan.testDir : plan.data, u.path), label: u.label, split: u.split })),
      skipped: f.skipped,
    },
    versions: toolVersions(),
  };
}

/** The run history's row for this run. */
export function runRecord(f: RunFacts, metadata: ModelMetadata, seconds: { total: number; export: number }): NewRun {
  const { plan, evaluation, crossValidation } = f;
  const top = (k: number): number | undefined => evaluation.topK.find((t) => t.k === k)?.accuracy;
  return {
    kind: 'train',
    data: resolve(plan.data),
    testDir: plan.testDir ? resolve(plan.testDir) : null,
    base: (f.members ?? [f]).map((m) => m.backbone.source.origin).join(','),
    options: { quality: plan.quality, ...(f.recipe ? { recipe: f.recipe.chosen.name } : {}), groupBy: plan.groupBy, valPct: plan.valPct, testPct: plan.heldOutPct, cv: plan.cv ?? null, ...f.head.options },
    fingerprint: metadata.dataset.fingerprint,
    metrics: {
      top1: evaluation.top1,
      ...(top(5) === undefined ? {} : { top5: top(5)! }),
      macroF1: evaluation.macroF1,
      logLoss: evaluation.logLoss,
      testImages: evaluation.count,
      ...(crossValidation ? { cvTop1: crossValidation.top1.mean, cvTop1Std: crossValidation.top1.std } : {}),
      ...(f.crossValidationOrdered ? { cvOrderedTop1: f.crossValidationOrdered.top1.mean } : {}),
    },
    timings: { total: seconds.total, features: f.featuresMs / 1000, head: f.headMs / 1000, export: seconds.export },
    out: plan.recordedOut ? resolve(plan.recordedOut) : null,
  };
}
