import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HeadswapError, describeError } from '../errors.js';
import { topLabels, type Label } from '../export/classifier.js';
import { loadRgb, type ImageInput, type LoadOptions } from '../image/preprocess.js';
import type { Preprocessing, RgbImage } from '../image/types.js';
import { PIXELS, addPixelsPrefix } from '../onnx/edit.js';
import { encodeModel, readModel } from '../onnx/proto.js';
import { importTfjs, type ImportOptions } from '../import/import-tfjs.js';
import { isRecord } from '../import/tfjs/manifest.js';
import { createSession, runImages, type Session } from '../runtime/session.js';

export interface TeachablePrediction {
  /** Classes by falling probability. */
  readonly top: Label[];
  readonly probabilities: Float32Array;
}

/**
 * Teachable Machine's image pipeline: the centered square of the photo scaled to the model's
 * size (cropRatio 1), then `x / 127 - 1` (its `capture()`).
 */
export function teachablePreprocessing(size: readonly [number, number]): Preprocessing {
  return { size: [size[0], size[1]], resize: 'crop', cropRatio: 1, scale: 1 / 127, mean: [1, 1, 1], std: [1, 1, 1], layout: 'NHWC' };
}

/** A Teachable Machine image model (model.json + weights.bin + metadata.json) running on onnxruntime. */
export class TeachableMachine {
  private constructor(
    readonly dir: string,
    readonly labels: readonly string[],
    readonly preprocessing: Preprocessing,
    /** The imported ONNX file (NHWC float input in [-1, 1], probabilities out). */
    readonly onnxPath: string,
    private readonly session: Session,
    private readonly output: string,
  ) {}

  static async load(dir: string, options: ImportOptions & { threads?: number } = {}): Promise<TeachableMachine> {
    const metaPath = join(dir, 'metadata.json');
    let meta: unknown;
    try {
      meta = JSON.parse(await readFile(metaPath, 'utf8'));
    } catch (err) {
      throw new HeadswapError(`${metaPath}: cannot read Teachable Machine metadata (${describeError(err)}); give the folder of an exported image model (model.json, weights.bin, metadata.json)`);
    }
    const labels = isRecord(meta) ? meta.labels : undefined;
    if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string')) {
      throw new HeadswapError(`${metaPath}: no 'labels' list of class names; give the metadata.json Teachable Machine exported`);
    }
    const imported = await importTfjs(dir, options);
    const output = imported.outputs[0]!;
    const model = await readModel(imported.onnxPath);
    const pre = teachablePreprocessing(imported.inputSize);
    // Cast, scaling and the [-1, 1] shift inside the graph: callers feed the resized RGB bytes.
    addPixelsPrefix(model, pre);
    const classes = model.graph!.output!.find((o) => o.name === output)?.type?.tensorType?.shape?.dim?.at(-1)?.dimValue;
    if (classes != null && Number(classes) !== labels.length) {
      throw new HeadswapError(`${metaPath}: ${labels.length} labels, but the model outputs ${Number(classes)} classes; the files come from different exports`);
    }
    const session = await createSession(encodeModel(model), {
      threads: options.threads,
      loadError: (reason) => `${dir}: onnxruntime cannot load the imported model (${reason})`,
    });
    return new TeachableMachine(dir, labels as string[], pre, imported.onnxPath, session, output);
  }

  /** Decodes a photo and crops/resizes it the way Teachable Machine does. */
  loadImage(input: ImageInput, options: LoadOptions = {}): Promise<RgbImage> {
    return loadRgb(input, this.preprocessing, options);
  }

  /** Class probabilities for images already at the model's size (see `loadImage`). */
  async predict(images: readonly RgbImage[], options: { top?: number } = {}): Promise<TeachablePrediction[]> {
    const [h, w] = this.preprocessing.size;
    for (const im of images) {
      if (im.width !== w || im.height !== h) throw new HeadswapError(`image is ${im.width}x${im.height}, the model takes ${w}x${h}; resize it with loadImage()`);
    }
    if (images.length === 0) return [];
    const probs = (await runImages(this.session, images, { input: PIXELS, output: this.output, size: this.preprocessing.size })).data;
    const c = this.labels.length;
    return images.map((_, i) => {
      const p = probs.slice(i * c, (i + 1) * c);
      return { top: topLabels(p, this.labels, options.top ?? c), probabilities: p };
    });
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

export function loadTeachableMachine(dir: string, options: ImportOptions & { threads?: number } = {}): Promise<TeachableMachine> {
  return TeachableMachine.load(dir, options);
}
