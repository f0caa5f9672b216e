/**
 * Model import: TensorFlow.js `layers-model` / `graph-model` files (including nsfwjs's bundled
 * networks and Teachable Machine exports) and TensorFlow Lite `.tflite` files, converted once to
 * ONNX for onnxruntime.
 */
export { importArtifacts, importTfjs, type ImportOptions, type ImportResult } from './import-tfjs.js';
export { importTflite, type TfliteImportOptions, type TfliteImportResult } from './import-tflite.js';
export { SUPPORTED_LAYERS } from './tfjs/layers.js';
export { SUPPORTED_OPS } from './tfjs/graph.js';
export { SUPPORTED_OPERATORS, convertTflite, type TfliteConverted } from './tflite/convert.js';
export { readTflite, type TfliteModel, type TfliteOperator, type TfliteTensor, type TfliteQuantization, type OperatorOptions } from './tflite/read.js';
export { NSFWJS_LABELS, NSFWJS_MODELS, nsfwjsModelDir, readNsfwjsFolder, type NsfwjsModel } from './tfjs/nsfwjs.js';
export { convertTfjs, type ConvertOptions, type Converted } from './tfjs/convert.js';
export { readTfjsFolder, fetchTfjs } from './tfjs/read.js';
export type { TfjsArtifacts } from './tfjs/manifest.js';
