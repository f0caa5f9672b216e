import type { Preprocessing } from '../image/types.js';
import { IMAGENET_CROP_224, IMAGENET_LABELS } from './presets.js';
import type { ZooEntry } from './types.js';

/**
 * EfficientNet-Lite4 (ONNX Model Zoo card): RGB, shorter side to 224/0.875 = 256, center crop 224,
 * then (pixel - 127) / 128 on raw 0..255 values, NHWC `float32[1,224,224,3]`.
 */
const EFFICIENTNET_LITE_224: Preprocessing = {
  size: [224, 224],
  resize: 'crop',
  cropRatio: 0.875,
  scale: 1,
  mean: [127, 127, 127],
  std: [128, 128, 128],
  layout: 'NHWC',
};

/**
 * OpenAI CLIP (preprocessor_config.json of Xenova/clip-vit-base-patch32): shortest edge 224, center
 * crop 224 (so the crop spans the whole shorter side), rescale 1/255, CLIP mean/std, NCHW.
 */
const CLIP_CROP_224: Preprocessing = {
  size: [224, 224],
  resize: 'crop',
  cropRatio: 1,
  scale: 1 / 255,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
  layout: 'NCHW',
};

/** Zoo entries downloaded on first use. Every hash and size below comes from a published source. */
export const ONLINE_ENTRIES: readonly ZooEntry[] = [
  // sha256/bytes: onnx/models ONNX_HUB_MANIFEST.json, entry "MobileNet v2-1.0-fp32" (model_sha, model_bytes).
  // Input 'input' [batch,3,224,224], output 'output' [batch,1000] logits (same manifest entry).
  // Feature '464' = output of GlobalAveragePool_97, [N,1280,1,1]: named by the manifest's extra_ports for
  // the sibling mobilenetv2-10 export and, for this exact file (sha c0c3f76d…), by public code that cuts
  // the graph there; the bundled int8 model (quantized from this file) also names its GAP output '464'.
  // Accuracy: mobilenet README (fp32 row). Params: torchvision MobileNetV2 1.0 architecture count.
  {
    id: 'mobilenet_v2_float',
    title: 'MobileNetV2 1.0, float32 (ONNX Model Zoo)',
    architecture: 'MobileNetV2 (inverted residuals), width 1.0, 224 px, float32; the graph the bundled int8 model was quantized from',
    trainedOn: 'ImageNet-1k classification',
    format: 'onnx',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/mobilenet/model/mobilenetv2-12.onnx',
    sha256: 'c0c3f76d93fa3fd6580652a45618618a220fced18babf65774ed169de0432ad5',
    bytes: 13_964_571,
    preprocessing: IMAGENET_CROP_224,
    feature: { tensor: '464', pooling: 'none' },
    featureDims: 1280,
    classifier: { tensor: 'output', labels: IMAGENET_LABELS, activation: 'softmax' },
    license: 'Apache-2.0 (ONNX Model Zoo)',
    homepage: 'https://github.com/onnx/models/tree/main/validated/vision/classification/mobilenet',
    imagenet: { top1: 69.48, top5: 89.26 },
    params: 3_504_872,
  },
  // sha256/bytes: onnx/models ONNX_HUB_MANIFEST.json, entry "ResNet50" (resnet50-v1-7.onnx); the same
  // manifest lists input 'data' [N,3,224,224], output 'resnetv17_dense0_fwd' [N,1000] and, under
  // extra_ports.features, 'resnetv17_pool1_fwd' [N,2048,1,1] (the global-average-pool output).
  // Preprocessing and accuracy: resnet README (v1 table, ResNet50 row). Params: ResNet-50 architecture
  // count (25,557,032; v1 and v1.5 differ only in stride placement).
  {
    id: 'resnet50',
    title: 'ResNet-50 v1, float32 (ONNX Model Zoo, opset 7)',
    architecture: 'ResNet-50 v1 (post-activation bottleneck blocks), 224 px, float32',
    trainedOn: 'ImageNet-1k (ILSVRC2012) classification, MXNet Gluon',
    format: 'onnx',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v1-7.onnx',
    sha256: 'af16a04a6ec48ac494065d4439fe9dea590d337b9ca6dc328160ccf04a217b9c',
    bytes: 102_583_340,
    preprocessing: IMAGENET_CROP_224,
    feature: { tensor: 'resnetv17_pool1_fwd', pooling: 'none' },
    featureDims: 2048,
    classifier: { tensor: 'resnetv17_dense0_fwd', labels: IMAGENET_LABELS, activation: 'softmax' },
    license: 'Apache-2.0 (ONNX Model Zoo)',
    homepage: 'https://github.com/onnx/models/tree/main/validated/vision/classification/resnet',
    imagenet: { top1: 74.93, top5: 92.38 },
    params: 25_557_032,
  },
  // sha256/bytes: onnx/models ONNX_HUB_MANIFEST.json, entry "EfficientNet-Lite4" (efficientnet-lite4-11.onnx);
  // it lists input 'images:0' [1,224,224,3] (NHWC, batch fixed at 1), output 'Softmax:0' [1,1000] (already
  // probabilities, hence activation 'none') and extra_ports.features 'efficientnet-lite4/model/head/AvgPool:0'
  // (1280 values at 1x1 spatial, so a flatten gives the vector whatever its axis order).
  // Preprocessing, top-1 and license: efficientnet-lite4 README. Params: tensorflow/tpu EfficientNet-Lite README (13.0M).
  {
    id: 'efficientnet_lite4',
    title: 'EfficientNet-Lite4, float32 (ONNX Model Zoo)',
    architecture: 'EfficientNet-Lite4 (no squeeze-excite, ReLU6), 224 px, float32, NHWC input, batch size fixed at 1',
    trainedOn: 'ImageNet-1k classification (TensorFlow, converted with tf2onnx)',
    format: 'onnx',
    url: 'https://github.com/onnx/models/raw/main/validated/vision/classification/efficientnet-lite4/model/efficientnet-lite4-11.onnx',
    sha256: 'd111689907c06eea7c82e4833ddef758da6453b9d4cf60b7e99ca05c7cbd9c12',
    bytes: 51_946_641,
    preprocessing: EFFICIENTNET_LITE_224,
    feature: { tensor: 'efficientnet-lite4/model/head/AvgPool:0', pooling: 'none' },
    featureDims: 1280,
    classifier: { tensor: 'Softmax:0', labels: IMAGENET_LABELS, activation: 'none' },
    license: 'MIT (ONNX Model Zoo model card)',
    homepage: 'https://github.com/onnx/models/tree/main/validated/vision/classification/efficientnet-lite4',
    imagenet: { top1: 80.4, note: 'ONNX Model Zoo card; TensorFlow reference FP32 81.5' },
    params: 13_000_000,
  },
  // sha256: the hub's LFS details for Xenova/dinov2-small, onnx/model.onnx at revision 560a572 (the commit
  // that last changed the file; URL pinned to it). bytes: 88,459,888, as recorded with this same sha256 by
  // several public manifests (the hub page shows 88.5 MB). Preprocessing: BitImageProcessor config (shortest
  // edge 256, crop 224, ImageNet mean/std, bicubic) as published for the Xenova dinov2 exports.
  // Input 'pixel_values' [N,3,H,W]; output 'last_hidden_state' [N,257,384] at 224 px. The CLS token of
  // last_hidden_state is used: in transformers' Dinov2Model, pooler_output is exactly last_hidden_state[:,0]
  // (both after the final layernorm), and last_hidden_state is the output every consumer of this file reads.
  // Accuracy and params: DINOv2 README (ViT-S/14 distilled, 21 M, k-NN 79.0%, linear 81.1%).
  {
    id: 'dinov2_small',
    title: 'DINOv2 ViT-S/14 (transformers.js ONNX export)',
    architecture: 'ViT-S/14 (12 layers, width 384, patch 14), distilled, float32; CLS token of the last layer',
    trainedOn: 'Self-supervised DINOv2 pretraining on LVD-142M (142 M unlabeled images); no classifier',
    format: 'onnx',
    url: 'https://huggingface.co/Xenova/dinov2-small/resolve/560a572cedd01ab59cf1a614c2d9673397b65ef2/onnx/model.onnx',
    sha256: '83141175ec78b4ff9a2bb58a4c7c264ba0054d1c2e122e5a8114b79a8d4179ea',
    bytes: 88_459_888,
    preprocessing: IMAGENET_CROP_224,
    feature: { tensor: 'last_hidden_state', pooling: 'first-token' },
    featureDims: 384,
    license: 'Apache-2.0 (DINOv2 weights)',
    homepage: 'https://huggingface.co/Xenova/dinov2-small',
    imagenet: { top1: 79.0, note: 'k-NN on frozen features (DINOv2 README); linear probe 81.1' },
    params: 21_000_000,
  },
  // sha256: the hub's LFS details for Xenova/clip-vit-base-patch32, onnx/vision_model.onnx as of revision
  // 4c1807b (file last changed in 6ef1ebc "Upload 4 files"; URL pinned to 4c1807b). bytes: 351,685,709, as
  // recorded with this same sha256 by several public manifests (the hub page shows 352 MB).
  // Input 'pixel_values'; output 'image_embeds' [batch,512] (transformers.js scripts/extra/clip.py exports
  // CLIPVisionModelWithProjection with that output): the projected, not L2-normalized, CLIP image embedding.
  // Preprocessing: the repo's preprocessor_config.json. Params: open_clip model_profile.csv (ViT-B-32
  // image tower 87.85 M). Accuracy: open_clip classification results (ViT-B-32, openai, ImageNet-1k 0.6332).
  {
    id: 'clip_vit_b32',
    title: 'CLIP ViT-B/32 image encoder (transformers.js ONNX export)',
    architecture: 'ViT-B/32 (12 layers, width 768, patch 32) + linear projection to 512, float32',
    trainedOn: 'Contrastive image-text pretraining by OpenAI on 400 M web image-text pairs; no classifier',
    format: 'onnx',
    url: 'https://huggingface.co/Xenova/clip-vit-base-patch32/resolve/4c1807b705b1d015fb032789cc4d221b23025a6f/onnx/vision_model.onnx',
    sha256: 'fd6e1402a588279d1723c7534d4bcba5bc0b14b47dfab0e46f8c47b8270d7d40',
    bytes: 351_685_709,
    preprocessing: CLIP_CROP_224,
    feature: { tensor: 'image_embeds', pooling: 'none' },
    featureDims: 512,
    license: 'MIT (OpenAI CLIP)',
    homepage: 'https://huggingface.co/Xenova/clip-vit-base-patch32',
    imagenet: { top1: 63.32, note: 'zero-shot with text prompts (open_clip evaluation of the OpenAI weights), not a probe' },
    params: 87_850_000,
  },
  ...tfhubEntries(),
];

/**
 * TF Hub image models: RGB scaled to [0, 1], NHWC; evaluated on a center crop of 87.5% (the
 * TF-Slim ImageNet evaluation these checkpoints come from).
 */
function tfhubPreprocessing(side: number): Preprocessing {
  return { size: [side, side], resize: 'crop', cropRatio: 0.875, scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1], layout: 'NHWC' };
}

/**
 * The official TensorFlow.js ImageNet feature-vector models on TF Hub (now served by Kaggle):
 * graph models whose output is the pooled feature vector. The URLs are what TF.js's
 * `loadGraphModel(handle, { fromTFHub: true })` requests (handle + `/model.json?tfjs-format=file`);
 * headswap converts them to ONNX on first use. TF Hub publishes no checksums, so they are not
 * pinned: the converted model is keyed by the sha256 of what was downloaded, and headswap.json
 * records it. Never fetched in this project's offline CI (the code path is tested against a local
 * server); feature widths are the ones TF Hub documents for each handle, params the Keras
 * applications' counts of the same architectures without their classifier.
 */
function tfhubEntries(): ZooEntry[] {
  const hub = (path: string): string => `https://tfhub.dev/google/tfjs-model/imagenet/${path}/model.json?tfjs-format=file`;
  const common = { format: 'tfjs', sha256: null, bytes: null, feature: 'output', license: 'Apache-2.0 (TF Hub)', trainedOn: 'ImageNet-1k (ILSVRC-2012-CLS) classification, TF-Slim' } as const;
  return [
    {
      ...common,
      id: 'tfhub_inception_v3',
      title: 'Inception v3 feature vector (TF Hub, TensorFlow.js) — the network of the original retraining demo',
      architecture: 'Inception v3, 299 px, float32; output: the 2048 average-pooled features',
      url: hub('inception_v3/feature_vector/3/default/1'),
      preprocessing: tfhubPreprocessing(299),
      featureDims: 2048,
      homepage: 'https://www.kaggle.com/models/google/inception-v3',
      params: 21_802_784,
    },
    {
      ...common,
      id: 'tfhub_mobilenet_v2',
      title: 'MobileNetV2 1.0 feature vector (TF Hub, TensorFlow.js)',
      architecture: 'MobileNetV2, width 1.0, 224 px, float32; output: the 1280 average-pooled features',
      url: hub('mobilenet_v2_100_224/feature_vector/3/default/1'),
      preprocessing: tfhubPreprocessing(224),
      featureDims: 1280,
      homepage: 'https://www.kaggle.com/models/google/mobilenet-v2',
      params: 2_257_984,
    },
    {
      ...common,
      id: 'tfhub_mobilenet_v3_large',
      title: 'MobileNetV3-Large 1.0 feature vector (TF Hub, TensorFlow.js)',
      architecture: 'MobileNetV3-Large, width 1.0, 224 px, float32; output: the 1280 pooled features',
      url: hub('mobilenet_v3_large_100_224/feature_vector/5/default/1'),
      preprocessing: tfhubPreprocessing(224),
      featureDims: 1280,
      homepage: 'https://www.kaggle.com/models/google/mobilenet-v3',
      params: 4_226_432,
    },
  ];
}
