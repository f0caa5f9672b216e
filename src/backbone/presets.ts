import type { Preprocessing } from '../image/types.js';

/** torchvision / ONNX Model Zoo ImageNet evaluation: shorter side 256, center crop 224. */
export const IMAGENET_CROP_224: Preprocessing = {
  size: [224, 224],
  resize: 'crop',
  cropRatio: 0.875,
  scale: 1 / 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
  layout: 'NCHW',
};

/** The 1000 ILSVRC-2012 class names in the standard output order (index 0 = tench). */
export const IMAGENET_LABELS = 'models/mobilenet_v2/labels.txt';
