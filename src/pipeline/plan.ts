import type { BackboneOptions } from '../backbone/backbone.js';
import { DEFAULT_SPLIT_OPTIONS } from '../dataset/split.js';
import { HeadswapError, msg, option, type WarningCallback } from '../errors.js';
import type { FitOptions } from '../head/train.js';
import { augmentSpecs, type AugmentSpec } from '../image/augment.js';
import type { ProgressCallback } from '../util/progress.js';
import { DEFAULT_GROUP_BY, type GroupBy } from '../dataset/groups.js';
import { DEFAULT_QUALITY, QUALITY, type QualityChoice, type QualityPreset } from './quality.js';

export interface TrainOptions {
  /** Folder with one sub-folder of images per class. */
  readonly data: string;
  /** A separate folder of the same classes to evaluate on (then `data` is split into train/validation only). */
  readonly testDir?: string;
  /** Output model folder; default `<data>.model`. `false` skips the export. */
  readonly out?: string | false;
  /** Replace an existing output folder. */
  readonly force?: boolean;
  /**
   * The model folder the run history names (default `out`): for a caller that writes into a
   * temporary folder and renames it into place afterwards, so `headswap report <run>` finds it.
   */
  readonly recordAs?: string;
  /**
   * Backbone: zoo id, `.onnx`/`.tflite` path, TF.js folder or http(s) URL. Several: an ensemble,
   * one head per backbone, their class probabilities averaged in one exported graph. Default
   * DEFAULT_BASES (the two bundled networks).
   */
  readonly base?: string | readonly string[];
  readonly backbone?: BackboneOptions;
  /** Percent of each class held out for validation (early stopping) and for test. */
  readonly valPct?: number;
  readonly testPct?: number;
  /** Seeds the split and the head's training. */
  readonly seed?: number;
  readonly head?: FitOptions;
  /**
   * Accuracy against backbone time (src/pipeline/quality.ts): 'plain' one pass per photo; 'fast'
   * also averages each prediction with its mirror image's; 'best' also trains on augmented views.
   * 'auto' (DEFAULT_QUALITY): plain passes, and the backbones (each alone or the ensemble) chosen
   * by grouped cross-validation on the training photos (pipeline/auto.ts).
   */
  readonly quality?: QualityChoice;
  /**
   * What keeps photos together in the split and the folds (dataset/groups.ts): 'auto' (default)
   * file series and near-duplicates, 'series' names, markers, capture times and `groupsFile`
   * only, 'similarity' near-duplicates (and markers and `groupsFile`), 'none' every photo alone.
   */
  readonly groupBy?: GroupBy;
  /** A file of `relPath<TAB or comma>group` lines: photos that belong together (dataset/series.ts). */
  readonly groupsFile?: string;
  /** Folder of the feature cache and downloaded models; default $HEADSWAP_CACHE or the user cache dir. */
  readonly cacheDir?: string;
  /** Do not read or write the feature cache. */
  readonly noCache?: boolean;
  readonly batchSize?: number;
  readonly pixelLimit?: number;
  /** Largest k for top-k accuracy (capped at the class count). */
  readonly topK?: number;
  /**
   * Export `model.onnx` with standard ONNX operators only, for runtimes other than onnxruntime
   * (OpenCV's DNN module and the like): float weights, about 4x the file and slower on
   * onnxruntime (bench/README.md, "Portable export"). Default false: onnxruntime's fast graph.
   */
  readonly portable?: boolean;
  /** Also estimate accuracy by stratified K-fold cross-validation over all photos of `data`. */
  readonly cv?: number;
  /** Record the run in the history (`headswap runs`); default true when the cache is used. */
  readonly record?: boolean;
  readonly onProgress?: ProgressCallback;
  /** Called for each skipped file and each warning as it happens. */
  readonly onWarning?: WarningCallback;
}

/**
 * The backbones train() uses unless told otherwise: the two bundled networks as an ensemble. Chosen
 * with DEFAULT_QUALITY by a table over evaluation sets of five kinds of photos (bench/README.md,
 * "Choosing the default"): the most accurate recipe on the sets used for choosing, at or above the
 * better single backbone on every set, and the cheapest of the candidates that were close.
 */
export const DEFAULT_BASES: readonly string[] = ['mobilenet_v2', 'mobilenet_edgetpu'];

/** Largest k of top-k accuracy unless `topK` says otherwise. */
export const DEFAULT_TOP_K = 5;

/**
 * Everything a run decides before it touches a photo: the one place where train()'s defaults are
 * resolved, so the job, the metadata and the run record all read the same values.
 */
export interface TrainPlan {
  readonly data: string;
  readonly testDir: string | undefined;
  readonly out: string | undefined;
  /** The output folder the run record names (`recordAs`, else `out`). */
  readonly recordedOut: string | undefined;
  readonly force: boolean;
  readonly seed: number;
  readonly valPct: number;
  /** Percent asked for test (checked by the split even with a `testDir`). */
  readonly testPct: number;
  /** Percent of `data` actually held out for test: 0 when a separate `testDir` is scored instead. */
  readonly heldOutPct: number;
  readonly topK: number;
  readonly cv: number | undefined;
  readonly quality: QualityChoice;
  /** The level's switches ('auto' runs plain passes). */
  readonly preset: QualityPreset;
  readonly groupBy: GroupBy;
  readonly groupsFile: string | undefined;
  /** Training views besides the plain photo (the preset's mirror and crops), in cache-variant order. */
  readonly views: readonly AugmentSpec[];
  /** Mirror averaging as the preset asks for it; a fixed-batch backbone turns it off (train()). */
  readonly tta: boolean;
  /** Export with standard ONNX operators only (export/graph.ts `ExportOptions.portable`). */
  readonly portable: boolean;
  /** The backbones, one or more (an ensemble). */
  readonly bases: readonly string[];
  readonly backbone: BackboneOptions;
  /** The head's options: the seed, the preset's (unless a hidden layer is asked for), then the caller's. */
  readonly head: FitOptions;
  readonly cacheDir: string | undefined;
  readonly useCache: boolean;
  /** Record the run in the history: only with the cache, unless `record: false`. */
  readonly record: boolean;
  readonly extract: { readonly batchSize: number | undefined; readonly pixelLimit: number | undefined; readonly onProgress: ProgressCallback | undefined };
}

/** Drops a trailing slash so `photos/` gives `photos.model`, not `photos/.model`. */
function defaultOut(data: string): string {
  return `${data.replace(/[\\/]+$/, '')}.model`;
}

function baseList(base: TrainOptions['base']): string[] {
  const list = base === undefined ? [...DEFAULT_BASES] : typeof base === 'string' ? [base] : [...base];
  if (list.length === 0) throw new HeadswapError('no backbone given; name one (e.g. mobilenet_v2) or several for an ensemble');
  const twice = list.find((b, i) => list.indexOf(b) !== i);
  if (twice) throw new HeadswapError(`backbone '${twice}' is named twice; an ensemble needs different networks`);
  return list;
}

export function planTraining(options: TrainOptions): TrainPlan {
  if (!options.testDir && options.testPct === 0) {
    throw new HeadswapError(msg`${option('testPct', 0)} leaves no photos to score the classifier on; give a separate ${option('testDir')} or a ${option('testPct')} above 0`);
  }
  const seed = options.seed ?? DEFAULT_SPLIT_OPTIONS.seed;
  const quality = options.quality ?? DEFAULT_QUALITY;
  const preset = QUALITY[quality === 'auto' ? 'plain' : quality];
  const augment = preset.augment;
  const bases = baseList(options.base);
  const { preprocessing, feature } = options.backbone ?? {};
  if (bases.length > 1 && (feature || (preprocessing && Object.keys(preprocessing).length > 0))) {
    throw new HeadswapError('a feature cut or preprocessing given for an ensemble would apply to every backbone; ensemble networks that need none (zoo ids, or models converted with their own settings)');
  }
  return {
    data: options.data,
    testDir: options.testDir,
    out: options.out === false ? undefined : (options.out ?? defaultOut(options.data)),
    recordedOut: options.out === false ? undefined : (options.recordAs ?? options.out ?? defaultOut(options.data)),
    force: options.force ?? false,
    seed,
    valPct: options.valPct ?? DEFAULT_SPLIT_OPTIONS.valPct,
    testPct: options.testPct ?? DEFAULT_SPLIT_OPTIONS.testPct,
    heldOutPct: options.testDir ? 0 : (options.testPct ?? DEFAULT_SPLIT_OPTIONS.testPct),
    topK: options.topK ?? DEFAULT_TOP_K,
    cv: options.cv,
    quality,
    preset,
    groupBy: options.groupBy ?? DEFAULT_GROUP_BY,
    groupsFile: options.groupsFile,
    views: augment ? augmentSpecs(augment.crops, seed, { flip: augment.flip, ...augment.crop }) : [],
    tta: preset.tta,
    portable: options.portable ?? false,
    bases,
    backbone: { cacheDir: options.cacheDir, regions: preset.regions, ...options.backbone },
    head: { seed, ...(options.head?.hidden ? {} : preset.head), ...options.head },
    cacheDir: options.cacheDir,
    useCache: !options.noCache,
    record: !options.noCache && options.record !== false,
    extract: { batchSize: options.batchSize, pixelLimit: options.pixelLimit, onProgress: options.onProgress },
  };
}
