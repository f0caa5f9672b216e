import type { Backbone } from '../backbone/backbone.js';
import { HeadswapError } from '../errors.js';
import { NORM_EPSILON, isIdentity, type FeatureTransform } from '../head/transform.js';
import { FEATURES, PIXELS, PROBABILITIES, appendHead, keepOutputs, type HeadWeights } from './edit.js';
import { attr, defaultOpset, encodeModel, floatTensor, int64Tensor, node, type GraphProto, type ModelProto, type NodeProto } from './proto.js';

/**
 * Graph pieces the improved heads need on top of appendHead's standardize -> dense -> softmax:
 * the fixed feature transform (power + L2 normalization) and test-time augmentation by the
 * mirror image. Both keep the export one self-contained graph with the same input and output.
 */

function graphOf(model: ModelProto): GraphProto & { node: NodeProto[] } {
  const g = model.graph;
  if (!g?.node) throw new HeadswapError('ONNX model has no graph');
  return g as GraphProto & { node: NodeProto[] };
}

/** ReduceX nodes take `axes` as an attribute up to opset 17 and as an input from 18 (ReduceSum from 13). */
function reduceNode(model: ModelProto, op: 'ReduceL2' | 'ReduceMean', input: string, axes: number[], keepdims: boolean, output: string): { nodes: NodeProto[]; inits: ReturnType<typeof int64Tensor>[] } {
  const keep = attr.int('keepdims', keepdims ? 1 : 0);
  if (defaultOpset(model) >= 18) {
    const name = `${output}/axes`;
    return { nodes: [node(op, [input, name], [output], [keep])], inits: [int64Tensor(name, [axes.length], axes)] };
  }
  return { nodes: [node(op, [input], [output], [attr.ints('axes', axes), keep])], inits: [] };
}

/**
 * Appends `output = normalize(sign(x) * |x|^power)` after the [N, D] tensor `features`, with the
 * same float32 steps as transformFeatures (src/head/transform.ts): Abs, Pow, Sign, Mul, then
 * ReduceL2 over the features, Add epsilon, Div. The identity transform is a single Identity node.
 */
export function appendFeatureTransform(model: ModelProto, features: string, t: FeatureTransform, output: string): void {
  const g = graphOf(model);
  const p = 'headswap/transform/';
  const nodes: NodeProto[] = [];
  const inits = [];
  let x = features;
  if (t.power !== 1) {
    if (defaultOpset(model) < 9) throw new HeadswapError('the feature power needs ONNX opset 9 or newer (Sign)');
    inits.push(floatTensor(`${p}power`, [], [t.power]));
    nodes.push(
      node('Abs', [x], [`${p}abs`]),
      node('Pow', [`${p}abs`, `${p}power`], [`${p}pow`]),
      node('Sign', [x], [`${p}sign`]),
      node('Mul', [`${p}sign`, `${p}pow`], [`${p}powered`]),
    );
    x = `${p}powered`;
  }
  if (t.l2) {
    const r = reduceNode(model, 'ReduceL2', x, [1], true, `${p}norm`);
    nodes.push(...r.nodes);
    inits.push(...r.inits, floatTensor(`${p}eps`, [], [NORM_EPSILON]));
    nodes.push(node('Add', [`${p}norm`, `${p}eps`], [`${p}norm_eps`]), node('Div', [x, `${p}norm_eps`], [`${p}normalized`]));
    x = `${p}normalized`;
  }
  nodes.push(node('Identity', [x], [output]));
  g.initializer = [...(g.initializer ?? []), ...inits];
  g.node.push(...nodes);
}

/**
 * Test-time augmentation by the mirror image, inside the graph: the uint8 `pixels` batch [N,H,W,3]
 * is concatenated with itself reversed along W (Slice with step -1), so the backbone runs once
 * on 2N images; `tensor` ([2N, K], e.g. features or probabilities) is then averaged over the two
 * halves into `output` ([N, K]). Needs a backbone with a dynamic batch dimension and opset >= 10.
 */
export function addFlipTta(model: ModelProto, tensor: string, width: number, output: string): void {
  const g = graphOf(model);
  if (defaultOpset(model) < 10) throw new HeadswapError('test-time flip needs ONNX opset 10 or newer (Slice with steps)');
  const p = 'headswap/tta/';
  const both = `${p}pixels2`;
  for (const n of g.node) n.input = (n.input ?? []).map((i) => (i === PIXELS ? both : i));
  const r = reduceNode(model, 'ReduceMean', `${p}pairs`, [0], false, output);
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
    // [2N, K] -> [2, N, K]: K read from the tensor's shape, so one helper serves features and probabilities.
    node('Shape', [tensor], [`${p}shape_in`]),
    node('Gather', [`${p}shape_in`, `${p}k_index`], [`${p}k`], [attr.int('axis', 0)]),
    node('Concat', [`${p}lead`, `${p}k`], [`${p}pair_shape`], [attr.int('axis', 0)]),
    node('Reshape', [tensor, `${p}pair_shape`], [`${p}pairs`]),
    ...r.nodes,
  ];
}

export interface ExportOptions {
  /** Applied to the backbone's features before the head's standardization. */
  readonly transform?: FeatureTransform;
  /** Average over the photo and its mirror image: 'features' before the head, 'probabilities' after it. */
  readonly tta?: false | 'features' | 'probabilities';
}

/**
 * One deployable graph (what Backbone.exportModel writes), with the optional feature transform and
 * flip TTA: pixels -> [flip+concat] -> backbone features -> [average] -> [transform] ->
 * standardize -> dense -> softmax -> [average] -> probabilities.
 */
export function exportHeadModel(backbone: Backbone, head: HeadWeights, options: ExportOptions = {}): Uint8Array {
  if (options.tta && backbone.batchOfOne) {
    throw new HeadswapError(`${backbone.source.origin}: the network's batch size is fixed at 1, so the mirror image cannot run beside the photo; export without test-time flip`);
  }
  const m = backbone.featureModel();
  let x = FEATURES;
  const width = backbone.preprocessing.size[1];
  if (options.tta === 'features') {
    addFlipTta(m, x, width, 'headswap/tta/features');
    x = 'headswap/tta/features';
  }
  if (options.transform && !isIdentity(options.transform)) {
    appendFeatureTransform(m, x, options.transform, 'headswap/transformed');
    x = 'headswap/transformed';
  }
  if (options.tta === 'probabilities') {
    appendHead(m, x, head, 'headswap/tta/probs2');
    addFlipTta(m, 'headswap/tta/probs2', width, PROBABILITIES);
    m.graph!.output = (m.graph!.output ?? []).filter((o) => o.name !== 'headswap/tta/probs2');
    m.graph!.output.push({ name: PROBABILITIES, type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: head.layers.at(-1)?.units ?? 0 }] } } } });
  } else {
    appendHead(m, x, head, PROBABILITIES);
  }
  keepOutputs(m, [PROBABILITIES]);
  m.producerName = 'headswap';
  return encodeModel(m);
}
