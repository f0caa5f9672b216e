import { HeadswapError } from '../errors.js';
import type { HeadWeights } from '../head/weights.js';
import { FEATURES, PIXELS, PROBABILITIES, graphOf, keepOutputs } from '../onnx/edit.js';
import { mergeModels } from '../onnx/merge.js';
import { makePortable, pruneOpsets } from '../onnx/portable.js';
import { transposeData } from '../onnx/builder.js';
import { DataType, attr, defaultOpset, encodeModel, floatTensor, int64Tensor, node, valueInfo, type ModelProto, type NodeProto, type TensorProto } from '../onnx/proto.js';

/**
 * The deployable graph: a feature graph (uint8 `pixels` in, `features` out, as
 * Backbone.featureModel builds it) with the trained head appended, optionally averaged over the
 * photo and its mirror image. One self-contained ONNX file with the same input and output for
 * every quality level.
 */

export interface ExportOptions {
  /**
   * Average each photo's class probabilities with its mirror image's (test-time flip). The
   * backbone runs on photo and mirror as one batch of 2N, so it needs a dynamic batch dimension
   * (a caller with a fixed-batch network turns this off; train() does and says so).
   */
  readonly tta?: boolean;
  /**
   * Standard ONNX operators only, for runtimes other than onnxruntime (onnx/portable.ts): integer
   * weights stored as floats, onnxruntime's own quantized operators as QuantizeLinear /
   * DequantizeLinear around float ones. Larger, and slower on onnxruntime.
   */
  readonly portable?: boolean;
}

/** The model's bytes, with only the opset domains its nodes use (and portable, when asked). */
function finish(model: ModelProto, options: ExportOptions): Uint8Array {
  keepOutputs(model, [PROBABILITIES]);
  if (options.portable) makePortable(model);
  else pruneOpsets(model);
  model.producerName = 'headswap';
  return encodeModel(model);
}

/**
 * Appends standardization, the head's dense layers (ReLU between) and a softmax after `features`;
 * its tensors are named `${prefix}...` (one prefix per head of an ensemble).
 */
export function appendHead(model: ModelProto, features: string, head: HeadWeights, output: string, prefix = 'headswap/head/'): void {
  const g = graphOf(model);
  if (defaultOpset(model) < 7) throw new HeadswapError('backbone ONNX opset is older than 7; re-export it with a newer opset');
  const p = prefix;
  const dims = head.mean.length;
  // [dims], not [1, dims]: the same broadcast, and OpenCV broadcasts a leading 1 wrongly at batch > 1.
  const inits = [floatTensor(`${p}mean`, [dims], head.mean), floatTensor(`${p}std`, [dims], head.std)];
  const nodes: NodeProto[] = [
    node('Sub', [features, `${p}mean`], [`${p}centered`]),
    node('Div', [`${p}centered`, `${p}std`], [`${p}standardized`]),
  ];
  let x = `${p}standardized`;
  head.layers.forEach((layer, i) => {
    // Stored [units, inputs] with transB, the layout of a fully connected layer that runtimes
    // other than onnxruntime map Gemm to (OpenCV's reads B that way only).
    inits.push(floatTensor(`${p}w${i}`, [layer.units, layer.inputs], transposeData(layer.kernel, [layer.inputs, layer.units], [1, 0])));
    inits.push(floatTensor(`${p}b${i}`, [layer.units], layer.bias));
    nodes.push(node('Gemm', [x, `${p}w${i}`, `${p}b${i}`], [`${p}dense${i}`], [attr.int('transB', 1)]));
    x = `${p}dense${i}`;
    if (i < head.layers.length - 1) {
      nodes.push(node('Relu', [x], [`${p}relu${i}`]));
      x = `${p}relu${i}`;
    }
  });
  nodes.push(node('Softmax', [x], [output], [attr.int('axis', 1)]));
  g.initializer = [...(g.initializer ?? []), ...inits];
  g.node.push(...nodes);
  g.output = [...(g.output ?? []), valueInfo(output, DataType.FLOAT, ['batch', head.layers.at(-1)?.units ?? 0])];
}

/** ReduceMean takes `axes` as an attribute up to opset 17 and as an input from 18. */
function reduceMean(model: ModelProto, input: string, axes: number[], output: string): { nodes: NodeProto[]; inits: ReturnType<typeof int64Tensor>[] } {
  const keep = attr.int('keepdims', 1);
  if (defaultOpset(model) >= 18) {
    const name = `${output}/axes`;
    return { nodes: [node('ReduceMean', [input, name], [output], [keep])], inits: [int64Tensor(name, [axes.length], axes)] };
  }
  return { nodes: [node('ReduceMean', [input], [output], [attr.ints('axes', axes), keep])], inits: [] };
}

/** Width of the graph's uint8 `[N, H, W, 3]` pixels input. */
function pixelsWidth(model: ModelProto): number {
  const dim = graphOf(model).input?.find((i) => i.name === PIXELS)?.type?.tensorType?.shape?.dim?.[2];
  const width = dim?.dimValue == null ? NaN : Number(dim.dimValue);
  if (!(width > 0)) throw new HeadswapError(`the feature graph has no '${PIXELS}' input of fixed width; build it with Backbone.featureModel()`);
  return width;
}

/**
 * The nodes that give `flipped`, the uint8 `[N, H, W, 3]` pixels reversed along W. onnxruntime:
 * a Gather of the columns in reverse order. Portable: a MatMul by the reversing permutation on
 * the width axis (exact on integers), since OpenCV's importer refuses both a Slice with step -1
 * and a Gather of more than one index.
 */
function mirrorNodes(width: number, portable: boolean, p: string, flipped: string): { nodes: NodeProto[]; inits: TensorProto[] } {
  if (!portable) {
    return {
      nodes: [node('Gather', [PIXELS, `${p}columns`], [flipped], [attr.int('axis', 2)])],
      inits: [int64Tensor(`${p}columns`, [width], Array.from({ length: width }, (_, i) => width - 1 - i))],
    };
  }
  const reverse = new Float32Array(width * width);
  for (let i = 0; i < width; i++) reverse[i * width + (width - 1 - i)] = 1;
  return {
    nodes: [
      node('Cast', [PIXELS], [`${p}float`], [attr.int('to', DataType.FLOAT)]),
      node('Transpose', [`${p}float`], [`${p}nhcw`], [attr.ints('perm', [0, 1, 3, 2])]),
      node('MatMul', [`${p}nhcw`, `${p}reverse`], [`${p}nhcw_flipped`]),
      node('Transpose', [`${p}nhcw_flipped`], [`${p}float_flipped`], [attr.ints('perm', [0, 1, 3, 2])]),
      node('Cast', [`${p}float_flipped`], [flipped], [attr.int('to', DataType.UINT8)]),
    ],
    inits: [floatTensor(`${p}reverse`, [width, width], reverse)],
  };
}

/**
 * Test-time augmentation by the mirror image, inside the graph: the uint8 `pixels` batch [N,H,W,3]
 * is concatenated with its mirror image, so the backbone runs once on 2N images; `tensor`
 * ([2N, classes]) is then averaged over the two halves into `output` ([N, classes]).
 */
export function addFlipTta(model: ModelProto, tensor: string, output: string, classes: number, portable = false): void {
  const g = graphOf(model);
  const p = 'headswap/tta/';
  const both = `${p}pixels2`;
  for (const n of g.node) n.input = (n.input ?? []).map((i) => (i === PIXELS ? both : i));
  const mirror = mirrorNodes(pixelsWidth(model), portable, p, `${p}flipped`);
  // keepdims then a Reshape: OpenCV keeps the reduced axis whatever keepdims says.
  const r = reduceMean(model, `${p}pairs`, [0], `${p}mean`);
  const shapes = [int64Tensor(`${p}pair_shape`, [3], [2, -1, classes]), int64Tensor(`${p}out_shape`, [2], [-1, classes])];
  g.initializer = [...(g.initializer ?? []), ...mirror.inits, ...shapes, ...r.inits];
  g.node = [
    ...mirror.nodes,
    node('Concat', [PIXELS, `${p}flipped`], [both], [attr.int('axis', 0)]),
    ...g.node,
    node('Reshape', [tensor, `${p}pair_shape`], [`${p}pairs`]),
    ...r.nodes,
    node('Reshape', [`${p}mean`, `${p}out_shape`], [output]),
  ];
}

/**
 * One deployable graph from a feature graph (changed in place: pass a copy you do not need again):
 * pixels -> [flip + concat] -> backbone features -> standardize -> dense -> softmax -> [average]
 * -> probabilities.
 */
export function exportClassifierGraph(features: ModelProto, head: HeadWeights, options: ExportOptions = {}): Uint8Array {
  const m = features;
  if (options.tta) {
    appendHead(m, FEATURES, head, 'headswap/tta/probs2');
    addFlipTta(m, 'headswap/tta/probs2', PROBABILITIES, head.layers.at(-1)?.units ?? 0, options.portable);
    m.graph!.output = (m.graph!.output ?? []).filter((o) => o.name !== 'headswap/tta/probs2');
    m.graph!.output.push({ name: PROBABILITIES, type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: head.layers.at(-1)?.units ?? 0 }] } } } });
  } else {
    appendHead(m, FEATURES, head, PROBABILITIES);
  }
  return finish(m, options);
}

/** One member of an ensemble: a backbone's feature graph and the head trained on its features. */
export interface EnsembleMember {
  readonly features: ModelProto;
  readonly head: HeadWeights;
}

/**
 * One deployable graph for several backbones: every member's feature graph reads the same
 * `pixels`, each gets its own head, and the class probabilities are averaged (then, with `tta`,
 * averaged with the mirror image's: the backbones all run on photo and mirror as one batch). One
 * member is exportClassifierGraph, byte for byte. The members must take the same pixels (input
 * size and resize policy): the caller checks that, since only it knows the preprocessing.
 */
export function exportEnsembleGraph(members: readonly EnsembleMember[], options: ExportOptions = {}): Uint8Array {
  if (members.length === 1) return exportClassifierGraph(members[0]!.features, members[0]!.head, options);
  const prefix = (i: number): string => `headswap/m${i}/`;
  const m = mergeModels(members.map((x) => x.features), members.map((_, i) => prefix(i)), [PIXELS]);
  const g = graphOf(m);
  const probs = members.map((x, i) => {
    appendHead(m, `${prefix(i)}${FEATURES}`, x.head, `${prefix(i)}probabilities`, `${prefix(i)}head/`);
    return `${prefix(i)}probabilities`;
  });
  const mean = options.tta ? 'headswap/ensemble/probs2' : PROBABILITIES;
  // Sum and a scale rather than Mean, which OpenCV's importer lacks.
  g.node.push(node('Sum', probs, [`${mean}/sum`]), node('Mul', [`${mean}/sum`, 'headswap/ensemble/share'], [mean]));
  g.initializer = [...(g.initializer ?? []), floatTensor('headswap/ensemble/share', [], [1 / members.length])];
  const classes = members[0]!.head.layers.at(-1)?.units ?? 0;
  if (options.tta) addFlipTta(m, mean, PROBABILITIES, classes, options.portable);
  g.output = [valueInfo(PROBABILITIES, DataType.FLOAT, ['batch', classes])];
  return finish(m, options);
}
