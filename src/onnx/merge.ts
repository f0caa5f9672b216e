import { HeadswapError } from '../errors.js';
import { graphOf } from './edit.js';
import { createModel, type GraphProto, type ModelProto, type NodeProto } from './proto.js';

/**
 * Default-domain operators whose inputs or meaning changed at an opset version (not the many
 * changes that only added types): a graph that uses one below that version cannot simply be
 * declared at a newer opset.
 */
const CHANGED_AT: Readonly<Record<string, readonly number[]>> = {
  Squeeze: [13],
  Unsqueeze: [13],
  Split: [13, 18],
  ReduceSum: [13],
  Softmax: [13],
  LogSoftmax: [13],
  Hardmax: [13],
  ReduceMean: [18],
  ReduceMax: [18],
  ReduceMin: [18],
  ReduceProd: [18],
  ReduceL1: [18],
  ReduceL2: [18],
  ReduceLogSum: [18],
  ReduceLogSumExp: [18],
  ReduceSumSquare: [18],
  Pad: [11, 18],
  Resize: [11, 13, 18, 19],
  Clip: [11],
  Slice: [10],
  TopK: [10, 11],
};

const isDefault = (domain: string | null | undefined): boolean => !domain || domain === 'ai.onnx';

/** The opset each model declares for a domain ('' = the default domain). */
function opsets(model: ModelProto): Map<string, number> {
  return new Map((model.opsetImport ?? []).map((o) => [isDefault(o.domain) ? '' : o.domain!, Number(o.version ?? 0)]));
}

/** Copies a graph with every name (tensors, nodes) prefixed, except the `shared` ones (e.g. the common input). */
function prefixGraph(graph: GraphProto & { node: NodeProto[] }, prefix: string, shared: ReadonlySet<string>): GraphProto & { node: NodeProto[] } {
  const rename = (name: string | null | undefined): string => (!name || shared.has(name) ? (name ?? '') : `${prefix}${name}`);
  for (const n of graph.node) {
    if ((n.attribute ?? []).some((a) => a.g || (a.graphs?.length ?? 0) > 0)) {
      throw new HeadswapError(`cannot merge a graph with control flow (its '${n.opType}' node has a subgraph)`);
    }
  }
  return {
    ...graph,
    node: graph.node.map((n) => ({ ...n, name: n.name ? `${prefix}${n.name}` : n.name, input: (n.input ?? []).map(rename), output: (n.output ?? []).map(rename) })),
    initializer: (graph.initializer ?? []).map((t) => ({ ...t, name: rename(t.name) })),
    input: (graph.input ?? []).map((v) => ({ ...v, name: rename(v.name) })),
    output: (graph.output ?? []).map((v) => ({ ...v, name: rename(v.name) })),
    valueInfo: (graph.valueInfo ?? []).map((v) => ({ ...v, name: rename(v.name) })),
  };
}

/**
 * One model that holds every given model side by side: model i's tensors and nodes are named
 * `${prefixes[i]}<name>`, except the `shared` names (inputs they all read, e.g. `pixels`), which
 * must have the same type in each. Opsets are the newest each domain is declared at; a model
 * declared at an older default opset must use no operator whose meaning changed in between.
 * The models are not changed.
 */
export function mergeModels(models: readonly ModelProto[], prefixes: readonly string[], shared: readonly string[]): ModelProto {
  if (models.length === 0 || models.length !== prefixes.length) throw new HeadswapError('mergeModels needs one prefix per model');
  const keep = new Set(shared);
  const target = new Map<string, number>();
  for (const m of models) for (const [domain, version] of opsets(m)) target.set(domain, Math.max(version, target.get(domain) ?? 0));
  const to = target.get('') ?? 0;
  models.forEach((m, i) => {
    const from = opsets(m).get('') ?? 0;
    if (from === to) return;
    const changed = [...new Set(graphOf(m).node.filter((n) => isDefault(n.domain) && (CHANGED_AT[n.opType ?? ''] ?? []).some((v) => v > from && v <= to)).map((n) => n.opType!))];
    if (changed.length > 0) {
      throw new HeadswapError(`network ${i + 1} is ONNX opset ${from} and uses ${changed.join(', ')}, whose meaning changed by opset ${to}; re-export it at opset ${to}`);
    }
  });
  const graphs = models.map((m, i) => prefixGraph(graphOf(m), prefixes[i]!, keep));
  const inputs = new Map<string, NonNullable<GraphProto['input']>[number]>();
  for (const g of graphs) {
    for (const v of g.input ?? []) {
      const seen = inputs.get(v.name ?? '');
      if (seen && JSON.stringify(seen.type) !== JSON.stringify(v.type)) throw new HeadswapError(`the networks disagree on input '${v.name}'`);
      inputs.set(v.name ?? '', seen ?? v);
    }
  }
  return createModel({
    irVersion: Math.max(...models.map((m) => Number(m.irVersion ?? 0))),
    producerName: 'headswap',
    opsetImport: [...target].map(([domain, version]) => ({ domain, version })),
    graph: {
      name: 'headswap-ensemble',
      node: graphs.flatMap((g) => g.node),
      initializer: graphs.flatMap((g) => g.initializer ?? []),
      input: [...inputs.values()],
      output: graphs.flatMap((g) => g.output ?? []),
      valueInfo: graphs.flatMap((g) => g.valueInfo ?? []),
    },
  });
}
