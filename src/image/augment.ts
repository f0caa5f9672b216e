import { HeadswapError } from '../errors.js';
import { createRng } from '../util/random.js';
import { checkImage, decodeRgb, loadRgb } from './preprocess.js';
import type { Preprocessing, RgbImage } from './types.js';
import { sha256 } from '../util/fs.js';

/**
 * One augmented view of a photo. Its random parameters are drawn from (seed, index, the image's
 * sha256), so the spec's `id` plus the image bytes fully determine the pixels: that is what makes
 * an augmented feature vector cacheable under `variant = id` like the plain one.
 */
export interface AugmentSpec {
  /** Cache variant id; encodes every field below (and the recipe version). */
  readonly id: string;
  /** 'flip': the backbone's own resize, mirrored. 'crop': a random resized crop. */
  readonly kind: 'flip' | 'crop';
  /** For 'crop': fraction of the image area kept, drawn uniformly in [minArea, maxArea]. */
  readonly minArea: number;
  readonly maxArea: number;
  /** For 'crop': aspect ratio (w/h) of the crop drawn log-uniformly in [1/maxAspect, maxAspect]. */
  readonly maxAspect: number;
  /** Brightness, contrast and saturation factors drawn in [1 - jitter, 1 + jitter]; 0 = none. */
  readonly jitter: number;
  /** For 'crop': mirror with probability 1/2. */
  readonly randomFlip: boolean;
  readonly seed: number;
  readonly index: number;
}

/** Bump when the way a spec becomes pixels changes, so cached augmented vectors are recomputed. */
const RECIPE_VERSION = 1;
/** Crops: 2 = decode, crop, resize and jitter in one sharp pipeline (pixels equal to 1's on clothing7, but not proven equal for every input). */
const CROP_RECIPE_VERSION = 2;

export interface CropOptions {
  readonly minArea?: number;
  readonly maxArea?: number;
  readonly maxAspect?: number;
  readonly jitter?: number;
  readonly randomFlip?: boolean;
}

/**
 * RandomResizedCrop-style ranges, milder than torchvision's 8-100% area: clothing is recognized by
 * its silhouette, which a crop of a tenth of the photo loses. In 5-fold CV on clothing7 train/,
 * milder crops (60-100% or 80-100% area, aspect up to 1.2) scored the same as these.
 */
export const CROP_DEFAULTS: Readonly<Required<CropOptions>> = { minArea: 0.35, maxArea: 1, maxAspect: 4 / 3, jitter: 0.2, randomFlip: true };

export function flipSpec(): AugmentSpec {
  return { id: `aug${RECIPE_VERSION}:flip`, kind: 'flip', minArea: 1, maxArea: 1, maxAspect: 1, jitter: 0, randomFlip: false, seed: 0, index: 0 };
}

export function cropSpec(index: number, seed: number, options: CropOptions = {}): AugmentSpec {
  const o = { ...CROP_DEFAULTS, ...definedOnly(options) };
  if (!(o.minArea > 0 && o.minArea <= o.maxArea && o.maxArea <= 1)) throw new HeadswapError(`crop area range [${o.minArea}, ${o.maxArea}] must satisfy 0 < min <= max <= 1`);
  if (!(o.maxAspect >= 1)) throw new HeadswapError(`crop maxAspect ${o.maxAspect} must be >= 1`);
  if (!(o.jitter >= 0 && o.jitter < 1)) throw new HeadswapError(`colour jitter ${o.jitter} must be in [0, 1)`);
  const id = `aug${CROP_RECIPE_VERSION}:crop:a${o.minArea}-${o.maxArea}:r${+o.maxAspect.toFixed(4)}:j${o.jitter}:f${o.randomFlip ? 1 : 0}:s${seed}:i${index}`;
  return { id, kind: 'crop', ...o, seed, index };
}

/**
 * The usual set: the mirror image plus `crops` random resized crops (each randomly mirrored and
 * colour-jittered). `crops = 0` gives the flip alone.
 */
export function augmentSpecs(crops: number, seed = 0, options: CropOptions & { flip?: boolean } = {}): AugmentSpec[] {
  const { flip = true, ...crop } = options;
  return [...(flip ? [flipSpec()] : []), ...Array.from({ length: crops }, (_, i) => cropSpec(i, seed, crop))];
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A 32-bit seed from a hex hash and the spec, so every image gets its own crop. */
function viewSeed(spec: AugmentSpec, hash: string): number {
  return parseInt(sha256(`${spec.id}\n${hash}`).slice(0, 8), 16);
}

/** The random draws of one view of one image, in a fixed order so they are reproducible. */
export interface ViewParams {
  /** Crop box in the (EXIF-oriented) source image, in pixels; undefined for the backbone's own resize. */
  readonly box?: { readonly left: number; readonly top: number; readonly width: number; readonly height: number };
  readonly flip: boolean;
  readonly brightness: number;
  readonly contrast: number;
  readonly saturation: number;
}

export function viewParams(spec: AugmentSpec, hash: string, srcW: number, srcH: number): ViewParams {
  const rng = createRng(viewSeed(spec, hash));
  const factor = (): number => 1 + spec.jitter * (2 * rng() - 1);
  if (spec.kind === 'flip') return { flip: true, brightness: 1, contrast: 1, saturation: 1 };
  // torchvision's RandomResizedCrop: up to 10 tries for a box that fits, else the whole image.
  const area = srcW * srcH;
  let box: ViewParams['box'] = { left: 0, top: 0, width: srcW, height: srcH };
  for (let attempt = 0; attempt < 10; attempt++) {
    const a = area * (spec.minArea + (spec.maxArea - spec.minArea) * rng());
    const ratio = Math.exp(Math.log(spec.maxAspect) * (2 * rng() - 1));
    const w = Math.round(Math.sqrt(a * ratio));
    const h = Math.round(Math.sqrt(a / ratio));
    const ux = rng();
    const uy = rng();
    if (w >= 1 && h >= 1 && w <= srcW && h <= srcH) {
      box = { left: Math.floor(ux * (srcW - w + 1)), top: Math.floor(uy * (srcH - h + 1)), width: w, height: h };
      break;
    }
  }
  const flip = spec.randomFlip && rng() < 0.5;
  return { box, flip, brightness: factor(), contrast: factor(), saturation: factor() };
}

/**
 * Decodes an image and renders one augmented view at the backbone's input size. 'flip' goes
 * through loadRgb (the exact pixels the plain feature sees, mirrored); 'crop' decodes like loadRgb
 * (EXIF orientation, alpha on white, sRGB), cuts the box and stretches it to the input size, as
 * RandomResizedCrop does. Colour jitter then scales brightness and saturation (sharp.modulate)
 * and contrast about mid-grey (sharp.linear).
 */
export async function loadAugmented(
  input: { readonly name: string; readonly data: Uint8Array; readonly hash?: string },
  pre: Preprocessing,
  spec: AugmentSpec,
  options: { readonly pixelLimit?: number } = {},
): Promise<RgbImage> {
  const hash = input.hash ?? sha256(input.data);
  const [height, width] = pre.size;
  // The mirror is the plain view's exact pixels, flipped (no colour jitter: flipSpec has none).
  if (spec.kind === 'flip') return loadRgb(input, pre, { pixelLimit: options.pixelLimit, flip: true });
  const image = await checkImage(input, options);
  const params = viewParams(spec, hash, image.width, image.height);
  return decodeRgb(image, pre.size, (img) => {
    // autoOrient comes first (decodeRgb), so the box is cut in upright coordinates.
    const box = params.box!;
    if (box.left + box.width <= image.width && box.top + box.height <= image.height) img = img.extract(box);
    img = img.resize(width, height, { fit: 'fill', kernel: 'linear' });
    if (params.flip) img = img.flop();
    // Colour jitter: brightness and saturation (sharp.modulate), then contrast about 128: out = c * (in - 128) + 128.
    if (params.brightness !== 1 || params.saturation !== 1) img = img.modulate({ brightness: params.brightness, saturation: params.saturation });
    if (params.contrast !== 1) img = img.linear(params.contrast, 128 * (1 - params.contrast));
    return img;
  });
}
