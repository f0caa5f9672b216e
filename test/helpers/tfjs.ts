import * as tf from '@tensorflow/tfjs-core';
import type { TfjsArtifacts } from '../../src/import/index.js';

/** TF.js's own loader over the same bytes: the reference every conversion is compared with. */
export function tfjsHandler(a: TfjsArtifacts): tf.io.IOHandler {
  const data = Buffer.concat(a.modelJson.weightsManifest.flatMap((g) => g.paths.map((p) => a.shards.get(p)!)));
  return tf.io.fromMemory({
    modelTopology: a.modelJson.modelTopology,
    format: a.modelJson.format,
    weightSpecs: a.modelJson.weightsManifest.flatMap((g) => g.weights) as tf.io.WeightsManifestEntry[],
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
  });
}
