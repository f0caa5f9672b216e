import { join } from 'node:path';
import { loadRgb, type ImageInput, type LoadOptions } from '../image/preprocess.js';
import { PIXELS_VERSION } from '../image/resize.js';
import type { RgbImage } from '../image/types.js';
import { createSession, runImages, type Session } from '../runtime/session.js';
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
    private readonly session: Session,
  ) {}

  get labels(): readonly string[] {
    return this.metadata.classes;
  }

  static async load(dir: string, options: { threads?: number } = {}): Promise<Classifier> {
    const metadata = await readModelMetadata(dir);
    const path = join(dir, MODEL_FILE);
    const session = await createSession(path, {
      threads: options.threads,
      loadError: (reason) => `${path}: cannot load the model (${reason}); re-export it with 'headswap train'`,
    });
    return new Classifier(dir, metadata, session);
  }

  /**
   * Set when the model was trained on other bytes than today's decode and resize make
   * (`headswap.json` input.pixels): its probabilities can move by a few hundredths.
   */
  get pixelsWarning(): string | undefined {
    const made = this.metadata.input.pixels;
    if (made === PIXELS_VERSION) return undefined;
    return `${this.dir}: trained on pixels resized ${made === undefined ? 'by an older headswap' : `the version-${made} way`} (now version ${PIXELS_VERSION}, docs/PREPROCESSING.md), so its probabilities can differ from its recorded evaluation by a few hundredths; train it again for exact numbers`;
  }

  /** Decodes and resizes an image the way this model was trained. */
  loadImage(input: ImageInput, options: LoadOptions = {}): Promise<RgbImage> {
    return loadRgb(input, this.metadata.preprocessing, options);
  }

  /** Class probabilities for already-resized images, `[N, classes]`. */
  async run(images: readonly RgbImage[]): Promise<Float32Array> {
    const { input, output } = this.metadata;
    return (await runImages(this.session, images, { input: input.name, output: output.name, size: input.size })).data;
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
