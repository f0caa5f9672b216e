/**
 * TF.js model import: TensorFlow.js `layers-model` / `graph-model` files (including nsfwjs's
 * bundled networks and Teachable Machine exports) converted once to ONNX for onnxruntime.
 */
export { importArtifacts, importTfjs, type ImportOptions, type ImportResult } from './import-tfjs.js';
export { SUPPORTED_LAYERS } from './tfjs/layers.js';
export { SUPPORTED_OPS } from './tfjs/graph.js';
export { NSFWJS_LABELS, NSFWJS_MODELS, nsfwjsModelDir, readNsfwjsFolder, type NsfwjsModel } from './tfjs/nsfwjs.js';
export { convertTfjs, type ConvertOptions, type Converted } from './tfjs/convert.js';
export { readTfjsFolder, fetchTfjs } from './tfjs/read.js';
export type { TfjsArtifacts } from './tfjs/manifest.js';
