import { Backbone, type BackboneOptions } from '../backbone/backbone.js';
import { DEFAULT_BACKBONE } from '../backbone/zoo.js';
import type { ClassifierPrediction } from '../export/classifier.js';
import { loadRgb, type LoadOptions } from '../image/preprocess.js';
import { streamPredictions, type ImageModel, type SkipCallback } from './files.js';

export interface ClassifyOptions extends LoadOptions {
  /** Backbone: zoo id, `.onnx` path or URL; it must have its own classifier (e.g. ImageNet). */
  readonly base?: string;
  readonly backbone?: BackboneOptions;
  readonly top?: number;
  readonly batchSize?: number;
  readonly onSkip?: SkipCallback;
}

/**
 * The pretrained network's own predictions (ImageNet's 1000 classes for the default backbone),
 * streamed batch by batch over files and folders.
 */
export async function* classifyFiles(paths: readonly string[], options: ClassifyOptions = {}): AsyncGenerator<ClassifierPrediction> {
  const backbone = await Backbone.load(options.base ?? DEFAULT_BACKBONE, options.backbone);
  try {
    const model: ImageModel = {
      labels: backbone.labels ?? [],
      load: (path) => loadRgb(path, backbone.preprocessing, options),
      run: (images) => backbone.classify(images),
    };
    yield* streamPredictions(model, paths, { ...options, top: options.top ?? 5 });
  } finally {
    await backbone.release();
  }
}
