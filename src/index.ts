/**
 * headswap's library API. `train()` is the whole job in one call; the pieces it is built from
 * (backbone, features, head, evaluation, export) are exported for use on their own.
 */
export { train, type TrainOptions, type TrainResult, type SplitCounts } from './pipeline/train.js';
export { loadClassifier, Classifier, topLabels, type ClassifierPrediction, type Label } from './export/classifier.js';
export { predictFiles, listImages, type PredictFilesOptions } from './predict/files.js';
export { classifyFiles, type ClassifyOptions } from './predict/classify.js';

export { Backbone, type BackboneOptions } from './backbone/backbone.js';
export { ZOO, DEFAULT_BACKBONE, findEntry, getEntry } from './backbone/zoo.js';
export { resolveSource, type ResolvedSource } from './backbone/source.js';
export { cacheDir, download } from './runtime/download.js';
export type { ZooEntry } from './backbone/types.js';
export type { FeatureCut } from './onnx/cut.js';

export { loadRgb, DEFAULT_PIXEL_LIMIT, type ImageInput, type LoadOptions } from './image/preprocess.js';
export type { Preprocessing, ResizePolicy, RgbImage } from './image/types.js';

export { scanDataset, type ScannedDataset, type ImageFile } from './dataset/scan.js';
export { splitDataset, type SplitOptions } from './dataset/split.js';
export { extractFeatures, extractViews, extractAugmented, augmentView, PLAIN_VIEW, type ExtractOptions, type ExtractResult, type ExtractedFeature, type View, type ViewFeature, type ViewsResult } from './features/extract.js';
export { FeatureCache, openFeatureCache, type FeatureKey } from './features/cache.js';
export { RunStore, openRunStore } from './runs/store.js';
export { trainHead, predictHead, predictRows, fitHead, type FeatureRow, type FitOptions, type HeadOptions, type TrainedHead, type Dataset, type EpochLog } from './head/train.js';
export { evaluate, wilson, type Evaluation, type Prediction, type ClassMetrics } from './evaluate/metrics.js';
export { formatEvaluation } from './evaluate/format.js';
export { inspectModel, type TensorInfo } from './onnx/inspect.js';
export type { HeadWeights } from './head/weights.js';
export type { ModelMetadata } from './export/metadata.js';
export type { Progress, ProgressCallback } from './util/progress.js';
export { HeadswapError } from './errors.js';
export { importTfjs, loadTeachableMachine, TeachableMachine, teachablePreprocessing, SUPPORTED_LAYERS, SUPPORTED_OPS, type ImportResult } from './import/index.js';
export { crossValidate, type CrossValidation } from './evaluate/cv.js';
export { renderReport } from './report/html.js';
export { writeReport } from './report/write.js';
export { reportFromTrain, reportFromModel } from './report/input.js';
export type { ReportInput } from './report/types.js';
export { explainImage, explain } from './explain/explain.js';
export { diffRuns, type RunDiff } from './runs/diff.js';
export type { RunRecord } from './runs/types.js';
export { compare, type CompareOptions } from './compare/compare.js';
export type { CompareResult, ApproachResult, ScratchResult } from './compare/types.js';
export { augmentSpecs, flipSpec, cropSpec, type AugmentSpec, type CropOptions } from './image/augment.js';
export { exportClassifierGraph, type ExportOptions } from './export/graph.js';
export { QUALITY, DEFAULT_QUALITY, QUALITY_NAMES, type QualityName, type QualityPreset } from './pipeline/quality.js';
export { createServer, DEFAULT_LIMITS, type ServerOptions, type ServerLimits } from './server/app.js';
