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
