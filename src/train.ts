import { relative, resolve } from 'node:path';
import { Backbone, PROBABILITIES, type BackboneOptions } from './backbone/backbone.js';
import { cacheDir } from './backbone/source.js';
import { DEFAULT_BACKBONE } from './backbone/zoo.js';
import { scanDataset, type ImageFile } from './dataset/scan.js';
import { splitDataset } from './dataset/split.js';
import { HeadswapError } from './errors.js';
import { crossValidate, type CrossValidation } from './evaluate/cv.js';
import { evaluate, type Evaluation } from './evaluate/metrics.js';
import { PIXELS } from './onnx/edit.js';
import type { ModelMetadata } from './export/metadata.js';
import { assertOutputFree, writeModelFolder } from './export/write.js';
import { FeatureCache, defaultCachePath } from './features/cache.js';
import { augmentSpecs, augmentView, extractAugmented, flipSpec } from './features/augment.js';
import { extractFeatures, extractViews, type ExtractedFeature, type ViewsResult } from './features/extract.js';
import { DEFAULT_QUALITY, QUALITY, type QualityName } from './head/quality.js';
import { fitHead, predictRows, rowsDataset, type FitOptions, type LabeledRow, type TrainedHead } from './head/train.js';
import { sha256 } from './util/fs.js';
import type { ProgressCallback } from './util/progress.js';
import { toolVersions } from './util/versions.js';

export interface TrainOptions {
  /** Folder with one sub-folder of images per class. */
  readonly data: string;
  /** A separate folder of the same classes to evaluate on (then `data` is split into train/validation only). */
  readonly testDir?: string;
  /** Output model folder; default `<data>.model`. `false` skips the export. */
  readonly out?: string | false;
  /** Replace an existing output folder. */
  readonly force?: boolean;
  /** Backbone: zoo id, `.onnx` path or http(s) URL. Default: the bundled MobileNetV2. */
  readonly base?: string;
  readonly backbone?: BackboneOptions;
  /** Percent of each class held out for validation (early stopping) and for test. */
  readonly valPct?: number;
  readonly testPct?: number;
  /** Seeds the split and the head's training. */
  readonly seed?: number;
  readonly head?: FitOptions;
  /**
   * Accuracy against backbone time (src/head/quality.ts): 'plain' one pass per photo; 'fast' also
   * averages each prediction with its mirror image's; 'best' also trains on augmented views.
   * Default DEFAULT_QUALITY.
   */
  readonly quality?: QualityName;
  /** Folder of the feature cache and downloaded models; default $HEADSWAP_CACHE or the user cache dir. */
  readonly cacheDir?: string;
  /** Do not read or write the feature cache. */
  readonly noCache?: boolean;
  readonly batchSize?: number;
  readonly pixelLimit?: number;
  /** Largest k for top-k accuracy (capped at the class count). */
  readonly topK?: number;
  /** Also estimate accuracy by stratified K-fold cross-validation over all photos of `data`. */
  readonly cv?: number;
  /** Record the run in the history (`headswap runs`); default true when the cache is used. */
  readonly record?: boolean;
  readonly onProgress?: ProgressCallback;
  /** Called for each skipped file and each warning as it happens. */
  readonly onWarning?: (message: string) => void;
}

export interface SplitCounts {
  readonly train: number;
  readonly validation: number;
  readonly test: number;
}

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
  readonly feature: ExtractedFeature;
  /** The vectors the head sees: the photo's own, its augmented views (training and validation photos, with augmentation on), its mirror (test photos, with test-time flip on). */
  readonly row: LabeledRow;
}

/** Vectors of each path's views, in view order. */
function byPathOf(result: ViewsResult | undefined): Map<string, Float32Array[]> {
  const out = new Map<string, Float32Array[]>();
  for (const f of result?.features ?? []) out.set(f.path, [...(out.get(f.path) ?? []), f.vector]);
  return out;
}

/** Drops a trailing slash so `photos/` gives `photos.model`, not `photos/.model`. */
function defaultOut(data: string): string {
  return `${data.replace(/[\\/]+$/, '')}.model`;
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
  const seed = options.seed ?? 0;
  if (!options.testDir && options.testPct === 0) {
    throw new HeadswapError('--test-pct 0 leaves no photos to score the classifier on; give a separate --test-dir or a test percentage above 0');
  }
  const scanned = await scanDataset(options.data);
  const testScan = options.testDir ? await scanDataset(options.testDir, { classes: scanned.classes }) : undefined;
  const classes = scanned.classes;
  for (const w of [...scanned.warnings, ...(testScan?.warnings ?? [])]) warn(w);
  for (const s of [...scanned.skipped, ...(testScan?.skipped ?? [])]) warn(`skipped ${s.path}: ${s.reason}`);
  const split = splitDataset(scanned.files, classes, {
    valPct: options.valPct ?? 10,
    testPct: options.testPct ?? 10,
    seed,
    hasSeparateTest: Boolean(testScan),
  });
  const testFiles = testScan ? testScan.files : split.test;
  const out = options.out === false ? undefined : (options.out ?? defaultOut(options.data));
  // Refuse before the slow part rather than after it.
  if (out) await assertOutputFree(out, options.force);

  const quality = options.quality ?? DEFAULT_QUALITY;
  const preset = QUALITY[quality];
  const backbone = await Backbone.load(options.base ?? DEFAULT_BACKBONE, { cacheDir: options.cacheDir, regions: preset.regions, ...options.backbone });
  if (preset.regions && !backbone.feature.regions) {
    const { tensor, pooling } = backbone.feature;
    const { rows, cols } = preset.regions;
    warn(`${backbone.id}: no region features from its cut '${tensor}' (${pooling}; they need a convolution map of at least ${rows}x${cols}), so --quality ${quality} trains on the pooled features alone`);
  }
  const cache = options.noCache ? undefined : FeatureCache.open(defaultCachePath(options.cacheDir ?? cacheDir()));
  try {
    const all = [...split.train, ...split.validation, ...testFiles];
    const tf = performance.now();
    const extracted = await extractFeatures(backbone, all.map((f) => f.path), {
      cache,
      batchSize: options.batchSize,
      pixelLimit: options.pixelLimit,
      onProgress: options.onProgress,
    });
    const skipped = [...scanned.skipped, ...(testScan?.skipped ?? []), ...extracted.skipped];
    for (const s of extracted.skipped) warn(`skipped ${s.path}: ${s.reason}`);
    const byPath = new Map(extracted.features.map((f) => [f.path, f]));
    const readable = (files: readonly ImageFile[]): ImageFile[] => files.filter((f) => byPath.has(f.path));

    // The extra backbone passes the quality preset asks for; cached like the plain features.
    let tta = preset.tta;
    if (tta && backbone.batchOfOne) {
      warn(`${backbone.id} takes one image per run, so the mirror image cannot run beside the photo; test-time flip is off`);
      tta = false;
    }
    const specs = preset.augment ? augmentSpecs(preset.augment.crops, seed, { flip: preset.augment.flip, ...preset.augment.crop }) : [];
    const more = { cache, batchSize: options.batchSize, pixelLimit: options.pixelLimit, onProgress: options.onProgress };
    const fitPaths = readable([...split.train, ...split.validation]).map((f) => f.path);
    const augmented = specs.length > 0 ? await extractAugmented(backbone, fitPaths, specs, more) : undefined;
    const mirrored = tta ? await extractViews(backbone, readable(testFiles).map((f) => f.path), [augmentView(flipSpec())], { ...more, step: 'mirror' }) : undefined;
    const featuresMs = performance.now() - tf;
    // A photo readable as itself but not as a view keeps its plain vector; the failure is still said.
    for (const s of [...(augmented?.skipped ?? []), ...(mirrored?.skipped ?? [])]) warn(`no augmented view of ${s.path}: ${s.reason}`);
    const viewsOf = byPathOf(augmented);
    const mirrorOf = byPathOf(mirrored);
    const labeled = (files: readonly ImageFile[]): Labeled[] =>
      files.flatMap((file) => {
        const feature = byPath.get(file.path);
        return feature ? [{ file, feature, row: { vector: feature.vector, label: file.label, views: viewsOf.get(file.path), mirror: mirrorOf.get(file.path)?.[0] } }] : [];
      });
    const trainSet = labeled(split.train);
    const valSet = labeled(split.validation);
    const testSet = labeled(testFiles);
    checkDuplicates([...trainSet, ...valSet], testSet, classes, warn);
    if (testSet.length === 0) throw new HeadswapError(`${options.testDir ?? options.data}: no readable test images; add photos or give --test-dir`);
    for (const [c, name] of classes.entries()) {
      if (!trainSet.some((t) => t.file.label === c)) {
        throw new HeadswapError(`${options.data}: class '${name}' has no readable training image; add photos to ${name}/`);
      }
    }

    const dims = extracted.features[0]!.vector.length;
    const rows = (set: readonly Labeled[]): LabeledRow[] => set.map((t) => t.row);
    const headOptions: FitOptions = { seed, ...(options.head?.hidden ? {} : preset.head), ...options.head };
    // Early stopping and the curves use the validation photos as they are; the refit adds their views.
    const head = await fitHead(
      rowsDataset(rows(trainSet), classes.length),
      valSet.length > 0 ? rowsDataset(rows(valSet), classes.length, false) : undefined,
      headOptions,
      rowsDataset(rows([...trainSet, ...valSet]), classes.length),
    );
    const probs = predictRows(head.weights, rows(testSet), tta);
    const k = classes.length;
    const evaluation = evaluate(
      testSet.map((t, i) => ({ file: t.file.path, label: t.file.label, probs: probs.slice(i * k, (i + 1) * k) })),
      classes,
      { maxK: options.topK ?? 5 },
    );

    const crossValidation = options.cv
      ? await crossValidate(
          [...trainSet, ...valSet, ...(testScan ? [] : testSet)].map((t) => ({ relPath: t.file.relPath, ...t.row })),
          classes,
          options.cv,
          { ...headOptions, maxK: options.topK ?? 5, tta },
        )
      : undefined;
    const files = [
      ...trainSet.map((t) => ({ path: t.file.path, label: t.file.label, split: 'train' as const })),
      ...valSet.map((t) => ({ path: t.file.path, label: t.file.label, split: 'validation' as const })),
      ...testSet.map((t) => ({ path: t.file.path, label: t.file.label, split: 'test' as const })),
    ];

    const fingerprint = datasetFingerprint([...trainSet, ...valSet, ...testSet], classes);
    const counts: Record<string, SplitCounts> = {};
    for (const [c, name] of classes.entries()) {
      const n = (set: Labeled[]): number => set.filter((t) => t.file.label === c).length;
      counts[name] = { train: n(trainSet), validation: n(valSet), test: n(testSet) };
    }
    const metadata: ModelMetadata = {
      format: 'headswap-model',
      formatVersion: 1,
      createdAt: new Date().toISOString(),
      classes,
      backbone: { id: backbone.id, origin: backbone.source.origin, sha256: backbone.source.sha256, feature: backbone.feature, featureDims: dims },
      input: { name: PIXELS, dtype: 'uint8', layout: 'NHWC', size: backbone.preprocessing.size },
      output: { name: PROBABILITIES, kind: 'probabilities' },
      preprocessing: backbone.preprocessing,
      metrics: { ...evaluation, misclassified: evaluation.misclassified.map((m) => ({ ...m, file: relative(options.testDir ?? options.data, m.file) })) },
      training: {
        head: head.options,
        bestEpoch: head.bestEpoch,
        epochs: head.history.length,
        history: head.history,
        seed,
        quality: { name: quality, tta, views: specs.map((v) => v.id) },
        valPct: options.valPct ?? 10,
        testPct: testScan ? 0 : (options.testPct ?? 10),
        counts,
        crossValidation: crossValidation ?? null,
        timings: { featuresMs, headMs: head.millis },
      },
      dataset: {
        fingerprint,
        root: resolve(options.data),
        testDir: options.testDir ? resolve(options.testDir) : null,
        // Paths relative to their folder, so the record survives moving the data set as a whole.
        files: files.map((f) => ({ file: relative(f.split === 'test' && options.testDir ? options.testDir : options.data, f.path), label: f.label, split: f.split })),
        skipped,
      },
      versions: toolVersions(),
    };
    const te = performance.now();
    if (out) await writeModelFolder(out, { model: backbone.exportModel(head.weights, { tta: tta && 'probabilities' }), metadata }, options.force);
    const exportMs = performance.now() - te;
    const totalMs = performance.now() - t0;
    const passes = [extracted, ...(augmented ? [augmented] : []), ...(mirrored ? [mirrored] : [])];
    const top = (k: number): number | undefined => evaluation.topK.find((t) => t.k === k)?.accuracy;
    const runId =
      cache && options.record !== false
        ? cache.recordRun({
            kind: 'train',
            data: resolve(options.data),
            testDir: options.testDir ? resolve(options.testDir) : null,
            base: backbone.source.origin,
            options: { quality, valPct: options.valPct ?? 10, testPct: testScan ? 0 : (options.testPct ?? 10), cv: options.cv ?? null, ...head.options },
            fingerprint,
            metrics: {
              top1: evaluation.top1,
              ...(top(5) === undefined ? {} : { top5: top(5)! }),
              macroF1: evaluation.macroF1,
              logLoss: evaluation.logLoss,
              testImages: evaluation.count,
              ...(crossValidation ? { cvTop1: crossValidation.top1.mean, cvTop1Std: crossValidation.top1.std } : {}),
            },
            timings: { total: totalMs / 1000, features: featuresMs / 1000, head: head.millis / 1000, export: exportMs / 1000 },
            out: out ? resolve(out) : null,
          })
        : undefined;
    return {
      classes,
      counts,
      evaluation,
      head,
      backbone: metadata.backbone,
      skipped,
      warnings,
      features: { cached: passes.reduce((n, r) => n + r.cached, 0), computed: passes.reduce((n, r) => n + r.computed, 0) },
      timings: { featuresMs, headMs: head.millis, exportMs, totalMs, imagesPerSecond: passes.reduce((n, r) => n + r.cached + r.computed, 0) / (featuresMs / 1000) },
      out,
      metadata,
      files,
      crossValidation,
      runId,
    };
  } finally {
    cache?.close();
    await backbone.release();
  }
}

/** Identifies the exact training data: which files (by content) carry which labels. */
function datasetFingerprint(items: readonly Labeled[], classes: readonly string[]): string {
  const rows = items.map((t) => `${classes[t.file.label]}\t${t.feature.hash}`).sort();
  return sha256(rows.join('\n'));
}

/** The same photo under two classes confuses training; the same photo in train and test inflates the score. */
function checkDuplicates(trainVal: readonly Labeled[], test: readonly Labeled[], classes: readonly string[], warn: (m: string) => void): void {
  const seen = new Map<string, Labeled>();
  for (const t of [...trainVal, ...test]) {
    const prev = seen.get(t.feature.hash);
    if (prev && prev.file.label !== t.file.label) {
      warn(`the same photo is in two classes: ${prev.file.relPath} (${classes[prev.file.label]}) and ${t.file.relPath} (${classes[t.file.label]}); remove one`);
    }
    if (!prev) seen.set(t.feature.hash, t);
  }
  const trainHashes = new Set(trainVal.map((t) => t.feature.hash));
  const leaked = test.filter((t) => trainHashes.has(t.feature.hash));
  if (leaked.length > 0) {
    warn(`${leaked.length} test photo(s) also appear in training (e.g. ${leaked[0]!.file.relPath}); the test score is optimistic`);
  }
}

