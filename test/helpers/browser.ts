import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import sharp from 'sharp';

/** The Debian package's binary (`.ci/run` installs it with apt-get); playwright downloads nothing. */
export const CHROMIUM = '/usr/bin/chromium';

/** Why browser tests cannot run here, or undefined when they can. */
export function browserUnavailable(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found; install the Debian package 'chromium' to run the browser test`;
}

/**
 * Headless Chromium with every feature that phones home turned off, so recorded requests are the
 * page's own. `extraArgs` add switches, e.g. a fake webcam.
 */
export function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/**
 * A 1200x900 page whose uncaught errors, and the console messages `counts` picks, collect in
 * `problems`: a test ends by asserting there were none.
 */
export async function watchedPage(browser: Browser, counts: (m: ConsoleMessage) => boolean): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const problems: string[] = [];
  page.on('console', (m) => {
    if (counts(m)) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return { page, problems };
}

/** Chromium's switches for a webcam that needs no permission prompt; with `video`, the camera shows that .y4m file (looped). */
export function fakeCameraArgs(video?: string): string[] {
  return ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', ...(video ? [`--use-file-for-fake-video-capture=${video}`] : [])];
}

export interface FakeCameraScene {
  /** What the camera is looking at: the name the test records it as. */
  readonly name: string;
  /** Real photos shown one after another, each moving slowly (a hand-held camera). */
  readonly photos: readonly string[];
}

/** Frames of one scene in the video, in order, with the coarse colour signature a test can match a live frame against. */
export interface FakeCameraFrame {
  readonly scene: string;
  readonly signature: readonly number[];
}

/** Grid of mean colours that tells the scenes' frames apart (see frameSignature in the page). */
export const SIGNATURE_GRID = { cols: 4, rows: 3 } as const;

function signatureOf(rgb: Uint8Array, width: number, height: number): number[] {
  const { cols, rows } = SIGNATURE_GRID;
  const out: number[] = [];
  for (let gy = 0; gy < rows; gy++) {
    for (let gx = 0; gx < cols; gx++) {
      const sum = [0, 0, 0];
      let n = 0;
      for (let y = Math.floor((gy * height) / rows); y < Math.floor(((gy + 1) * height) / rows); y++) {
        for (let x = Math.floor((gx * width) / cols); x < Math.floor(((gx + 1) * width) / cols); x++) {
          const i = (y * width + x) * 3;
          sum[0]! += rgb[i]!;
          sum[1]! += rgb[i + 1]!;
          sum[2]! += rgb[i + 2]!;
          n++;
        }
      }
      out.push(...sum.map((s) => s / n));
    }
  }
  return out;
}

/**
 * Writes a YUV4MPEG2 (.y4m) video for Chromium's fake camera: each scene's photos in turn,
 * `framesPerPhoto` frames each, zooming and panning a little from frame to frame so no two frames
 * are the same file. Returns every frame's scene and signature (the video loops in this order).
 */
export async function writeFakeCamera(path: string, scenes: readonly FakeCameraScene[], options: { width?: number; height?: number; fps?: number; framesPerPhoto?: number } = {}): Promise<FakeCameraFrame[]> {
  const width = options.width ?? 320;
  const height = options.height ?? 240;
  const per = options.framesPerPhoto ?? 10;
  const file = await open(path, 'w');
  const frames: FakeCameraFrame[] = [];
  try {
    await file.write(`YUV4MPEG2 W${width} H${height} F${options.fps ?? 10}:1 Ip A1:1 C420jpeg\n`);
    for (const scene of scenes) {
      for (const photo of scene.photos) {
        const base = await sharp(photo).rotate().resize(Math.round(width * 1.25), Math.round(height * 1.25), { fit: 'cover' }).removeAlpha().raw().toBuffer();
        for (let f = 0; f < per; f++) {
          const left = Math.round((f / Math.max(1, per - 1)) * (width * 0.25));
          const top = Math.round(((per - 1 - f) / Math.max(1, per - 1)) * (height * 0.25));
          const rgb = await sharp(base, { raw: { width: Math.round(width * 1.25), height: Math.round(height * 1.25), channels: 3 } }).extract({ left, top, width, height }).raw().toBuffer();
          frames.push({ scene: scene.name, signature: signatureOf(rgb, width, height) });
          // JPEG's full-range BT.601, which C420jpeg declares; chroma averaged over 2x2 blocks.
          const y = Buffer.alloc(width * height);
          const u = Buffer.alloc((width / 2) * (height / 2));
          const v = Buffer.alloc((width / 2) * (height / 2));
          for (let i = 0; i < width * height; i++) y[i] = Math.round(0.299 * rgb[i * 3]! + 0.587 * rgb[i * 3 + 1]! + 0.114 * rgb[i * 3 + 2]!);
          for (let by = 0; by < height / 2; by++) {
            for (let bx = 0; bx < width / 2; bx++) {
              let cb = 0;
              let cr = 0;
              for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
                const i = ((by * 2 + dy) * width + bx * 2 + dx) * 3;
                const [r, g, b] = [rgb[i]!, rgb[i + 1]!, rgb[i + 2]!];
                cb += 128 - 0.168736 * r - 0.331264 * g + 0.5 * b;
                cr += 128 + 0.5 * r - 0.418688 * g - 0.081312 * b;
              }
              u[by * (width / 2) + bx] = Math.max(0, Math.min(255, Math.round(cb / 4)));
              v[by * (width / 2) + bx] = Math.max(0, Math.min(255, Math.round(cr / 4)));
            }
          }
          await file.write(Buffer.concat([Buffer.from('FRAME\n'), y, u, v]));
        }
      }
    }
  } finally {
    await file.close();
  }
  return frames;
}

/** The scene whose frame signature is nearest to `signature` (a live frame's, from the page). */
export function nearestScene(frames: readonly FakeCameraFrame[], signature: readonly number[]): string {
  let best = frames[0]!;
  let bestDistance = Infinity;
  for (const f of frames) {
    const d = f.signature.reduce((sum, x, i) => sum + (x - (signature[i] ?? 0)) ** 2, 0);
    if (d < bestDistance) [best, bestDistance] = [f, d];
  }
  return best.scene;
}
