import { Backbone } from '../backbone/backbone.js';
import { scanDataset, type ImageFile } from '../dataset/scan.js';
import { splitDataset } from '../dataset/split.js';
import { HeadswapError } from '../errors.js';
import { crossValidate, type CrossValidation } from '../evaluate/cv.js';
import { evaluate, type Evaluation } from '../evaluate/metrics.js';
import { exportEnsembleGraph } from '../export/graph.js';
import type { ModelMetadata } from '../export/metadata.js';
import { assertOutputFree, writeModelFolder } from '../export/write.js';
import { openFeatureCache, type FeatureCache } from '../features/cache.js';
import { PLAIN_VIEW, augmentView, extractViewsOf, type ExtractedFeature, type ViewsResult } from '../features/extract.js';
import { averageProbabilities, fitHead, predictRows, rowsDataset, type LabeledRow, type TrainedHead } from '../head/train.js';
import { flipSpec } from '../image/augment.js';
import { resizedPixels } from '../image/preprocess.js';
import { recordRun } from '../runs/store.js';
import { planTraining, type TrainOptions, type TrainPlan } from './plan.js';
import { modelMetadata, runRecord, splitCounts, usedFiles, type RunFacts, type SplitCounts } from './record.js';

export type { TrainOptions } from './plan.js';
export type { SplitCounts } from './record.js';

export interface TrainResult {
  readonly classes: readonly string[];
  /** Images per class in each split, in class order. */
  readonly counts: Readonly<Record<string, SplitCounts>>;
  readonly evaluation: Evaluation;
  readonly head: TrainedHead;
  readonly backbone: { readonly id: string; readonly origin: string; readonly sha256: string; readonly featureDims: number };
  /** For an ensemble (several `base`s): each backbone with its own head and its own held-out score; `head` is the first's. */
  readonly members?: readonly { readonly backbone: TrainResult['backbone']; readonly head: TrainedHead; readonly evaluation: Evaluation }[];
  readonly skipped: readonly { readonly path: string; readonly reason: string }[];
  readonly warnings: readonly string[];
  /** Feature vectors taken from the cache vs computed by the backbone. */
  readonly features: { readonly cached: number; readonly computed: number };
  readonly timings: { readonly featuresMs: number; readonly headMs: number; readonly exportMs: number; readonly totalMs: number; readonly imagesPerSecond: number };
  readonly out?: string;
  readonly metadata: ModelMetadata;
  /** Every photo used, with its split (absolute paths). */
  readonly files: readonly { readonly path: string; readonly label: number; readonly split: 'train' | 'validation' | 'test' }[];
  readonly crossValidation?: CrossValidation;
  /** Id in the run history, when recorded. */
  readonly runId?: number;
}

interface Labeled {
  readonly file: ImageFile;
  readonly hash: string;
  /**
   * The vectors the heads see, one row per backbone: the photo's own, its augmented views
   * (training and validation photos, with augmentation on), its mirror (test photos, with
   * test-time flip on).
   */
  readonly rows: readonly LabeledRow[];
}

type Warn = (message: string) => void;
type Photos = Awaited<ReturnType<typeof splitPhotos>>;

/** Vectors of each path's views, in view order. */
function byPathOf(result: ViewsResult | undefined): Map<string, Float32Array[]> {
  const out = new Map<string, Float32Array[]>();
  for (const f of result?.features ?? []) out.set(f.path, [...(out.get(f.path) ?? []), f.vector]);
  return out;
}

/** Scan and split: the photos of each split, and what was skipped on the way. */
async function splitPhotos(plan: TrainPlan, warn: Warn) {
  const scanned = await scanDataset(plan.data);
  const testScan = plan.testDir ? await scanDataset(plan.testDir, { classes: scanned.classes }) : undefined;
  for (const w of [...scanned.warnings, ...(testScan?.warnings ?? [])]) warn(w);
  const skipped = [...scanned.skipped, ...(testScan?.skipped ?? [])];
  for (const s of skipped) warn(`skipped ${s.path}: ${s.reason}`);
  const split = splitDataset(scanned.files, scanned.classes, { valPct: plan.valPct, testPct: plan.testPct, seed: plan.seed, hasSeparateTest: Boolean(testScan) });
  return { classes: scanned.classes, train: split.train, validation: split.validation, test: testScan ? testScan.files : split.test, skipped };
}

/**
 * Every backbone pass the plan needs, cached, for all the backbones at once (each photo read and
 * decoded once for them): the plain photos, the training views of the training and validation
 * photos, and the mirror of the test photos. A photo is used when every backbone could read it.
 */
async function extractAll(backbones: readonly Backbone[], photos: Photos, plan: TrainPlan, tta: boolean, cache: FeatureCache | undefined, warn: Warn) {
  const more = { cache, ...plan.extract };
  const all = [...photos.train, ...photos.validation, ...photos.test];
  const plain = await extractViewsOf(backbones, all.map((f) => f.path), [PLAIN_VIEW], more);
  const skipped = plain[0]!.skipped;
  for (const s of skipped) warn(`skipped ${s.path}: ${s.reason}`);
  const byPath = plain.map((r) => new Map(r.features.map((f) => [f.path, f])));
  const readable = (files: readonly ImageFile[]): string[] => files.filter((f) => byPath[0]!.has(f.path)).map((f) => f.path);
  const views = plan.views.length > 0 ? await extractViewsOf(backbones, readable([...photos.train, ...photos.validation]), plan.views.map(augmentView), { ...more, step: 'augment' }) : undefined;
  const mirrored = tta ? await extractViewsOf(backbones, readable(photos.test), [augmentView(flipSpec())], { ...more, step: 'mirror' }) : undefined;
  // A photo readable as itself but not as a view keeps its plain vector; the failure is still said.
  for (const s of [...(views?.[0]!.skipped ?? []), ...(mirrored?.[0]!.skipped ?? [])]) warn(`no augmented view of ${s.path}: ${s.reason}`);
  const viewsOf = backbones.map((_, m) => byPathOf(views?.[m]));
  const mirrorOf = backbones.map((_, m) => byPathOf(mirrored?.[m]));
  const labeled = (files: readonly ImageFile[]): Labeled[] =>
    files.flatMap((file) => {
      const found: (ExtractedFeature | undefined)[] = byPath.map((b) => b.get(file.path));
      if (found.some((f) => !f)) return [];
      return [{ file, hash: found[0]!.hash, rows: found.map((f, m) => ({ vector: f!.vector, label: file.label, views: viewsOf[m]!.get(file.path), mirror: mirrorOf[m]!.get(file.path)?.[0] })) }];
    });
  const passes = [...plain, ...(views ?? []), ...(mirrored ?? [])];
  return {
    sets: { train: labeled(photos.train), validation: labeled(photos.validation), test: labeled(photos.test) },
    skipped,
    featureDims: plain.map((r) => r.features[0]?.vector.length ?? 0),
    cached: passes.reduce((n, r) => n + r.cached, 0),
    computed: passes.reduce((n, r) => n + r.computed, 0),
  };
}

/** Ensemble members share one `pixels` input, so they must want the same resized image. */
function checkEnsemble(backbones: readonly Backbone[]): void {
  const [first, ...rest] = backbones;
  const key = (b: Backbone): string => resizedPixels(b.preprocessing);
  for (const b of rest) {
    if (key(b) !== key(first!)) {
      throw new HeadswapError(`${b.source.origin} takes ${key(b)} pixels and ${first!.source.origin} ${key(first!)}; an ensemble's backbones must take the same input size and resize (give --size/--resize to match them)`);
    }
  }
}

/** Refuses sets the head cannot be trained or scored on, and says what inflates or confuses the score. */
function checkSets(sets: { readonly train: readonly Labeled[]; readonly validation: readonly Labeled[]; readonly test: readonly Labeled[] }, classes: readonly string[], plan: TrainPlan, warn: Warn): void {
  checkDuplicates([...sets.train, ...sets.validation], sets.test, classes, warn);
  if (sets.test.length === 0) throw new HeadswapError(`${plan.testDir ?? plan.data}: no readable test images; add photos or give --test-dir`);
  for (const [c, name] of classes.entries()) {
    if (!sets.train.some((t) => t.file.label === c)) {
      throw new HeadswapError(`${plan.data}: class '${name}' has no readable training image; add photos to ${name}/`);
    }
  }
}

/**
 * The whole transfer-learning job: scan the folder, split it, extract (cached) backbone
 * features, train a new softmax head, evaluate it on held-out photos and export one ONNX graph.
 */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const warnings: string[] = [];
  const warn = (m: string): void => {
    warnings.push(m);
    options.onWarning?.(m);
  };
  const plan = planTraining(options);
  const photos = await splitPhotos(plan, warn);
  // Refuse before the slow part rather than after it.
  if (plan.out) await assertOutputFree(plan.out, plan.force);

  const backbones: Backbone[] = [];
  try {
    for (const base of plan.bases) backbones.push(await Backbone.load(base, plan.backbone));
    return await trainOn(backbones, plan, photos, warn, warnings, t0);
  } finally {
    for (const b of backbones) await b.release();
  }
}

async function trainOn(backbones: readonly Backbone[], plan: TrainPlan, photos: Photos, warn: Warn, warnings: readonly string[], t0: number): Promise<TrainResult> {
  const { classes } = photos;
  checkEnsemble(backbones);
  const regions = plan.preset.regions;
  for (const backbone of backbones) {
    if (regions && !backbone.feature.regions) {
      const { tensor, pooling } = backbone.feature;
      warn(`${backbone.id}: no region features from its cut '${tensor}' (${pooling}; they need a convolution map of at least ${regions.rows}x${regions.cols}), so --quality ${plan.quality} trains on the pooled features alone`);
    }
  }
  let tta = plan.tta;
  const batchOfOne = backbones.find((b) => b.batchOfOne);
  if (tta && batchOfOne) {
    warn(`${batchOfOne.id} takes one image per run, so the mirror image cannot run beside the photo; test-time flip is off`);
    tta = false;
  }
  const cache = plan.useCache ? openFeatureCache(plan.cacheDir) : undefined;
  try {
    const tf = performance.now();
    const extracted = await extractAll(backbones, photos, plan, tta, cache, warn);
    const featuresMs = performance.now() - tf;
    const { sets } = extracted;
    checkSets(sets, classes, plan, warn);

    const k = classes.length;
    const rows = (set: readonly Labeled[], m: number): LabeledRow[] => set.map((t) => t.rows[m]!);
    const heads: TrainedHead[] = [];
    const memberProbs: Float32Array[] = [];
    for (let m = 0; m < backbones.length; m++) {
      // Early stopping and the curves use the validation photos as they are; the refit adds their views.
      const head = await fitHead(
        rowsDataset(rows(sets.train, m), k),
        sets.validation.length > 0 ? rowsDataset(rows(sets.validation, m), k, false) : undefined,
        plan.head,
        rowsDataset(rows([...sets.train, ...sets.validation], m), k),
      );
      heads.push(head);
      memberProbs.push(predictRows(head.weights, rows(sets.test, m), tta));
    }
    const scored = (probs: Float32Array): Evaluation =>
      evaluate(
        sets.test.map((t, i) => ({ file: t.file.path, label: t.file.label, probs: probs.slice(i * k, (i + 1) * k) })),
        classes,
        { maxK: plan.topK },
      );
    const evaluation = scored(averageProbabilities(memberProbs));
    const members = backbones.length > 1 ? backbones.map((backbone, m) => ({ backbone, head: heads[m]!, evaluation: scored(memberProbs[m]!), featureDims: extracted.featureDims[m]! })) : undefined;
    const crossValidation = plan.cv
      ? await crossValidate(
          [...sets.train, ...sets.validation, ...(plan.testDir ? [] : sets.test)].map((t) => ({ relPath: t.file.relPath, label: t.file.label, rows: t.rows })),
          classes,
          plan.cv,
          { ...plan.head, maxK: plan.topK, tta },
        )
      : undefined;

    const head = heads[0]!;
    const headMs = heads.reduce((n, h) => n + h.millis, 0);
    const facts: RunFacts = { plan, backbone: backbones[0]!, members, classes, sets, featureDims: extracted.featureDims[0]!, tta, head, headMs, evaluation, crossValidation, skipped: [...photos.skipped, ...extracted.skipped], featuresMs };
    const metadata = modelMetadata(facts);
    const te = performance.now();
    if (plan.out) {
      const model = exportEnsembleGraph(backbones.map((b, m) => ({ features: b.featureModel(), head: heads[m]!.weights })), { tta });
      await writeModelFolder(plan.out, { model, metadata }, plan.force);
    }
    const exportMs = performance.now() - te;
    const totalMs = performance.now() - t0;
    const runId = plan.record ? recordRun(runRecord(facts, metadata, { total: totalMs / 1000, export: exportMs / 1000 }), plan.cacheDir) : undefined;
    return {
      classes,
      counts: splitCounts(facts),
      evaluation,
      head,
      backbone: metadata.backbone,
      ...(members ? { members: members.map((x) => ({ backbone: { id: x.backbone.id, origin: x.backbone.source.origin, sha256: x.backbone.source.sha256, featureDims: x.featureDims }, head: x.head, evaluation: x.evaluation })) } : {}),
      skipped: facts.skipped,
      warnings,
      features: { cached: extracted.cached, computed: extracted.computed },
      timings: { featuresMs, headMs, exportMs, totalMs, imagesPerSecond: (extracted.cached + extracted.computed) / (featuresMs / 1000) },
      out: plan.out,
      metadata,
      files: usedFiles(facts),
      crossValidation,
      runId,
    };
  } finally {
    cache?.close();
  }
}

/** The same photo under two classes confuses training; the same photo in train and test inflates the score. */
function checkDuplicates(trainVal: readonly Labeled[], test: readonly Labeled[], classes: readonly string[], warn: Warn): void {
  const seen = new Map<string, Labeled>();
  for (const t of [...trainVal, ...test]) {
    const prev = seen.get(t.hash);
    if (prev && prev.file.label !== t.file.label) {
      warn(`the same photo is in two classes: ${prev.file.relPath} (${classes[prev.file.label]}) and ${t.file.relPath} (${classes[t.file.label]}); remove one`);
    }
    if (!prev) seen.set(t.hash, t);
  }
  const trainHashes = new Set(trainVal.map((t) => t.hash));
  const leaked = test.filter((t) => trainHashes.has(t.hash));
  if (leaked.length > 0) {
    warn(`${leaked.length} test photo(s) also appear in training (e.g. ${leaked[0]!.file.relPath}); the test score is optimistic`);
  }
}
