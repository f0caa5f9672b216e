import type { ConvertOptions, Converted } from './common.js';
import { convertGraphModel } from './graph.js';
import { convertLayersModel } from './layers.js';
import { decodeWeights, type TfjsArtifacts } from './manifest.js';

export type { ConvertOptions, Converted };

/** Converts a TF.js model in memory (layers or graph format) to an ONNX model with an NHWC float input. */
export function convertTfjs(artifacts: TfjsArtifacts, options: ConvertOptions = {}): Converted {
  const weights = decodeWeights(artifacts);
  const json = artifacts.modelJson;
  const source = artifacts.modelJsonName;
  return json.format === 'graph-model' ? convertGraphModel(json, weights, source, options) : convertLayersModel(json, weights, source, options);
}
