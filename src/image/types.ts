/**
 * How an image becomes a backbone's input tensor.
 * `crop`: shorter side to `size / cropRatio`, then a center crop of `size` (ImageNet eval style);
 * `squash`: resize both sides to `size`, ignoring aspect ratio;
 * `pad`: fit inside `size` and pad with black (letterbox).
 */
export type ResizePolicy = 'crop' | 'squash' | 'pad';

export interface Preprocessing {
  /** Input height and width in pixels. */
  readonly size: readonly [number, number];
  readonly resize: ResizePolicy;
  /** For `crop`: the crop covers this fraction of the shorter side (224/256 = 0.875). */
  readonly cropRatio: number;
  /** Pixel values are multiplied by this first (1/255 maps to [0, 1]). */
  readonly scale: number;
  /** Per-channel (RGB) mean subtracted after scaling. */
  readonly mean: readonly [number, number, number];
  /** Per-channel (RGB) std divided by after subtracting the mean. */
  readonly std: readonly [number, number, number];
  /** Tensor layout the network expects. */
  readonly layout: 'NCHW' | 'NHWC';
}

/** An image decoded and resized to a backbone's size: 8-bit RGB, row-major HWC. */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}
