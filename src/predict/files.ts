import { existsSync, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Backbone } from '../backbone/backbone.js';
import { isImageFileName } from '../dataset/scan.js';
import { walk, type WalkOptions } from '../dataset/walk.js';
import { HeadswapError, describeError } from '../errors.js';
import { loadClassifier, topLabels, type Classifier, type ClassifierPrediction } from '../export/classifier.js';
import { METADATA_FILE } from '../export/metadata.js';
import { loadTeachableMachine } from './teachable.js';
import { loadRgb, type LoadOptions } from '../image/preprocess.js';
import type { Preprocessing, RgbImage } from '../image/types.js';
import { errnoText } from '../util/fs.js';

export interface PredictFilesOptions extends LoadOptions {
  readonly top?: number;
  readonly batchSize?: number;
  /** Called for each file that cannot be read or decoded; the stream goes on. */
  readonly onSkip?: SkipCallback;
}

/** Called for a file or folder passed over, with the reason (one line, without the path). */
export type SkipCallback = (path: string, reason: string) => void;

/**
 * Image files under the given files and folders, folders walked recursively in name order, lazily.
 * A path given explicitly is yielded whatever its extension (the decoder checks the content).
 * With `onSkip`, entries that cannot be used (unreadable paths, broken or looping symlinks,
 * pipes named like images) are reported there and passed over; without it, an unreadable
 * path given explicitly or an unreadable folder throws.
 */
export async function* listImages(paths: readonly string[], onSkip?: SkipCallback): AsyncGenerator<string> {
  for (const path of paths) {
    let info: Stats;
    try {
      info = await stat(path);
    } catch (err) {
      const reason = `cannot read (${errnoText(err)}); check the path`;
      if (!onSkip) throw new HeadswapError(`${path}: ${reason}`);
      onSkip(path, reason);
      continue;
    }
    if (info.isDirectory()) yield* imagesIn(path, onSkip);
    else yield path;
  }
}

/**
 * Known gap, kept for now: links to files are followed wherever they point (a folder of links is a
 * normal way to pick photos), where train keeps them inside the data set folder. Passing the
 * realpath of each folder given as `linksWithin` would close it.
 */
const PREDICT_LINKS: WalkOptions = { linksWithin: undefined };

/**
 * Files are taken by extension, so a pipe or a link to one is reported only when named like an
 * image; links not followed and unreadable folders are reported whatever their name, as they may
 * hold images.
 */
async function* imagesIn(dir: string, onSkip?: SkipCallback): AsyncGenerator<string> {
  for await (const entry of walk(dir, PREDICT_LINKS)) {
    if (entry.kind === 'file') {
      if (isImageFileName(entry.name)) yield entry.path;
    } else if ((entry.cause !== 'special' && entry.cause !== 'link-special') || isImageFileName(entry.name)) {
      if (!onSkip && entry.cause === 'folder') throw new HeadswapError(`${entry.path}: ${entry.reason}`);
      onSkip?.(entry.path, entry.reason);
    }
  }
}

/** A decoder's one-line error without the leading "<path>: ", since the caller prints the path. */
function reasonFor(path: string, err: unknown): string {
  const message = describeError(err);
  return message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
}

/** How a model turns files into class probabilities: used by `predict` and `classify`. */
export interface ImageModel {
  readonly labels: readonly string[];
  load(path: string): Promise<RgbImage>;
  run(images: readonly RgbImage[]): Promise<Float32Array>;
}

/**
 * Predictions for any number of files, streamed batch by batch: only one batch of images is
 * in memory at a time, and undecodable files are reported through `onSkip` and passed over.
 */
export async function* streamPredictions(
  model: ImageModel,
  paths: readonly string[],
  options: { readonly top?: number; readonly batchSize?: number; readonly onSkip?: SkipCallback } = {},
): AsyncGenerator<ClassifierPrediction> {
  const batchSize = Math.max(1, options.batchSize ?? 16);
  const c = model.labels.length;
  let batch: string[] = [];
  const flush = async function* (): AsyncGenerator<ClassifierPrediction> {
    const loaded = await Promise.all(
      batch.map(async (path) => {
        try {
          return { path, image: await model.load(path) };
        } catch (err) {
          options.onSkip?.(path, reasonFor(path, err));
          return undefined;
        }
      }),
    );
    batch = [];
    const ok = loaded.flatMap((l) => (l ? [l] : []));
    if (ok.length === 0) return;
    const probs = await model.run(ok.map((l) => l.image));
    for (const [i, l] of ok.entries()) {
      const p = probs.slice(i * c, (i + 1) * c);
      yield { input: l.path, top: topLabels(p, model.labels, options.top ?? c), probabilities: p };
    }
  };
  for await (const path of listImages(paths, options.onSkip)) {
    batch.push(path);
    if (batch.length >= batchSize) yield* flush();
  }
  if (batch.length > 0) yield* flush();
}

/** A model opened for `predict`: a headswap export, a Teachable Machine image export, or a TFLite classifier. */
export interface Predictor {
  readonly model: ImageModel;
  readonly kind: 'headswap' | 'teachable-machine' | 'tflite';
  /** What the caller should know before trusting the numbers (a model trained on other pixels). */
  readonly warnings: readonly string[];
  release(): Promise<void>;
}

export interface OpenPredictorOptions extends LoadOptions {
  readonly cacheDir?: string;
  /** For a .tflite classifier: overrides of the preprocessing its file implies. */
  readonly preprocessing?: Partial<Preprocessing>;
}

/**
 * Opens `dir` for prediction. A folder with `headswap.json` is a headswap model; one with
 * Teachable Machine's `metadata.json` + `model.json` is converted to ONNX once (cached) and run
 * the same way, with Teachable Machine's own crop and scaling. A `.tflite` file (or its URL) is
 * an image classifier (MediaPipe Model Maker, Teachable Machine) converted once, its labels
 * from its TFLite metadata or a labels.txt beside it.
 */
export async function openPredictor(dir: string, options: OpenPredictorOptions = {}): Promise<Predictor> {
  if (/\.tflite([?#].*)?$/i.test(dir)) return openTflite(dir, options);
  const isTeachable = !existsSync(join(dir, METADATA_FILE)) && existsSync(join(dir, 'metadata.json')) && existsSync(join(dir, 'model.json'));
  if (isTeachable) {
    const tm = await loadTeachableMachine(dir, options.cacheDir ? { cacheDir: options.cacheDir } : {});
    const model: ImageModel = {
      labels: tm.labels,
      load: (path) => tm.loadImage(path, options),
      run: async (images) => {
        const rows = await tm.predict(images);
        const out = new Float32Array(rows.length * tm.labels.length);
        rows.forEach((r, i) => out.set(r.probabilities, i * tm.labels.length));
        return out;
      },
    };
    return { model, kind: 'teachable-machine', warnings: [], release: () => tm.release() };
  }
  const classifier = await loadClassifier(dir);
  const pixels = classifier.pixelsWarning;
  return { model: classifierModel(classifier, options), kind: 'headswap', warnings: pixels ? [pixels] : [], release: () => classifier.release() };
}

async function openTflite(source: string, options: OpenPredictorOptions): Promise<Predictor> {
  const backbone = await Backbone.load(source, { ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}), ...(options.preprocessing ? { preprocessing: options.preprocessing } : {}) });
  if (!backbone.labels) {
    await backbone.release();
    throw new HeadswapError(`${source}: no class names (no label file in its TFLite metadata, no labels.txt beside it that fits its output); put the labels, one per line, in labels.txt next to it`);
  }
  const model: ImageModel = {
    labels: backbone.labels,
    load: (path) => loadRgb(path, backbone.preprocessing, options),
    run: (images) => backbone.classify(images),
  };
  return { model, kind: 'tflite', warnings: [], release: () => backbone.release() };
}

function classifierModel(classifier: Classifier, options: LoadOptions): ImageModel {
  return { labels: classifier.labels, load: (path) => classifier.loadImage(path, options), run: (images) => classifier.run(images) };
}

/** Predictions of an exported headswap model for files and folders (see `streamPredictions`). */
export function predictFiles(classifier: Classifier, paths: readonly string[], options: PredictFilesOptions = {}): AsyncGenerator<ClassifierPrediction> {
  return streamPredictions(classifierModel(classifier, options), paths, options);
}
