import { Backbone } from '../backbone/backbone.js';
import { groupPhotos, type PhotoGroups } from '../dataset/groups.js';
import { scanDataset, type ImageFile } from '../dataset/scan.js';
import { seriesLinks } from '../dataset/series.js';
import { splitDataset } from '../dataset/split.js';
import { HeadswapError, msg, option, spellParts, type MessageParts } from '../errors.js';
import { crossValidate, type CrossValidation, type CvItem } from '../evaluate/cv.js';
import { evaluate, type Evaluation } from '../evaluate/metrics.js';
import { exportEnsembleGraph } from '../export/graph.js';
import type { ModelMetadata } from '../export/metadata.js';
import { assertOutputFree, writeModelFolder } from '../export/write.js';
import { cacheSizeWarning, openFeatureCache, type FeatureCache } from '../features/cache.js';
import { PLAIN_VIEW, augmentView, extractViewsOf, type ExtractedFeature, type ViewsResult } from '../features/extract.js';
import { averageProbabilities, fitHead, predictRows, rowsDataset, type LabeledRow, type TrainedHead } from '../head/train.js';
import { flipSpec } from '../image/augment.js';
import { resizedPixels } from '../image/preprocess.js';
import { recordRun } from '../runs/store.js';
import { pushTo } from '../util/collections.js';
import { progressTracker } from '../util/progress.js';
import { AUTO_FOLDS, chooseRecipe, type RecipeChoice } from './auto.js';
import { planTraining, type TrainOptions, type TrainPlan } from './plan.js';
import { groupSummary, modelMetadata, runRecord, splitCounts, usedFiles, type GroupSummary, type RunFacts, type SplitCounts } from './record.js';

export type { TrainOptions } from './plan.js';
export type { GroupSummary, SplitCounts } from './record.js';
export type { RecipeChoice, RecipeScore } from './auto.js';

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
  /** `groupMs`: finding series and near-copies; `autoMs`: the recipe choice of `--quality auto` (its cross-validation), when it ran. */
  readonly timings: { readonly featuresMs: number; readonly headMs: number; readonly exportMs: number; readonly totalMs: number; readonly imagesPerSecond: number; readonly groupMs: number; readonly autoMs?: number };
  readonly out?: string;
  readonly metadata: ModelMetadata;
  /** Every photo used, with its split (absolute paths). */
  readonly files: readonly { readonly path: string; readonly label: number; readonly split: 'train' | 'validation' | 'test' }[];
  /** `--cv`: folds of whole groups dealt at random. */
  readonly crossValidation?: CrossValidation;
  /** `--cv`: folds of whole groups in name order. */
  readonly crossValidationOrdered?: CrossValidation;
  /** How the data folder's photos were grouped for the split and the folds. */
  readonly groups: GroupSummary;
  /** `--quality auto`: every candidate's cross-validation score and the choice. */
  readonly recipe?: RecipeChoice;
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

type Warn = (message: string | MessageParts) => void;
type Photos = Awaited<ReturnType<typeof scanPhotos>>;
type Sets = { readonly train: readonly Labeled[]; readonly validation: readonly Labeled[]; readonly test: readonly Labeled[] };

/** Vectors of each path's views, in view order. */
function byPathOf(result: ViewsResult | undefined): Map<string, Float32Array[]> {
  const out = new Map<string, Float32Array[]>();
  for (const f of result?.features ?? []) pushTo(out, f.path, f.vector);
  return out;
}

/** Scan the data folder (and the test folder): the photos, and what was skipped on the way. */
async function scanPhotos(plan: TrainPlan, warn: Warn) {
  const scanned = await scanDataset(plan.data);
  const testScan = plan.testDir ? await scanDataset(plan.testDir, { classes: scanned.classes, option: 'testDir' }) : undefined;
  if (testScan) {
    const missing = scanned.classes.filter((_, c) => !testScan.files.some((f) => f.label === c));
    if (missing.length > 0) warn(msg`${option('testDir')} ${plan.testDir} has no photos of ${missing.map((c) => `'${c}'`).join(', ')}: the test score covers the other ${scanned.classes.length - missing.length} of ${scanned.classes.length} classes`);
  }
  for (const w of [...scanned.warnings, ...(testScan?.warnings ?? [])]) warn(w);
  const skipped = [...scanned.skipped, ...(testScan?.skipped ?? [])];
  for (const s of skipped) warn(`skipped ${s.path}: ${s.reason}`);
  return { classes: scanned.classes, data: scanned.files, test: testScan?.files, skipped };
}

/**
 * The plain pass of every photo, cached, for all the backbones at once (each photo read and
 * decoded once for them). A photo is used when every backbone could read it.
 */
async function extractPlain(backbones: readonly Backbone[], photos: Photos, plan: TrainPlan, cache: FeatureCache | undefined, warn: Warn) {
  const all = [...photos.data, ...(photos.test ?? [])];
  const plain = await extractViewsOf(backbones, all.map((f) => f.path), [PLAIN_VIEW], { cache, ...plan.extract });
  const skipped = plain[0]!.skipped;
  for (const s of skipped) warn(`skipped ${s.path}: ${s.reason}`);
  const byPath = plain.map((r) => new Map(r.features.map((f) => [f.path, f])));
  const labeled = (files: readonly ImageFile[]): Labeled[] =>
    files.flatMap((file) => {
      const found: (ExtractedFeature | undefined)[] = byPath.map((b) => b.get(file.path));
      if (found.some((f) => !f)) return [];
      return [{ file, hash: found[0]!.hash, rows: found.map((f) => ({ vector: f!.vector, label: file.label })) }];
    });
  return {
    data: labeled(photos.data),
    test: photos.test ? labeled(photos.test) : undefined,
    skipped,
    featureDims: plain.map((r) => r.features[0]?.vector.length ?? 0),
    cached: plain.reduce((n, r) => n + r.cached, 0),
    computed: plain.reduce((n, r) => n + r.computed, 0),
  };
}

/** The global average of a backbone's feature vector (region features follow it). */
function pooled(backbone: Backbone, vector: Float32Array): Float32Array {
  const r = backbone.feature.regions;
  return r ? vector.subarray(0, vector.length / (1 + r.rows * r.cols)) : vector;
}

/** The groups of the data folder's photos: series links and near-duplicates (dataset/groups.ts). */
async function groupsOf(backbones: readonly Backbone[], data: readonly Labeled[], plan: TrainPlan, classes: readonly string[], warn: Warn): Promise<PhotoGroups> {
  const files = data.map((t) => t.file);
  const links = plan.groupBy === 'none' ? [] : await seriesLinks(files, { groupsFile: plan.groupsFile, readTimes: plan.groupBy !== 'similarity' });
  const groups = groupPhotos(files, plan.groupBy, links, data.map((t) => t.rows.map((r, m) => pooled(backbones[m]!, r.vector))));
  if (groups.grouped > 0) {
    warn(`${groups.grouped} of ${files.length} photos come in series or near-copies (${groups.count} groups, the largest of ${groups.largest}); splits and folds keep each group together, so the estimate counts each series as one photo`);
  }
  for (const c of groups.singleGroupClasses) {
    warn(`class '${classes[c]}': all its photos are one series; add photos of other objects, places or light, or the estimate cannot tell how it does on new ones`);
  }
  return groups;
}

/** Split the data folder by groups; a `--test-dir` replaces the test split. */
function splitSets(data: readonly Labeled[], test: readonly Labeled[] | undefined, groups: PhotoGroups, classes: readonly string[], plan: TrainPlan): Sets {
  const byPath = new Map(data.map((t) => [t.file.path, t]));
  const split = splitDataset(data.map((t) => t.file), classes, { valPct: plan.valPct, testPct: plan.testPct, seed: plan.seed, hasSeparateTest: Boolean(test), groupOf: (relPath) => groups.of.get(relPath) ?? relPath });
  const back = (files: readonly ImageFile[]): Labeled[] => files.map((f) => byPath.get(f.path)!);
  return { train: back(split.train), validation: back(split.validation), test: test ?? back(split.test) };
}

/**
 * The passes the level asks for beyond the plain one: the training views of the training and
 * validation photos, and the mirror of the test photos (test-time flip).
 */
async function extractViews(backbones: readonly Backbone[], sets: Sets, plan: TrainPlan, tta: boolean, cache: FeatureCache | undefined, warn: Warn) {
  const more = { cache, ...plan.extract };
  const paths = (set: readonly Labeled[]): string[] => set.map((t) => t.file.path);
  const views = plan.views.length > 0 ? await extractViewsOf(backbones, paths([...sets.train, ...sets.validation]), plan.views.map(augmentView), { ...more, step: 'augment' }) : undefined;
  const mirrored = tta ? await extractViewsOf(backbones, paths(sets.test), [augmentView(flipSpec())], { ...more, step: 'mirror' }) : undefined;
  // A photo readable as itself but not as a view keeps its plain vector; the failure is still said.
  for (const s of [...(views?.[0]!.skipped ?? []), ...(mirrored?.[0]!.skipped ?? [])]) warn(`no augmented view of ${s.path}: ${s.reason}`);
  const viewsOf = backbones.map((_, m) => byPathOf(views?.[m]));
  const mirrorOf = backbones.map((_, m) => byPathOf(mirrored?.[m]));
  const withViews = (set: readonly Labeled[]): Labeled[] =>
    set.map((t) => ({ ...t, rows: t.rows.map((r, m) => ({ ...r, views: viewsOf[m]!.get(t.file.path), mirror: mirrorOf[m]!.get(t.file.path)?.[0] })) }));
  const passes = [...(views ?? []), ...(mirrored ?? [])];
  return {
    sets: { train: withViews(sets.train), validation: withViews(sets.validation), test: withViews(sets.test) },
    cached: passes.reduce((n, r) => n + r.cached, 0),
    computed: passes.reduce((n, r) => n + r.computed, 0),
  };
}

/** Photos as cross-validation items, with their groups. */
function cvItems(set: readonly Labeled[], groups: PhotoGroups): CvItem[] {
  return set.map((t) => ({ relPath: t.file.relPath, label: t.file.label, rows: t.rows, group: groups.of.get(t.file.relPath) }));
}

/** Folds auto can afford: at most AUTO_FOLDS, at most the smallest class's photo count. */
function autoFolds(items: readonly CvItem[], classes: readonly string[]): number {
  const smallest = Math.min(...classes.map((_, c) => items.filter((it) => it.label === c).length));
  return Math.min(AUTO_FOLDS, smallest);
}

/** Ensemble members share one `pixels` input, so they must want the same resized image. */
function checkEnsemble(backbones: readonly Backbone[]): void {
  const [first, ...rest] = backbones;
  const key = (b: Backbone): string => resizedPixels(b.preprocessing);
  for (const b of rest) {
    if (key(b) !== key(first!)) {
      throw new HeadswapError(`${b.source.origin} takes ${key(b)} pixels and ${first!.source.origin} ${key(first!)}; an ensemble's backbones must take the same input size and resize; ensemble networks that do, or train each alone`);
    }
  }
}

/** Refuses sets the head cannot be trained or scored on, and says what inflates or confuses the score. */
function checkSets(sets: Sets, classes: readonly string[], plan: TrainPlan, warn: Warn): void {
  checkDuplicates([...sets.train, ...sets.validation], sets.test, classes, warn);
  if (sets.test.length === 0) throw new HeadswapError(msg`${plan.testDir ?? plan.data}: no readable test images; add photos or give ${option('testDir')}`);
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
  const warn = (m: string | MessageParts): void => {
    const parts = typeof m === 'string' ? [m] : m;
    const text = spellParts(parts, String);
    warnings.push(text);
    options.onWarning?.(text, parts);
  };
  const plan = planTraining(options);
  const photos = await scanPhotos(plan, warn);
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

async function trainOn(loaded: readonly Backbone[], plan: TrainPlan, photos: Photos, warn: Warn, warnings: readonly string[], t0: number): Promise<TrainResult> {
  const { classes } = photos;
  checkEnsemble(loaded);
  const regions = plan.preset.regions;
  for (const backbone of loaded) {
    if (regions && !backbone.feature.regions) {
      const { tensor, pooling } = backbone.feature;
      warn(msg`${backbone.id}: no region features from its cut '${tensor}' (${pooling}; they need a convolution map of at least ${regions.rows}x${regions.cols}), so ${option('quality', plan.quality)} trains on the pooled features alone`);
    }
  }
  let tta = plan.tta;
  const batchOfOne = loaded.find((b) => b.batchOfOne);
  if (tta && batchOfOne) {
    warn(`${batchOfOne.id} takes one image per run, so the mirror image cannot run beside the photo; test-time flip is off`);
    tta = false;
  }
  const cache = plan.useCache ? openFeatureCache(plan.cacheDir) : undefined;
  try {
    const tf = performance.now();
    const plain = await extractPlain(loaded, photos, plan, cache, warn);
    const plainMs = performance.now() - tf;
    const tg = performance.now();
    const groups = await groupsOf(loaded, plain.data, plan, classes, warn);
    const split = splitSets(plain.data, plain.test, groups, classes, plan);
    checkSets(split, classes, plan, warn);

    // --quality auto: which networks, by grouped CV on the photos the final score does not use.
    let recipe: RecipeChoice | undefined;
    let chosen = loaded.map((_, m) => m);
    if (plan.quality === 'auto' && loaded.length > 1) {
      const items = cvItems([...split.train, ...split.validation], groups);
      const folds = autoFolds(items, classes);
      if (folds >= 2) {
        recipe = await chooseRecipe(items, classes, loaded.map((b) => b.id), plan.head, folds, plan.extract.onProgress);
        chosen = [...recipe.chosen.members];
      } else {
        warn(msg`${option('quality', 'auto')}: a class has fewer than 2 training photos, too few to compare recipes; using all ${loaded.length} backbones`);
      }
    }
    const groupMs = performance.now() - tg - (recipe?.millis ?? 0);
    const backbones = chosen.map((m) => loaded[m]!);
    const tv = performance.now();
    const pick = (set: readonly Labeled[]): Labeled[] => set.map((t) => ({ ...t, rows: chosen.map((m) => t.rows[m]!) }));
    const extra = await extractViews(backbones, { train: pick(split.train), validation: pick(split.validation), test: pick(split.test) }, plan, tta, cache, warn);
    const featuresMs = plainMs + performance.now() - tv;
    if (cache) {
      const tooBig = cacheSizeWarning(plan.cacheDir);
      if (tooBig) warn(tooBig);
    }
    const { sets } = extra;
    const featureDims = chosen.map((m) => plain.featureDims[m]!);

    const k = classes.length;
    const rows = (set: readonly Labeled[], m: number): LabeledRow[] => set.map((t) => t.rows[m]!);
    const heads: TrainedHead[] = [];
    const memberProbs: Float32Array[] = [];
    for (let m = 0; m < backbones.length; m++) {
      // Early stopping and the curves use the validation photos as they are; the refit adds their views.
      const reports = new Map<string, (done: number) => void>();
      const head = await fitHead(
        rowsDataset(rows(sets.train, m), k),
        sets.validation.length > 0 ? rowsDataset(rows(sets.validation, m), k, false) : undefined,
        plan.head,
        rowsDataset(rows([...sets.train, ...sets.validation], m), k),
        (phase, epoch, epochs) => {
          const step = `${phase === 'refit' ? 'head, refit on train + validation' : 'head'}: ${backbones[m]!.id}`;
          const report = reports.get(step) ?? progressTracker(step, epochs, plan.extract.onProgress, 'epochs');
          reports.set(step, report);
          report(epoch);
        },
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
    const members = backbones.length > 1 ? backbones.map((backbone, m) => ({ backbone, head: heads[m]!, evaluation: scored(memberProbs[m]!), featureDims: featureDims[m]! })) : undefined;
    const estimates = plan.cv ? await estimate(cvItems([...sets.train, ...sets.validation, ...(plan.testDir ? [] : sets.test)], groups), classes, plan, tta, evaluation, warn) : undefined;

    const head = heads[0]!;
    const headMs = heads.reduce((n, h) => n + h.millis, 0);
    const facts: RunFacts = {
      plan, backbone: backbones[0]!, members, classes, sets, featureDims: featureDims[0]!, tta, head, headMs, evaluation,
      crossValidation: estimates?.random, crossValidationOrdered: estimates?.ordered, groups, recipe,
      skipped: [...photos.skipped, ...plain.skipped], featuresMs,
    };
    const metadata = modelMetadata(facts);
    const te = performance.now();
    if (plan.out) {
      const model = exportEnsembleGraph(backbones.map((b, m) => ({ features: b.featureModel(), head: heads[m]!.weights })), { tta, portable: plan.portable });
      await writeModelFolder(plan.out, { model, metadata }, plan.force);
    }
    const exportMs = performance.now() - te;
    const totalMs = performance.now() - t0;
    const runId = plan.record ? recordRun(runRecord(facts, metadata, { total: totalMs / 1000, export: exportMs / 1000 }), plan.cacheDir) : undefined;
    const cached = plain.cached + extra.cached;
    const computed = plain.computed + extra.computed;
    return {
      classes,
      counts: splitCounts(facts),
      evaluation,
      head,
      backbone: metadata.backbone,
      ...(members ? { members: members.map((x) => ({ backbone: { id: x.backbone.id, origin: x.backbone.source.origin, sha256: x.backbone.source.sha256, featureDims: x.featureDims }, head: x.head, evaluation: x.evaluation })) } : {}),
      skipped: facts.skipped,
      warnings,
      features: { cached, computed },
      timings: { featuresMs, headMs, exportMs, totalMs, imagesPerSecond: (cached + computed) / (featuresMs / 1000), groupMs, ...(recipe ? { autoMs: recipe.millis } : {}) },
      out: plan.out,
      metadata,
      files: usedFiles(facts),
      crossValidation: estimates?.random,
      crossValidationOrdered: estimates?.ordered,
      groups: groupSummary(groups),
      ...(recipe ? { recipe } : {}),
      runId,
    };
  } finally {
    cache?.close();
  }
}

/**
 * `--cv`: grouped folds dealt at random (the estimate shown first: across evaluation sets of
 * several kinds the closest to later photos' score) and folds in name order (photos scored on
 * ones named before and after them). Says so when they, or CV and the held-out photos, disagree.
 */
async function estimate(items: readonly CvItem[], classes: readonly string[], plan: TrainPlan, tta: boolean, evaluation: Evaluation, warn: Warn): Promise<{ random: CrossValidation; ordered: CrossValidation }> {
  const options = { ...plan.head, maxK: plan.topK, tta };
  const k = plan.cv!;
  const report = progressTracker('cross-validation', 2 * k, plan.extract.onProgress, 'folds');
  report(0);
  const random = await crossValidate(items, classes, k, { ...options, kind: 'random', onFold: (f) => report(f) });
  const ordered = await crossValidate(items, classes, k, { ...options, kind: 'ordered', onFold: (f) => report(k + f) });
  if (random.ungroupedClasses.length > 0) {
    warn(msg`${option('cv', plan.cv)}: ${random.ungroupedClasses.map((c) => `'${c}'`).join(', ')} form(s) fewer series than folds, so their photos were dealt one by one and near-copies can sit on both sides`);
  }
  const pts = (x: number): string => `${(x * 100).toFixed(1)}%`;
  if (Math.abs(random.top1.mean - ordered.top1.mean) > disagreement(random, ordered)) {
    warn(`cross-validation disagrees with itself: ${pts(random.top1.mean)} with random folds, ${pts(ordered.top1.mean)} with folds in name order (each photo scored by a head trained on photos named before and after it); if your later photos differ from the earlier ones, trust the second`);
  }
  const [lo, hi] = evaluation.top1Ci95;
  if (random.top1.mean < lo || random.top1.mean > hi) {
    warn(`cross-validation (${pts(random.top1.mean)}) lies outside the held-out photos' 95% interval (${pts(lo)}-${pts(hi)}): the held-out photos differ from the training folder, or are too few to say`);
  }
  return { random, ordered };
}

/** Two fold partitions' means differ by more than this only if their folds really differ (2 standard errors). */
function disagreement(a: CrossValidation, b: CrossValidation): number {
  const se = (cv: CrossValidation): number => cv.top1.std / Math.sqrt(Math.max(1, cv.folds - 1));
  return 2 * Math.hypot(se(a), se(b));
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
