import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Classifier } from '../../src/export/classifier.js';
import type { RgbImage } from '../../src/image/types.js';
import { packagePath } from '../../src/util/paths.js';

/**
 * OpenCV's DNN module (Debian's python3-opencv, OpenCV 4.6) as a runtime independent of
 * onnxruntime, for the portable export's checks: test/helpers/opencv-run.py runs the model.
 */

const PYTHON = '/usr/bin/python3';
const RUNNER = packagePath('test', 'helpers', 'opencv-run.py');

/** Why OpenCV cannot run here, or undefined when it can. */
export function opencvMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import cv2'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `OpenCV's Python module is not installed (apt-get install -y python3-opencv): ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`;
}

export interface OpenCvRun {
  /** `[N, classes]`, row by row. */
  readonly probabilities: Float32Array;
  readonly classes: number;
  readonly version: string;
  readonly msPerImage: number;
}

/** Runs a model.onnx on already-resized images in OpenCV, `batch` images a forward pass; rejects with OpenCV's last error lines. */
export async function runOpenCv(modelPath: string, images: readonly RgbImage[], batch = 1): Promise<OpenCvRun> {
  const [first] = images;
  if (!first) throw new Error('runOpenCv: no images');
  const dir = await mkdtemp(join(tmpdir(), 'headswap-opencv-'));
  try {
    const pixels = Buffer.concat(images.map((i) => i.data));
    await writeFile(join(dir, 'pixels.bin'), pixels);
    const out = join(dir, 'probabilities.bin');
    const args = [RUNNER, modelPath, join(dir, 'pixels.bin'), String(images.length), String(first.height), String(first.width), out, String(batch)];
    // Asynchronous, so two models can run side by side.
    const stdout = await promisify(execFile)(PYTHON, args, { encoding: 'utf8', maxBuffer: 1 << 24 }).then(
      (r) => r.stdout,
      (err: { stderr?: string; message: string }) => {
        throw new Error(`OpenCV failed on ${modelPath}: ${(err.stderr || err.message).trim().split('\n').slice(-3).join(' | ')}`);
      },
    );
    const info = JSON.parse(stdout.trim().split('\n').at(-1)!) as { version: string; classes: number; msPerImage: number };
    const raw = await readFile(out);
    return { ...info, probabilities: new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** How closely two runtimes' probabilities for the same images agree. */
export interface Agreement {
  readonly images: number;
  /** Fraction of images with the same top-1 class. */
  readonly top1: number;
  readonly maxAbsDiff: number;
  readonly meanAbsDiff: number;
}

function argmax(row: ArrayLike<number>, from: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (row[from + j]! > row[from + best]!) best = j;
  return best;
}

export function agreement(a: Float32Array, b: Float32Array, classes: number): Agreement {
  if (a.length !== b.length || a.length % classes !== 0) throw new Error(`agreement: ${a.length} values against ${b.length} for ${classes} classes`);
  const n = a.length / classes;
  let same = 0;
  let max = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) if (argmax(a, i * classes, classes) === argmax(b, i * classes, classes)) same++;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  return { images: n, top1: same / n, maxAbsDiff: +max.toPrecision(3), meanAbsDiff: +(sum / a.length).toPrecision(3) };
}

/** The images of `files` resized the way `classifier` was trained. */
export function loadImages(classifier: Classifier, files: readonly string[]): Promise<RgbImage[]> {
  return Promise.all(files.map((f) => classifier.loadImage(f)));
}
