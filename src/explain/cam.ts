import { stat, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { HeadswapError, describeFsError } from '../errors.js';
import { METADATA_FILE, MODEL_FILE, readModelMetadata, type ModelMetadata } from '../export/metadata.js';
import { loadRgb, type ImageInput, type LoadOptions } from '../image/preprocess.js';
import type { RgbImage } from '../image/types.js';
import { PIXELS, PROBABILITIES, graphOf } from '../onnx/edit.js';
import { decodeModel, encodeModel, intsAttribute, type ModelProto, type NodeProto } from '../onnx/proto.js';
import { createSession, tensor, type Session } from '../runtime/session.js';
import { resizeBilinear } from './render.js';
import { constantTensors, decodeTensor } from '../onnx/tensors.js';

/**
 * Class activation maps of a trained model folder, computed from model.onnx's own numbers: the
 * head's standardization and dense weights are read from its initializers, and the backbone's
 * last convolution map (the tensor whose average the head's features are) comes from running the
 * exported graph itself with that map, the head's layer outputs and the probabilities as outputs.
 */

/** A map over the backbone's last grid of cells, row-major, in logit units. */
export interface ActivationMap {
  readonly width: number;
  readonly height: number;
  readonly data: Float32Array;
}

/**
 * `cam`: a linear head; the map is exact: Σ_k w_ck·A_k(x,y)/std_k (plus its region features' share).
 * `grad-cam`: a head with hidden ReLU layers; the class logit's gradient with respect to each cell
 * of the map (through the ReLUs that fire on this photo) times the activation. Grad-CAM's channel
 * weights when the head sees only the global average; kept per cell when it also sees regions.
 * A ReLU head is linear once its firing units are fixed, so this map is exact for this photo too.
 */
export type CamMethod = 'cam' | 'grad-cam';

/** One pass of a member's backbone: the photo, or its mirror image when the model averages both. */
export interface ViewMap {
  readonly mirrored: boolean;
  /** For the mirror image: flipped back, so its cells line up with the photo's. */
  readonly map: ActivationMap;
  /** The map's spatial mean plus `bias` is `logit` (for `grad-cam`, a bias of this photo's firing units). */
  readonly bias: number;
  /** The model's own logit for the class, from the graph. */
  readonly logit: number;
  /** Softmax of this view's logits, for the class. */
  readonly probability: number;
}

/** One backbone of the model and its head. */
export interface MemberMap {
  /** The backbone's id (or file name). */
  readonly backbone: string;
  readonly method: CamMethod;
  /** The convolution map the head's features average. */
  readonly tensor: string;
  /** This member's probability for the class (mean over its views). */
  readonly probability: number;
  /** Mean of its views' maps. */
  readonly map: ActivationMap;
  readonly views: readonly ViewMap[];
}

/** Where one class's evidence is in the photo. */
export interface ClassActivation {
  readonly label: string;
  readonly index: number;
  /** The model's probability (model.onnx's output). */
  readonly probability: number;
  /** The members' maps averaged, each weighted by its probability for the class (an ensemble's members on one scale: logits). */
  readonly map: ActivationMap;
  readonly members: readonly MemberMap[];
}

export interface ModelExplanation {
  /** The model folder. */
  readonly model: string;
  readonly labels: readonly string[];
  /** model.onnx's class probabilities for the photo. */
  readonly probabilities: Float32Array;
  /** The model averages each photo with its mirror image (each member has two views). */
  readonly tta: boolean;
  /** `grad-cam` when any member's head has a hidden layer. */
  readonly method: CamMethod;
  /** The predicted class first, then the others asked for, in the order asked. */
  readonly classes: readonly ClassActivation[];
}

/** A head found in the exported graph. */
interface HeadGraph {
  readonly backbone: string;
  readonly mean: Float32Array;
  readonly std: Float32Array;
  /** Row-major `[inputs, units]` kernels; `output` is the Gemm's output tensor. */
  readonly layers: readonly { readonly kernel: Float32Array; readonly bias: Float32Array; readonly inputs: number; readonly units: number; readonly output: string }[];
  /** NCHW convolution map whose global average are the first features. */
  readonly map: string;
  /** Average-pooled windows over the same map, as extra features after the global ones. */
  readonly regions?: { readonly kernel: readonly [number, number]; readonly stride: readonly [number, number] };
}

/** Ops that pass a pooled tensor through unchanged in value (a reshape of `[N, C, 1, 1]`). */
const PASS_THROUGH = new Set(['Flatten', 'Reshape', 'Squeeze', 'Identity', 'Dropout']);

/** Reads every head of the exported graph, in member order, with the map its features pool. */
function findHeads(model: ModelProto, metadata: ModelMetadata, where: string): HeadGraph[] {
  const g = graphOf(model);
  const producer = new Map<string, NodeProto>();
  for (const n of g.node) for (const o of n.output ?? []) if (o) producer.set(o, n);
  const consts = constantTensors(model);
  const constant = (name: string): Float32Array => {
    const t = consts.get(name);
    if (!t) throw new HeadswapError(`${where}: the head's tensor '${name}' is not stored in the model; re-export it with 'headswap train'`);
    return decodeTensor(t).data;
  };
  // appendHead (export/graph.ts) starts each head with Sub(features, `${prefix}mean`) -> `${prefix}centered`.
  const prefixes = g.node
    .filter((n) => n.opType === 'Sub' && /head\/centered$/.test(n.output?.[0] ?? ''))
    .map((n) => ({ prefix: n.output![0]!.slice(0, -'centered'.length), features: n.input?.[0] ?? '' }))
    .sort((a, b) => memberIndex(a.prefix) - memberIndex(b.prefix));
  const members = metadata.ensemble?.members.map((m) => m.backbone) ?? [metadata.backbone];
  if (prefixes.length === 0 || prefixes.length !== members.length) {
    throw new HeadswapError(`${where}: found ${prefixes.length} trained head(s) in the graph for ${members.length} backbone(s) in ${METADATA_FILE}; re-export the model with 'headswap train'`);
  }
  return prefixes.map(({ prefix, features }, i) => {
    const backbone = members[i]!.id === 'custom' ? basename(members[i]!.origin) : members[i]!.id;
    const layers: HeadGraph['layers'][number][] = [];
    for (let l = 0; consts.has(`${prefix}w${l}`); l++) {
      const output = `${prefix}dense${l}`;
      const gemm = producer.get(output);
      const attrs = new Map((gemm?.attribute ?? []).map((a) => [a.name ?? '', a]));
      const transB = Number(attrs.get('transB')?.i ?? 0);
      const plain = gemm?.opType === 'Gemm' && Number(attrs.get('transA')?.i ?? 0) === 0 && (attrs.get('alpha')?.f ?? 1) === 1 && (attrs.get('beta')?.f ?? 1) === 1;
      if (!plain) throw new HeadswapError(`${where}: the head's layer '${output}' is not a plain Gemm; re-export the model with 'headswap train'`);
      const stored = constant(`${prefix}w${l}`);
      const bias = constant(`${prefix}b${l}`);
      const [units, inputs] = [bias.length, stored.length / bias.length];
      // Kept as [inputs, units]; a transB Gemm stores the kernel [units, inputs].
      const kernel = transB ? Float32Array.from({ length: stored.length }, (_, i) => stored[(i % units) * inputs + Math.floor(i / units)]!) : stored;
      layers.push({ kernel, bias, inputs, units, output });
    }
    if (layers.length === 0) throw new HeadswapError(`${where}: the head '${prefix}' has no dense layer`);
    return { backbone, mean: constant(`${prefix}mean`), std: constant(`${prefix}std`), layers, ...pooledMap(producer, features, `${where}: ${backbone}`) };
  });
}

/** `headswap/m3/head/` -> 3; a single head sorts first. */
function memberIndex(prefix: string): number {
  return Number(/^headswap\/m(\d+)\//.exec(prefix)?.[1] ?? -1);
}

/**
 * The map a features tensor averages: Flatten(GlobalAveragePool(map)), or with region features
 * Concat(Flatten(GlobalAveragePool(map)), Flatten(AveragePool(map))) as export's addFeatureOutput builds them.
 */
function pooledMap(producer: ReadonlyMap<string, NodeProto>, features: string, where: string): Pick<HeadGraph, 'map' | 'regions'> {
  const pool = (t: string): NodeProto | undefined => {
    let n = producer.get(t);
    while (n && PASS_THROUGH.has(n.opType ?? '')) n = producer.get(n.input?.[0] ?? '');
    return n;
  };
  const refuse = (n: NodeProto | undefined): never => {
    throw new HeadswapError(
      `${where}: its features are not the average of a convolution map (they come from ${n?.opType ?? 'the graph input'}), so there is no map to explain; class maps need a CNN backbone such as mobilenet_v2`,
    );
  };
  const top = producer.get(features);
  if (top?.opType === 'Concat' && top.input?.length === 2) {
    const [global, cells] = [pool(top.input[0]!), pool(top.input[1]!)];
    if (global?.opType !== 'GlobalAveragePool') return refuse(global);
    const map = global.input?.[0] ?? '';
    const pads = intsAttribute(cells ?? {}, 'pads') ?? [];
    const plain = cells?.opType === 'AveragePool' && cells.input?.[0] === map && pads.every((p) => p === 0) && !cells.attribute?.some((a) => a.name === 'auto_pad' || (a.name === 'ceil_mode' && Number(a.i) !== 0));
    if (!plain) return refuse(cells);
    const [kernel, stride] = [intsAttribute(cells, 'kernel_shape') ?? [], intsAttribute(cells, 'strides') ?? [1, 1]];
    return { map, regions: { kernel: [kernel[0]!, kernel[1]!], stride: [stride[0]!, stride[1]!] } };
  }
  const global = pool(features);
  if (global?.opType !== 'GlobalAveragePool') return refuse(global);
  return { map: global.input?.[0] ?? '' };
}

/** Checks the folder and reads its description, with one line for each way it can be wrong. */
async function readFolder(dir: string): Promise<ModelMetadata> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new HeadswapError(`${dir}: not a folder; give the model folder 'headswap train' wrote (with ${MODEL_FILE} and ${METADATA_FILE})`);
  } catch (err) {
    if (err instanceof HeadswapError) throw err;
    throw new HeadswapError(`${dir}: cannot open the model folder (${describeFsError(err)})`);
  }
  try {
    await stat(join(dir, METADATA_FILE));
  } catch {
    throw new HeadswapError(`${dir}: has no ${METADATA_FILE}, so it is not a headswap model folder; give the folder 'headswap train' wrote`);
  }
  return readModelMetadata(dir);
}

/** Softmax of one row of logits. */
function softmax(z: Float32Array): Float64Array {
  const top = Math.max(...z);
  const e = Float64Array.from(z, (v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/**
 * The class logit as a linear function of the features on this view: coefficients `u` and
 * constant `bias`, by the backward pass through the head (ReLUs fixed at the units this view fires).
 */
function linearize(head: HeadGraph, c: number, hidden: readonly Float32Array[]): { u: Float64Array; bias: number } {
  let g = new Float64Array(head.layers.at(-1)!.units);
  g[c] = 1;
  let bias = 0;
  for (let l = head.layers.length - 1; l >= 0; l--) {
    const { kernel, bias: b, inputs, units } = head.layers[l]!;
    for (let o = 0; o < units; o++) bias += b[o]! * g[o]!;
    const down = new Float64Array(inputs);
    for (let j = 0; j < inputs; j++) {
      let s = 0;
      for (let o = 0; o < units; o++) s += kernel[j * units + o]! * g[o]!;
      // The ReLU between layer l-1 and l passes the gradient only where its input was positive.
      down[j] = l > 0 && hidden[l - 1]![j]! <= 0 ? 0 : s;
    }
    g = down;
  }
  // Standardization: s_j = (f_j - mean_j) / std_j.
  const u = g.map((v, j) => v / head.std[j]!);
  for (let j = 0; j < u.length; j++) bias -= u[j]! * head.mean[j]!;
  return { u, bias };
}

/**
 * The class map of one view: M(x,y) = Σ_k β_k(x,y)·A_k(x,y), with β_k = u_k for the global
 * average's feature, plus (H·W / window cells)·u_j for each region feature j of channel k whose
 * window holds (x,y). So the mean of M over the cells is Σ_j u_j·f_j: the logit minus its bias.
 */
function viewMap(head: HeadGraph, a: Float32Array, channels: number, h: number, w: number, u: Float64Array): Float32Array {
  const cells = h * w;
  const out = new Float64Array(cells);
  const beta = new Float64Array(cells);
  const r = head.regions;
  const rows = r ? Math.floor((h - r.kernel[0]) / r.stride[0]) + 1 : 0;
  const cols = r ? Math.floor((w - r.kernel[1]) / r.stride[1]) + 1 : 0;
  const expected = channels * (1 + rows * cols);
  if (u.length !== expected) throw new HeadswapError(`the head takes ${u.length} features, but its map '${head.map}' (${channels} channels${r ? `, ${rows}x${cols} regions` : ''}) gives ${expected}`);
  const share = r ? cells / (r.kernel[0] * r.kernel[1]) : 0;
  for (let k = 0; k < channels; k++) {
    beta.fill(u[k]!);
    for (let i = 0; i < rows * cols; i++) {
      const uj = u[channels + k * rows * cols + i]! * share;
      const [y0, x0] = [Math.floor(i / cols) * r!.stride[0], (i % cols) * r!.stride[1]];
      for (let y = y0; y < y0 + r!.kernel[0]; y++) for (let x = x0; x < x0 + r!.kernel[1]; x++) beta[y * w + x]! += uj;
    }
    const plane = k * cells;
    for (let i = 0; i < cells; i++) out[i]! += beta[i]! * a[plane + i]!;
  }
  return Float32Array.from(out);
}

function mirror(map: Float32Array, h: number, w: number): Float32Array {
  const out = new Float32Array(map.length);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = map[y * w + (w - 1 - x)]!;
  return out;
}

/** Weighted mean of equal-length maps (equal weights when they all vanish). */
function weightedMean(maps: readonly Float32Array[], weights: readonly number[]): Float32Array {
  const total = weights.reduce((a, b) => a + b, 0);
  const ws = total > 0 ? weights.map((x) => x / total) : weights.map(() => 1 / weights.length);
  const out = new Float32Array(maps[0]!.length);
  maps.forEach((m, i) => m.forEach((v, j) => (out[j]! += ws[i]! * v)));
  return out;
}

export interface ModelExplainerOptions {
  /** Intra-op threads; default all cores. */
  readonly threads?: number;
}

/**
 * A model folder opened for class activation maps: its graph with the maps and the head's layers
 * added as outputs, in one onnxruntime session. Load once, explain many photos, then `release()`.
 */
export class ModelExplainer {
  private constructor(
    readonly dir: string,
    readonly metadata: ModelMetadata,
    readonly tta: boolean,
    private readonly heads: readonly HeadGraph[],
    private readonly session: Session,
  ) {}

  get labels(): readonly string[] {
    return this.metadata.classes;
  }

  get method(): CamMethod {
    return this.heads.some((h) => h.layers.length > 1) ? 'grad-cam' : 'cam';
  }

  /** The backbones, in member order. */
  get backbones(): readonly string[] {
    return this.heads.map((h) => h.backbone);
  }

  static async load(dir: string, options: ModelExplainerOptions = {}): Promise<ModelExplainer> {
    const abs = resolve(dir);
    const metadata = await readFolder(abs);
    const path = join(abs, MODEL_FILE);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (err) {
      throw new HeadswapError(`${path}: cannot read the model (${describeFsError(err)}); the folder needs the ${MODEL_FILE} 'headswap train' wrote`);
    }
    const model = decodeModel(bytes, path);
    const heads = findHeads(model, metadata, path);
    // Mirror averaging (export/graph.ts addFlipTta) runs the backbones on [photo, mirror] as one batch of 2.
    const tta = graphOf(model).node.some((n) => n.output?.includes('headswap/tta/pixels2'));
    // Untyped outputs: onnxruntime takes each tensor's own type and shape.
    model.graph!.output = [PROBABILITIES, ...heads.flatMap((h) => [h.map, ...h.layers.map((l) => l.output)])].map((name) => ({ name }));
    const session = await createSession(encodeModel(model), {
      threads: options.threads,
      loadError: (reason) => `${path}: cannot load the model with its feature map as an output (${reason}); re-export it with 'headswap train'`,
    });
    return new ModelExplainer(abs, metadata, tta, heads, session);
  }

  /** Decodes and resizes an image the way this model was trained. */
  loadImage(input: ImageInput, options: LoadOptions = {}): Promise<RgbImage> {
    return loadRgb(input, this.metadata.preprocessing, options);
  }

  /** The class index of each name, or a line naming the classes there are. */
  classIndex(name: string): number {
    const i = this.labels.indexOf(name);
    if (i < 0) throw new HeadswapError(`class '${name}' is not one of the model's classes: ${this.labels.join(', ')}`);
    return i;
  }

  /**
   * Maps for the predicted class and for `classes` (names; duplicates and the predicted one
   * again are dropped), on an image already resized (`loadImage`).
   */
  async explain(photo: RgbImage, classes: readonly string[] = []): Promise<ModelExplanation> {
    const asked = classes.map((c) => this.classIndex(c));
    const { input } = this.metadata;
    const [h, w] = input.size;
    if (photo.width !== w || photo.height !== h || photo.data.length !== w * h * 3) throw new HeadswapError(`the image is ${photo.width}x${photo.height} with ${photo.data.length} bytes; this model takes ${w}x${h} RGB, 3 bytes a pixel (use loadImage)`);
    const out = await this.session.run({ [PIXELS]: tensor('uint8', photo.data, [1, h, w, 3]) });
    const probabilities = Float32Array.from(out[PROBABILITIES]!.data as Float32Array);
    const k = this.labels.length;
    const top = probabilities.reduce((best, p, i) => (p > probabilities[best]! ? i : best), 0);
    const wanted = [...new Set([top, ...asked])];
    const runs = this.heads.map((head) => {
      const t = out[head.map]!;
      const [views, channels, mh, mw] = t.dims.map(Number) as [number, number, number, number];
      if (views !== (this.tta ? 2 : 1)) throw new HeadswapError(`${this.dir}: the map '${head.map}' has ${views} images for one photo; expected ${this.tta ? 2 : 1}`);
      const logits = out[head.layers.at(-1)!.output]!.data as Float32Array;
      const rows = Array.from({ length: views }, (_, v) => logits.slice(v * k, (v + 1) * k));
      return { head, a: t.data as Float32Array, views, channels, mh, mw, rows, soft: rows.map(softmax) };
    });
    const explained = wanted.map((c): ClassActivation => {
      const members = runs.map((r): MemberMap => {
        const cells = r.mh * r.mw;
        const views = Array.from({ length: r.views }, (_, v): ViewMap => {
          const hidden = r.head.layers.slice(0, -1).map((l) => {
            const d = out[l.output]!.data as Float32Array;
            return d.subarray(v * l.units, (v + 1) * l.units);
          });
          const { u, bias } = linearize(r.head, c, hidden);
          const plane = viewMap(r.head, r.a.subarray(v * r.channels * cells, (v + 1) * r.channels * cells), r.channels, r.mh, r.mw, u);
          // View 1 of a flip-averaging graph saw the mirror image: flip its map back onto the photo.
          const mirrored = v === 1;
          const data = mirrored ? mirror(plane, r.mh, r.mw) : plane;
          return { mirrored, map: { width: r.mw, height: r.mh, data }, bias, logit: r.rows[v]![c]!, probability: r.soft[v]![c]! };
        });
        return {
          backbone: r.head.backbone,
          method: r.head.layers.length > 1 ? 'grad-cam' : 'cam',
          tensor: r.head.map,
          probability: views.reduce((s, v) => s + v.probability, 0) / views.length,
          map: { width: r.mw, height: r.mh, data: weightedMean(views.map((v) => v.map.data), views.map(() => 1)) },
          views,
        };
      });
      // Backbones with grids of different sizes are averaged on the first one's grid.
      const { width, height } = members[0]!.map;
      const grids = members.map((m) => (m.map.width === width && m.map.height === height ? m.map.data : resizeBilinear(m.map.data, m.map.height, m.map.width, height, width)));
      const map = { width, height, data: weightedMean(grids, members.map((m) => m.probability)) };
      return { label: this.labels[c]!, index: c, probability: probabilities[c]!, map, members };
    });
    return { model: this.dir, labels: this.labels, probabilities, tta: this.tta, method: this.method, classes: explained };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
