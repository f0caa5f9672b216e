/**
 * headswap's library API, in two levels (as fastai's `vision_learner` over `create_body` /
 * `create_head`):
 * - the facade: `train()` is the whole job in one call; `loadClassifier`, `predictFiles` and
 *   `classifyFiles` use what it made, or a backbone's own classes;
 * - the pieces `train()` is built from (backbone, features and their cache, head, evaluation,
 *   export), for building a pipeline of your own.
 * The heavier tools are subpath exports, so importing this entry loads none of them:
 * `headswap/server` (HTTP API and page), `headswap/compare` (transfer vs from scratch, TensorFlow.js),
 * `headswap/report` (HTML report, Vega), `headswap/explain` (layer pictures), `headswap/import`
 * (TensorFlow.js converters).
 */
export { train, type TrainOptions, type TrainResult, type SplitCounts } from './pipeline/train.js';
export { planTraining, DEFAULT_BASES, DEFAULT_TOP_K, type TrainPlan } from './pipeline/plan.js';
export { QUALITY, DEFAULT_QUALITY, QUALITY_NAMES, QUALITY_CHOICES, type QualityName, type QualityChoice, type QualityPreset } from './pipeline/quality.js';
export { loadClassifier, Classifier, topLabels, type ClassifierPrediction, type Label } from './export/classifier.js';
export { predictFiles, listImages, type PredictFilesOptions } from './predict/files.js';
export { classifyFiles, type ClassifyOptions } from './predict/classify.js';
export { loadTeachableMachine, teachablePreprocessing, TeachableMachine, type TeachablePrediction } from './predict/teachable.js';

export { Backbone, type BackboneOptions } from './backbone/backbone.js';
export { ZOO, DEFAULT_BACKBONE, findEntry, getEntry } from './backbone/zoo.js';
export { resolveSource, type ResolvedSource } from './backbone/source.js';
export type { ZooEntry } from './backbone/types.js';
export type { FeatureCut } from './onnx/cut.js';
export { inspectModel, type TensorInfo } from './onnx/inspect.js';

export { loadRgb, DEFAULT_PIXEL_LIMIT, type ImageInput, type LoadOptions } from './image/preprocess.js';
export type { Preprocessing, ResizePolicy, RgbImage } from './image/types.js';
export { augmentSpecs, flipSpec, cropSpec, type AugmentSpec, type CropOptions } from './image/augment.js';
export { scanDataset, type ScannedDataset, type ImageFile } from './dataset/scan.js';
export { splitDataset, DEFAULT_SPLIT_OPTIONS, type SplitOptions } from './dataset/split.js';
export { seriesLinks, nameLinks, captureTimes, readGroupsFile, NOHASH_MARKER, SERIES_TIME_GAP_S, type SeriesFile, type SeriesLink, type LinkReason, type SeriesOptions } from './dataset/series.js';
export { groupPhotos, GROUP_BY, DEFAULT_GROUP_BY, SIMILARITY_THRESHOLD, type GroupBy, type GroupReason, type PhotoGroups } from './dataset/groups.js';

export { extractFeatures, extractViews, extractAugmented, augmentView, PLAIN_VIEW, type ExtractOptions, type ExtractResult, type ExtractedFeature, type View, type ViewFeature, type ViewsResult } from './features/extract.js';
export { FeatureCache, openFeatureCache, type FeatureKey } from './features/cache.js';
export { trainHead, predictHead, predictRows, fitHead, type FeatureRow, type FitOptions, type HeadOptions, type TrainedHead, type Dataset, type EpochLog } from './head/train.js';
export type { HeadWeights } from './head/weights.js';
export { evaluate, wilson, type Evaluation, type Prediction, type ClassMetrics } from './evaluate/metrics.js';
export { crossValidate, assignFolds, foldPredictions, scoreFolds, FOLD_KINDS, type CrossValidation, type CvItem, type CvOptions, type FoldKind, type FoldPredictions } from './evaluate/cv.js';
export { chooseRecipe, AUTO_FOLDS, type RecipeChoice, type RecipeScore } from './pipeline/auto.js';
export { formatEvaluation } from './evaluate/format.js';
export { exportClassifierGraph, type ExportOptions } from './export/graph.js';
export { writeModelFolder, type ModelFolder } from './export/write.js';
export type { ModelMetadata } from './export/metadata.js';

export { RunStore, openRunStore } from './runs/store.js';
export { diffRuns, type RunDiff } from './runs/diff.js';
export type { RunRecord } from './runs/types.js';
export { cacheDir, download } from './runtime/download.js';
export type { Progress, ProgressCallback } from './util/progress.js';
export { HeadswapError } from './errors.js';
