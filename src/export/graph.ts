import { HeadswapError } from '../errors.js';
import type { HeadWeights } from '../head/weights.js';
import { FEATURES, PIXELS, PROBABILITIES, graphOf, keepOutputs } from '../onnx/edit.js';
import { mergeModels } from '../onnx/merge.js';
import { DataType, attr, defaultOpset, encodeModel, floatTensor, int64Tensor, node, valueInfo, type ModelProto, type NodeProto } from '../onnx/proto.js';

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
  const inits = [floatTensor(`${p}mean`, [1, dims], head.mean), floatTensor(`${p}std`, [1, dims], head.std)];
  const nodes: NodeProto[] = [
    node('Sub', [features, `${p}mean`], [`${p}centered`]),
    node('Div', [`${p}centered`, `${p}std`], [`${p}standardized`]),
  ];
  let x = `${p}standardized`;
  head.layers.forEach((layer, i) => {
    inits.push(floatTensor(`${p}w${i}`, [layer.inputs, layer.units], layer.kernel));
    inits.push(floatTensor(`${p}b${i}`, [layer.units], layer.bias));
    nodes.push(node('Gemm', [x, `${p}w${i}`, `${p}b${i}`], [`${p}dense${i}`]));
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
  const keep = attr.int('keepdims', 0);
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
 * Test-time augmentation by the mirror image, inside the graph: the uint8 `pixels` batch [N,H,W,3]
 * is concatenated with itself reversed along W (Slice with step -1), so the backbone runs once
 * on 2N images; `tensor` ([2N, K]) is then averaged over the two halves into `output` ([N, K]).
 */
export function addFlipTta(model: ModelProto, tensor: string, output: string): void {
  const g = graphOf(model);
  if (defaultOpset(model) < 10) throw new HeadswapError('test-time flip needs ONNX opset 10 or newer (Slice with steps)');
  const width = pixelsWidth(model);
  const p = 'headswap/tta/';
  const both = `${p}pixels2`;
  for (const n of g.node) n.input = (n.input ?? []).map((i) => (i === PIXELS ? both : i));
  const r = reduceMean(model, `${p}pairs`, [0], output);
  g.initializer = [
    ...(g.initializer ?? []),
    // From the last column back past the first: ends below -W clamp to "before index 0".
    int64Tensor(`${p}starts`, [1], [-1]),
    int64Tensor(`${p}ends`, [1], [-(width + 1)]),
    int64Tensor(`${p}axes`, [1], [2]),
    int64Tensor(`${p}steps`, [1], [-1]),
    int64Tensor(`${p}k_index`, [1], [1]),
    int64Tensor(`${p}lead`, [2], [2, -1]),
    ...r.inits,
  ];
  g.node = [
    node('Slice', [PIXELS, `${p}starts`, `${p}ends`, `${p}axes`, `${p}steps`], [`${p}flipped`]),
    node('Concat', [PIXELS, `${p}flipped`], [both], [attr.int('axis', 0)]),
    ...g.node,
    // [2N, K] -> [2, N, K]: K read from the tensor's shape.
    node('Shape', [tensor], [`${p}shape_in`]),
    node('Gather', [`${p}shape_in`, `${p}k_index`], [`${p}k`], [attr.int('axis', 0)]),
    node('Concat', [`${p}lead`, `${p}k`], [`${p}pair_shape`], [attr.int('axis', 0)]),
    node('Reshape', [tensor, `${p}pair_shape`], [`${p}pairs`]),
    ...r.nodes,
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
    addFlipTta(m, 'headswap/tta/probs2', PROBABILITIES);
    m.graph!.output = (m.graph!.output ?? []).filter((o) => o.name !== 'headswap/tta/probs2');
    m.graph!.output.push({ name: PROBABILITIES, type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: head.layers.at(-1)?.units ?? 0 }] } } } });
  } else {
    appendHead(m, FEATURES, head, PROBABILITIES);
  }
  keepOutputs(m, [PROBABILITIES]);
  m.producerName = 'headswap';
  return encodeModel(m);
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
  g.node.push(node('Mean', probs, [mean]));
  const classes = members[0]!.head.layers.at(-1)?.units ?? 0;
  if (options.tta) addFlipTta(m, mean, PROBABILITIES);
  g.output = [valueInfo(PROBABILITIES, DataType.FLOAT, ['batch', classes])];
  keepOutputs(m, [PROBABILITIES]);
  m.producerName = 'headswap';
  return encodeModel(m);
}
