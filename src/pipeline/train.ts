import { Backbone } from '../backbone/backbone.js';
import { scanDataset, type ImageFile } from '../dataset/scan.js';
import { splitDataset } from '../dataset/split.js';
import { HeadswapError } from '../errors.js';
import { crossValidate, type CrossValidation } from '../evaluate/cv.js';
import { evaluate, type Evaluation } from '../evaluate/metrics.js';
import { exportClassifierGraph } from '../export/graph.js';
import type { ModelMetadata } from '../export/metadata.js';
import { assertOutputFree, writeModelFolder } from '../export/write.js';
import { openFeatureCache, type FeatureCache } from '../features/cache.js';
import { augmentView, extractAugmented, extractFeatures, extractViews, type ExtractedFeature, type ViewsResult } from '../features/extract.js';
import { fitHead, predictRows, rowsDataset, type LabeledRow, type TrainedHead } from '../head/train.js';
import { flipSpec } from '../image/augment.js';
import { openRunStore } from '../runs/store.js';
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
  /** The vectors the head sees: the photo's own, its augmented views (training and validation photos, with augmentation on), its mirror (test photos, with test-time flip on). */
  readonly row: LabeledRow;
}

type Warn = (message: string) => void;

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
 * Every backbone pass the plan needs, cached: the plain photos, the training views of the
 * training and validation photos, and the mirror of the test photos.
 */
async function extractAll(backbone: Backbone, photos: Awaited<ReturnType<typeof splitPhotos>>, plan: TrainPlan, tta: boolean, cache: FeatureCache | undefined, warn: Warn) {
  const more = { cache, ...plan.extract };
  const all = [...photos.train, ...photos.validation, ...photos.test];
  const plain = await extractFeatures(backbone, all.map((f) => f.path), more);
  for (const s of plain.skipped) warn(`skipped ${s.path}: ${s.reason}`);
  const byPath = new Map(plain.features.map((f) => [f.path, f]));
  const readable = (files: readonly ImageFile[]): string[] => files.filter((f) => byPath.has(f.path)).map((f) => f.path);
  const views = plan.views.length > 0 ? await extractAugmented(backbone, readable([...photos.train, ...photos.validation]), plan.views, more) : undefined;
  const mirrored = tta ? await extractViews(backbone, readable(photos.test), [augmentView(flipSpec())], { ...more, step: 'mirror' }) : undefined;
  // A photo readable as itself but not as a view keeps its plain vector; the failure is still said.
  for (const s of [...(views?.skipped ?? []), ...(mirrored?.skipped ?? [])]) warn(`no augmented view of ${s.path}: ${s.reason}`);
  const viewsOf = byPathOf(views);
  const mirrorOf = byPathOf(mirrored);
  const labeled = (files: readonly ImageFile[]): Labeled[] =>
    files.flatMap((file) => {
      const f: ExtractedFeature | undefined = byPath.get(file.path);
      return f ? [{ file, hash: f.hash, row: { vector: f.vector, label: file.label, views: viewsOf.get(file.path), mirror: mirrorOf.get(file.path)?.[0] } }] : [];
    });
  const passes = [plain, ...(views ? [views] : []), ...(mirrored ? [mirrored] : [])];
  return {
    sets: { train: labeled(photos.train), validation: labeled(photos.validation), test: labeled(photos.test) },
    skipped: plain.skipped,
    featureDims: plain.features[0]?.vector.length ?? 0,
    cached: passes.reduce((n, r) => n + r.cached, 0),
    computed: passes.reduce((n, r) => n + r.computed, 0),
  };
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
  const { classes } = photos;
  // Refuse before the slow part rather than after it.
  if (plan.out) await assertOutputFree(plan.out, plan.force);

  const backbone = await Backbone.load(plan.base, plan.backbone);
  const regions = plan.preset.regions;
  if (regions && !backbone.feature.regions) {
    const { tensor, pooling } = backbone.feature;
    warn(`${backbone.id}: no region features from its cut '${tensor}' (${pooling}; they need a convolution map of at least ${regions.rows}x${regions.cols}), so --quality ${plan.quality} trains on the pooled features alone`);
  }
  let tta = plan.tta;
  if (tta && backbone.batchOfOne) {
    warn(`${backbone.id} takes one image per run, so the mirror image cannot run beside the photo; test-time flip is off`);
    tta = false;
  }
  const cache = plan.useCache ? openFeatureCache(plan.cacheDir) : undefined;
  try {
    const tf = performance.now();
    const extracted = await extractAll(backbone, photos, plan, tta, cache, warn);
    const featuresMs = performance.now() - tf;
    const { sets } = extracted;
    checkSets(sets, classes, plan, warn);

    const rows = (set: readonly Labeled[]): LabeledRow[] => set.map((t) => t.row);
    const k = classes.length;
    // Early stopping and the curves use the validation photos as they are; the refit adds their views.
    const head = await fitHead(
      rowsDataset(rows(sets.train), k),
      sets.validation.length > 0 ? rowsDataset(rows(sets.validation), k, false) : undefined,
      plan.head,
      rowsDataset(rows([...sets.train, ...sets.validation]), k),
    );
    const probs = predictRows(head.weights, rows(sets.test), tta);
    const evaluation = evaluate(
      sets.test.map((t, i) => ({ file: t.file.path, label: t.file.label, probs: probs.slice(i * k, (i + 1) * k) })),
      classes,
      { maxK: plan.topK },
    );
    const crossValidation = plan.cv
      ? await crossValidate(
          [...sets.train, ...sets.validation, ...(plan.testDir ? [] : sets.test)].map((t) => ({ relPath: t.file.relPath, ...t.row })),
          classes,
          plan.cv,
          { ...plan.head, maxK: plan.topK, tta },
        )
      : undefined;

    const facts: RunFacts = { plan, backbone, classes, sets, featureDims: extracted.featureDims, tta, head, evaluation, crossValidation, skipped: [...photos.skipped, ...extracted.skipped], featuresMs };
    const metadata = modelMetadata(facts);
    const te = performance.now();
    if (plan.out) await writeModelFolder(plan.out, { model: exportClassifierGraph(backbone.featureModel(), head.weights, { tta }), metadata }, plan.force);
    const exportMs = performance.now() - te;
    const totalMs = performance.now() - t0;
    const runId = plan.record ? recordRun(plan, runRecord(facts, metadata, { total: totalMs / 1000, export: exportMs / 1000 })) : undefined;
    return {
      classes,
      counts: splitCounts(facts),
      evaluation,
      head,
      backbone: metadata.backbone,
      skipped: facts.skipped,
      warnings,
      features: { cached: extracted.cached, computed: extracted.computed },
      timings: { featuresMs, headMs: head.millis, exportMs, totalMs, imagesPerSecond: (extracted.cached + extracted.computed) / (featuresMs / 1000) },
      out: plan.out,
      metadata,
      files: usedFiles(facts),
      crossValidation,
      runId,
    };
  } finally {
    cache?.close();
    await backbone.release();
  }
}

function recordRun(plan: TrainPlan, run: Parameters<ReturnType<typeof openRunStore>['recordRun']>[0]): number {
  const store = openRunStore(plan.cacheDir);
  try {
    return store.recordRun(run);
  } finally {
    store.close();
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
