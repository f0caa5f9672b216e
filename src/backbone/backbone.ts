import { HeadswapError, msg, option } from '../errors.js';
import { PIXELS_VERSION } from '../image/resize.js';
import type { Preprocessing, RgbImage } from '../image/types.js';
import { findPenultimate, type FeatureCut } from '../onnx/cut.js';
import { FEATURES, PIXELS, PROBABILITIES, addFeatureOutput, addPixelsPrefix, cloneModel, keepOutputs, realInputs, type RegionGrid } from '../onnx/edit.js';
import { attr, encodeModel, node, readModel, type ModelProto } from '../onnx/proto.js';
import { sha256 } from '../util/fs.js';
import { packagePath } from '../util/paths.js';
import { createSession, runImages, tensor, withSession, type Session } from '../runtime/session.js';
import { readLabels } from './labels.js';
import { resolveEntry, resolveSource, type ResolvedSource } from './source.js';
import type { ZooEntry } from './types.js';
import { IMAGENET_CROP_224 } from './zoo.js';

/** The network's own classifier output and whether softmax still has to be applied to it. */
type Classifier = Pick<NonNullable<ZooEntry['classifier']>, 'tensor' | 'activation'>;

/** TF.js image models mostly take pixels scaled to [0, 1] (the import issue's default); so do TFLite ones whose file says nothing. */
const TFJS_DEFAULTS: Partial<Preprocessing> = { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] };

/** Preprocessing defaults of a network outside the zoo: a converted one's (TF.js, TFLite: what its file states), else none (ImageNet's). */
function convertedDefaults(source: ResolvedSource): Partial<Preprocessing> | undefined {
  if (source.tflite) return { ...TFJS_DEFAULTS, ...source.tflite.preprocessing };
  return source.tfjs ? TFJS_DEFAULTS : undefined;
}

export interface BackboneOptions {
  /** Overrides of the preprocessing (required knowledge for a model that is not in the zoo). */
  readonly preprocessing?: Partial<Preprocessing>;
  /** Feature tensor to cut at; default: the zoo entry's, or the tensor before the final pooling. */
  readonly feature?: FeatureCut;
  /**
   * Adds the average of each cell of this grid to a convolution map's global average (the
   * quality presets' `regions`). Ignored when the cut is already a vector or its map has fewer
   * cells than the grid: `feature.regions` then stays undefined.
   */
  readonly regions?: RegionGrid;
  /** Intra-op threads; default all cores. */
  readonly threads?: number;
  /** Where downloaded models are cached. */
  readonly cacheDir?: string;
}

export { FEATURES, PROBABILITIES };

/** Bump when the way the feature graph is built changes, so cached features are recomputed. */
const FEATURE_GRAPH_VERSION = 1;

function loadError(what: string): (reason: string) => string {
  return (reason) => `${what}: onnxruntime cannot load the model (${reason})`;
}

function openSession(bytes: Uint8Array, what: string, threads?: number): Promise<Session> {
  return createSession(bytes, { threads, loadError: loadError(what) });
}

/** Height and width of a convolution map, found by running the network up to it on one blank image. */
async function measureMap(model: ModelProto, pre: Preprocessing, cut: FeatureCut, origin: string, threads?: number): Promise<[number, number]> {
  const m = cloneModel(model);
  addPixelsPrefix(m, pre);
  keepOutputs(m, [cut.tensor]);
  const [h, w] = pre.size;
  const out = await withSession(encodeModel(m), { threads, loadError: loadError(origin) }, async (session) =>
    (await session.run({ [PIXELS]: tensor('uint8', new Uint8Array(h * w * 3), [1, h, w, 3]) }))[cut.tensor]!,
  );
  const d = out.dims.map(Number);
  if (d.length !== 4) throw new HeadswapError(`${origin}: feature tensor '${cut.tensor}' has ${d.length} dimensions; region features need a 4-d convolution map`);
  return cut.pooling === 'avg-nhwc' ? [d[1]!, d[2]!] : [d[2]!, d[3]!];
}

function inputDims(model: ModelProto, name: string): number[] {
  const inputs = realInputs(model);
  if (inputs.length !== 1) {
    throw new HeadswapError(`${name}: model has ${inputs.length} inputs (${inputs.join(', ') || 'none'}); an image backbone has exactly one`);
  }
  const info = model.graph!.input!.find((i) => i.name === inputs[0])!;
  const tt = info.type?.tensorType;
  const dims = (tt?.shape?.dim ?? []).map((d) => (d.dimValue == null ? -1 : Number(d.dimValue)));
  const isImage = tt?.elemType === 1 && dims.length === 4 && (dims[1] === 3 || dims[3] === 3);
  if (!isImage) {
    throw new HeadswapError(
      `${name}: input '${info.name}' is not an image tensor (want float32 [N,3,H,W] or [N,H,W,3], got [${dims.join(',')}]); use an image classification model`,
    );
  }
  return dims;
}

/** Preprocessing for a model outside the zoo: its input size and layout, ImageNet statistics unless overridden. */
function customPreprocessing(dims: number[], overrides: Partial<Preprocessing> | undefined, name: string): Preprocessing {
  const layout = dims[1] === 3 ? 'NCHW' : 'NHWC';
  const [h, w] = layout === 'NCHW' ? [dims[2]!, dims[3]!] : [dims[1]!, dims[2]!];
  const size: [number, number] = h > 0 && w > 0 ? [h, w] : [...(overrides?.size ?? [0, 0])] as [number, number];
  if (!(size[0] > 0 && size[1] > 0)) {
    throw new HeadswapError(msg`${name}: the model's input size is dynamic; give its height and width, e.g. ${option('backbone.preprocessing.size', [224, 224])}`);
  }
  return { ...IMAGENET_CROP_224, layout, ...overrides, size };
}

/**
 * Where a network's features are cut by default: its zoo entry's cut; for a feature-vector
 * entry ('output'), its first output, already pooled to [N, D]; otherwise the input of its final
 * classifier (undefined when it has none).
 */
export function defaultCut(model: ModelProto, entry: ZooEntry | undefined, origin: string): FeatureCut | undefined {
  if (entry?.feature !== 'output') return entry?.feature ?? findPenultimate(model);
  const output = model.graph?.output?.[0];
  const rank = output?.type?.tensorType?.shape?.dim?.length;
  if (!output?.name || rank !== 2) throw new HeadswapError(msg`${origin}: expected one [N, D] feature output, found ${output?.name ?? 'none'} of rank ${rank ?? '?'}; name the feature tensor with ${option('backbone.feature')}`);
  return { tensor: output.name, pooling: 'none' };
}

/**
 * A frozen pretrained network on onnxruntime: images in (already resized, 8-bit RGB),
 * feature vectors or its own class probabilities out.
 */
export class Backbone {
  private featureSession: Session | undefined;
  private classifySession: Session | undefined;

  private constructor(
    /** Zoo id, or 'custom' for a file or URL outside the zoo. */
    readonly id: string,
    readonly source: ResolvedSource,
    readonly preprocessing: Preprocessing,
    private readonly cut: FeatureCut | undefined,
    readonly labels: readonly string[] | undefined,
    private readonly model: ModelProto,
    private readonly threads: number | undefined,
    private readonly classifier: Classifier | undefined,
    /** Some exports fix the batch dimension at 1 (EfficientNet-Lite4): those run one image at a time. */
    private readonly maxBatch: number,
    /** Height and width of the cut's map, when region features are on. */
    private readonly mapSize?: readonly [number, number],
  ) {}

  /** Loads a zoo id, `.onnx` path or URL, or a zoo entry given whole (e.g. one of your own mirror). */
  static async load(source: string | ZooEntry, options: BackboneOptions = {}): Promise<Backbone> {
    const resolved =
      typeof source === 'string'
        ? await resolveSource(source, { cacheDir: options.cacheDir })
        : await resolveEntry(source, { cacheDir: options.cacheDir });
    const model = await readModel(resolved.path);
    const entry = resolved.entry;
    const dims = inputDims(model, resolved.origin);
    const preprocessing = entry
      ? { ...entry.preprocessing, ...options.preprocessing }
      : customPreprocessing(dims, { ...convertedDefaults(resolved), ...options.preprocessing }, resolved.origin);
    // Undefined when the graph has no recognisable classifier: classify still works, features ask for --feature.
    let feature = options.feature ?? defaultCut(model, entry, resolved.origin);
    let mapSize: [number, number] | undefined;
    const grid = options.regions;
    if (feature && grid && (feature.pooling === 'avg-nchw' || feature.pooling === 'avg-nhwc') && grid.rows * grid.cols > 1) {
      const size = await measureMap(model, preprocessing, feature, resolved.origin, options.threads);
      if (size[0] >= grid.rows && size[1] >= grid.cols) {
        mapSize = size;
        feature = { ...feature, regions: { rows: grid.rows, cols: grid.cols } };
      }
    }
    let classifier: Classifier | undefined;
    let labels: readonly string[] | undefined;
    if (entry?.classifier) {
      classifier = entry.classifier;
      labels = await readLabels(packagePath(entry.classifier.labels));
    } else if (resolved.tfjs?.labels && resolved.tfjs.outputs[0]) {
      // A TF.js model with labels.txt beside it: its first output is its classifier.
      const tensor = resolved.tfjs.outputs[0];
      const producer = model.graph?.node?.find((n) => n.output?.includes(tensor));
      classifier = { tensor, activation: producer?.opType === 'Softmax' ? 'none' : 'softmax' };
      labels = resolved.tfjs.labels;
    } else if (resolved.tflite?.labels && resolved.tflite.outputs[0]) {
      // A TFLite classifier with labels (metadata or labels.txt): its first output, a softmax's or logits.
      const tensor = resolved.tflite.outputs[0];
      classifier = { tensor, activation: resolved.tflite.probabilities.includes(tensor) ? 'none' : 'softmax' };
      labels = resolved.tflite.labels;
    }
    return new Backbone(entry?.id ?? 'custom', resolved, preprocessing, feature, labels, model, options.threads, classifier, dims[0] === 1 ? 1 : Infinity, mapSize);
  }

  /** Where features are taken: the zoo's cut, `--feature`, or the tensor before the final pooling. */
  get feature(): FeatureCut {
    if (!this.cut) {
      throw new HeadswapError(msg`${this.source.origin}: no classifier layer found to cut before; name the feature tensor with ${option('backbone.feature')} (see 'headswap inspect')`);
    }
    return this.cut;
  }

  /** Identifies everything that decides a feature vector: cached features are keyed by it. */
  get fingerprint(): string {
    return sha256(JSON.stringify({ v: FEATURE_GRAPH_VERSION, pixels: PIXELS_VERSION, model: this.source.sha256, feature: this.feature, pre: this.preprocessing }));
  }

  /** True when the network only accepts one image per run (its batch dimension is fixed at 1). */
  get batchOfOne(): boolean {
    return this.maxBatch === 1;
  }

  /** A copy of the original ONNX graph. */
  graph(): ModelProto {
    return cloneModel(this.model);
  }

  /** A copy of the network behind the uint8 `pixels` input prefix, for tools that add outputs of their own. */
  pixelsModel(): ModelProto {
    const m = cloneModel(this.model);
    addPixelsPrefix(m, this.preprocessing);
    return m;
  }

  /** The feature graph: uint8 pixels in, `[N, D]` features out; the part of the network after the cut is pruned. */
  featureModel(): ModelProto {
    const m = this.pixelsModel();
    const { tensor, pooling, regions } = this.feature;
    addFeatureOutput(m, tensor, pooling, FEATURES, regions && this.mapSize && { ...regions, height: this.mapSize[0], width: this.mapSize[1] });
    keepOutputs(m, [FEATURES]);
    return m;
  }

  async features(images: readonly RgbImage[]): Promise<{ data: Float32Array; dims: number }> {
    this.featureSession ??= await openSession(encodeModel(this.featureModel()), this.source.origin, this.threads);
    const out = await this.run(this.featureSession, images, FEATURES);
    return { data: out.data, dims: out.dims[1]! };
  }

  /** The network's own ImageNet (or other) class probabilities, `[N, labels]`. */
  async classify(images: readonly RgbImage[]): Promise<Float32Array> {
    const classifier = this.classifier;
    if (!classifier || !this.labels) {
      throw new HeadswapError(`${this.source.origin}: this backbone has no classifier with known labels; use 'headswap train' to make one`);
    }
    if (!this.classifySession) {
      const m = this.pixelsModel();
      m.graph!.node!.push(
        classifier.activation === 'softmax'
          ? node('Softmax', [classifier.tensor], [PROBABILITIES], [attr.int('axis', 1)])
          : node('Identity', [classifier.tensor], [PROBABILITIES]),
      );
      keepOutputs(m, [PROBABILITIES]);
      this.classifySession = await openSession(encodeModel(m), this.source.origin, this.threads);
    }
    return (await this.run(this.classifySession, images, PROBABILITIES)).data;
  }

  private run(session: Session, images: readonly RgbImage[], output: string): Promise<{ data: Float32Array; dims: readonly number[] }> {
    return runImages(session, images, { input: PIXELS, output, size: this.preprocessing.size, maxBatch: this.maxBatch });
  }

  async release(): Promise<void> {
    await this.featureSession?.release();
    await this.classifySession?.release();
    this.featureSession = this.classifySession = undefined;
  }
}
