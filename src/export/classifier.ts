import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { sessionOptions } from '../backbone/backbone.js';
import { HeadswapError, describeError } from '../errors.js';
import { loadRgb, packBatch, type ImageInput, type LoadOptions } from '../image/preprocess.js';
import type { RgbImage } from '../image/types.js';
import { MODEL_FILE, readModelMetadata, type ModelMetadata } from './metadata.js';

export interface Label {
  readonly label: string;
  readonly index: number;
  readonly probability: number;
}

export interface ClassifierPrediction {
  /** The file path or the name given with the bytes. */
  readonly input: string;
  /** Classes by falling probability, `top` of them. */
  readonly top: Label[];
  readonly probabilities: Float32Array;
}

/** The k most probable classes, ties broken by the lower index (deterministic). */
export function topLabels(probs: Float32Array, labels: readonly string[], k: number): Label[] {
  return [...probs]
    .map((probability, index) => ({ label: labels[index] ?? String(index), index, probability }))
    .sort((a, b) => b.probability - a.probability || a.index - b.index)
    .slice(0, Math.max(1, Math.min(k, labels.length)));
}

/** An exported headswap model folder, loaded for inference with onnxruntime. */
export class Classifier {
  private constructor(
    readonly dir: string,
    readonly metadata: ModelMetadata,
    private readonly session: ort.InferenceSession,
  ) {}

  get labels(): readonly string[] {
    return this.metadata.classes;
  }

  static async load(dir: string, options: { threads?: number } = {}): Promise<Classifier> {
    const metadata = await readModelMetadata(dir);
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(join(dir, MODEL_FILE), sessionOptions(options.threads));
    } catch (err) {
      throw new HeadswapError(`${join(dir, MODEL_FILE)}: cannot load the model (${describeError(err)}); re-export it with 'headswap train'`);
    }
    return new Classifier(dir, metadata, session);
  }

  /** Decodes and resizes an image the way this model was trained. */
  loadImage(input: ImageInput, options: LoadOptions = {}): Promise<RgbImage> {
    return loadRgb(input, this.metadata.preprocessing, options);
  }

  /** Class probabilities for already-resized images, `[N, classes]`. */
  async run(images: readonly RgbImage[]): Promise<Float32Array> {
    const [h, w] = this.metadata.input.size;
    const input = new ort.Tensor('uint8', packBatch(images), [images.length, h, w, 3]);
    const out = await this.session.run({ [this.metadata.input.name]: input });
    return out[this.metadata.output.name]!.data as Float32Array;
  }

  /** Predictions for a few images (paths or bytes); for many files use `predictFiles` which streams. */
  async predict(inputs: ImageInput | readonly ImageInput[], options: { top?: number } & LoadOptions = {}): Promise<ClassifierPrediction[]> {
    const list = Array.isArray(inputs) ? (inputs as readonly ImageInput[]) : [inputs as ImageInput];
    const images = await Promise.all(list.map((i) => this.loadImage(i, options)));
    const probs = await this.run(images);
    const c = this.labels.length;
    return list.map((input, i) => {
      const p = probs.slice(i * c, (i + 1) * c);
      return { input: typeof input === 'string' ? input : input.name, top: topLabels(p, this.labels, options.top ?? c), probabilities: p };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export function loadClassifier(dir: string, options: { threads?: number } = {}): Promise<Classifier> {
  return Classifier.load(dir, options);
}
