import { HeadswapError } from '../errors.js';
import type { ZooEntry } from './types.js';
import { IMAGENET_CROP_224, IMAGENET_LABELS } from './presets.js';
import { ONLINE_ENTRIES } from './zoo-online.js';

export { IMAGENET_CROP_224, IMAGENET_LABELS };

export const DEFAULT_BACKBONE = 'mobilenet_v2';

const BUNDLED: ZooEntry[] = [
  {
    id: 'mobilenet_v2',
    title: 'MobileNetV2 1.0, int8 (ONNX Model Zoo)',
    architecture: 'MobileNetV2 (inverted residuals), width 1.0, 224 px, int8-quantized',
    trainedOn: 'ImageNet-1k classification (torchvision weights)',
    format: 'onnx',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-12-int8.onnx',
    sha256: 'cc028fe6cae7bc11a4ff53cfc9b79c920e8be65ce33a904ec3e2a8f66d77f95f',
    bytes: 3_655_033,
    bundled: 'models/mobilenet_v2/mobilenetv2-12-int8.onnx',
    preprocessing: IMAGENET_CROP_224,
    feature: { tensor: '627', pooling: 'avg-nchw' },
    featureDims: 1280,
    classifier: { tensor: 'output', labels: IMAGENET_LABELS, activation: 'softmax' },
    license: 'Apache-2.0 (ONNX Model Zoo); weights from torchvision (BSD-3-Clause)',
    homepage: 'https://github.com/onnx/models/tree/main/validated/vision/classification/mobilenet',
    imagenet: { top1: 68.3, top5: 88.4 },
    params: 3_500_000,
  },
  {
    id: 'mobilenet_edgetpu',
    title: 'MobileNet-EdgeTPU 1.0, uint8 (TensorFlow Lite, MLCommons)',
    architecture: 'MobileNet-EdgeTPU (fused and depthwise inverted bottlenecks), width 1.0, 224 px, uint8-quantized',
    trainedOn: 'ImageNet-1k classification (TensorFlow model garden), 1001 classes with background',
    format: 'tflite',
    url: 'https://github.com/mlcommons/mobile_models/raw/main/v0_7/tflite/mobilenet_edgetpu_224_1.0_uint8.tflite',
    sha256: '5d63cb8ebd518217794221bbcb929ebb89c5ec37d736429a95650e88f9e904fa',
    bytes: 4_193_912,
    bundled: 'models/mobilenet_edgetpu/mobilenet_edgetpu_224_1.0_uint8.tflite',
    // The input's quantization: a pixel p is (p - 128) / 127.
    preprocessing: { ...IMAGENET_CROP_224, scale: 1, mean: [128, 128, 128], std: [127, 127, 127], layout: 'NHWC' },
    // The last 1x1 convolution's map, [N,1280,7,7] inside the converted graph, before the 7x7 average pool.
    feature: { tensor: 'MobilenetEdgeTPU/Conv_1/Relu', pooling: 'avg-nchw' },
    featureDims: 1280,
    classifier: { tensor: 'MobilenetEdgeTPU/Predictions/Softmax', labels: 'models/mobilenet_edgetpu/labels.txt', activation: 'none' },
    license: 'Apache-2.0 (MLCommons mobile_models; TensorFlow model garden)',
    homepage: 'https://github.com/mlcommons/mobile_models/tree/main/v0_7/tflite',
    imagenet: { top1: 76.2, note: 'float network (MLCommons reference)' },
    params: 4_073_000,
  },
];

/** Every zoo entry: the bundled (offline) ones first. */
export const ZOO: readonly ZooEntry[] = [...BUNDLED, ...ONLINE_ENTRIES];

export function findEntry(id: string): ZooEntry | undefined {
  return ZOO.find((e) => e.id === id);
}

export function getEntry(id: string): ZooEntry {
  const entry = findEntry(id);
  if (!entry) {
    throw new HeadswapError(`unknown backbone '${id}'; run 'headswap backbones' for the list, or give a .onnx path or URL`);
  }
  return entry;
}
