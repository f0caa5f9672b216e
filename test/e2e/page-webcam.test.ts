/**
 * The page as a Teachable Machine user drives it, in headless Chromium whose fake camera plays a
 * video made of real clothing7 photos (hats, then shoes): record each class from the webcam,
 * remove a photo, rename the classes, train at a chosen quality, then watch the live preview
 * follow the camera. Screenshots: test-output/page-webcam-*.png.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import type { JobView } from '../../src/server/api-types.js';
import { packagePath } from '../../src/util/paths.js';
import { browserUnavailable, fakeCameraArgs, launchChromium, nearestScene, SIGNATURE_GRID, watchedPage, writeFakeCamera, type FakeCameraFrame } from '../helpers/browser.js';
import { CLOTHING7 } from '../helpers/dataset.js';
import { startHeadswap, type RunningServer } from '../helpers/serve.js';

const OUTPUT = packagePath('test-output');
/** Photos recorded per class: enough for a training, a validation and a test photo after one is removed. */
const RECORD = 12;
const JOB_NAME = 'webcam hats & shoes';

const reason = browserUnavailable() ?? (existsSync(packagePath('dist', 'web', 'index.html')) ? undefined : 'the page is not built; run `npm run build`');
let dir: string;
let server: RunningServer;
let browser: Browser;
let page: Page;
let frames: FakeCameraFrame[];
let problems: string[];

/** The scene the camera shows now in `video`, told by its colour signature. */
async function sceneIn(video: string): Promise<string> {
  const signature = await page.evaluate(
    ([selector, grid]) => {
      const v = document.querySelector(selector) as HTMLVideoElement;
      const c = document.createElement('canvas');
      c.width = v.videoWidth;
      c.height = v.videoHeight;
      const g = c.getContext('2d')!;
      g.drawImage(v, 0, 0);
      const { data, width, height } = g.getImageData(0, 0, c.width, c.height);
      const out: number[] = [];
      for (let gy = 0; gy < grid.rows; gy++) {
        for (let gx = 0; gx < grid.cols; gx++) {
          const sum = [0, 0, 0];
          let n = 0;
          for (let y = Math.floor((gy * height) / grid.rows); y < Math.floor(((gy + 1) * height) / grid.rows); y++) {
            for (let x = Math.floor((gx * width) / grid.cols); x < Math.floor(((gx + 1) * width) / grid.cols); x++) {
              const i = (y * width + x) * 4;
              sum[0]! += data[i]!;
              sum[1]! += data[i + 1]!;
              sum[2]! += data[i + 2]!;
              n++;
            }
          }
          out.push(...sum.map((s) => s / n));
        }
      }
      return out;
    },
    [video, SIGNATURE_GRID] as const,
  );
  return nearestScene(frames, signature);
}

/** Holds "Hold to record" of `card` while the camera shows `scene`, until the card has `count` photos. */
async function recordWhileShowing(card: string, scene: string, count: number): Promise<void> {
  const button = page.locator(`${card} .record`);
  const box = (await button.boundingBox())!;
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  let holding = false;
  const deadline = Date.now() + 30_000;
  while (Number(await page.locator(card).getAttribute('data-photos')) < count) {
    assert.ok(Date.now() < deadline, `recorded ${await page.locator(card).getAttribute('data-photos')} of ${count} photos of ${scene}`);
    const showing = (await sceneIn(`${card} video`)) === scene;
    if (showing && !holding) await page.mouse.down();
    if (!showing && holding) await page.mouse.up();
    holding = showing;
    await page.waitForTimeout(40);
  }
  if (holding) await page.mouse.up();
  // Frames already being encoded when the button was let go still arrive.
  await page.waitForTimeout(300);
}

before(async () => {
  if (reason) return;
  dir = await mkdtemp(join(tmpdir(), 'headswap-page-webcam-'));
  const photos = async (c: string): Promise<string[]> => (await readdir(join(CLOTHING7, 'train', c))).sort().slice(0, 3).map((f) => join(CLOTHING7, 'train', c, f));
  // 3 hats then 3 shoes, 1.5 s each at 10 frames a second: a 9 s loop.
  frames = await writeFakeCamera(join(dir, 'camera.y4m'), [
    { name: 'hat', photos: await photos('hat') },
    { name: 'shoes', photos: await photos('shoes') },
  ], { framesPerPhoto: 15 });
  server = await startHeadswap({ dataDir: join(dir, 'data'), cacheDir: join(dir, 'cache') });
  browser = await launchChromium(fakeCameraArgs(join(dir, 'camera.y4m')));
  ({ page, problems } = await watchedPage(browser, (m) => m.type() === 'error'));
  await page.goto(`${server.url}/`);
  await mkdir(OUTPUT, { recursive: true });
});
after(async () => {
  await browser?.close();
  await server?.app.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('webcam training and the live preview', { skip: reason }, () => {
  it('records two classes from the webcam, removes a photo and renames both classes', async () => {
    await page.click('#tab-train');
    await page.fill('#job-name', JOB_NAME);
    // No name typed: "Class 1", "Class 2", as Teachable Machine starts.
    await page.click('#add-class button[type="submit"]');
    await page.click('#add-class button[type="submit"]');
    assert.deepEqual(await page.locator('.class-card').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-class'))), ['Class 1', 'Class 2']);

    for (const [card, scene] of [['.class-card[data-class="Class 1"]', 'hat'], ['.class-card[data-class="Class 2"]', 'shoes']] as const) {
      await page.click(`${card} .webcam-toggle`);
      await page.waitForFunction((sel) => (document.querySelector(`${sel} video`) as HTMLVideoElement | null)?.videoWidth === 320, card, { timeout: 10_000 });
      await recordWhileShowing(card, scene, RECORD);
      const n = Number(await page.locator(card).getAttribute('data-photos'));
      assert.ok(n >= RECORD, `${n} photos`);
      // Each frame taken is a thumbnail at once, a JPEG the browser decodes.
      const thumbs = await page.locator(`${card} .thumb img`).evaluateAll((imgs) => imgs.map((i) => (i as HTMLImageElement).naturalWidth));
      assert.equal(thumbs.length, n);
      assert.ok(thumbs.every((w) => w === 320), thumbs.join(','));
      assert.equal(await page.locator(`${card} .count`).innerText(), `${n} photos`);
    }
    // One recorder at a time: opening the second closed the first.
    assert.equal(await page.locator('.recorder:not([hidden])').count(), 1);
    await page.screenshot({ path: join(OUTPUT, 'page-webcam-recorded.png'), fullPage: true });

    // Remove the newest photo of Class 1 (it may straddle the cut to the shoes).
    const card1 = page.locator('.class-card[data-class="Class 1"]');
    const before1 = Number(await card1.getAttribute('data-photos'));
    const last = card1.locator('.thumb').last();
    const removed = await last.getAttribute('data-name');
    await last.locator('.thumb-remove').click();
    assert.equal(Number(await card1.getAttribute('data-photos')), before1 - 1);
    assert.equal(await card1.locator(`.thumb[data-name="${removed}"]`).count(), 0);
    assert.equal(await card1.locator('.count').innerText(), `${before1 - 1} photos`);

    // Rename: the card's name field; a duplicate name is refused and the old name kept.
    await card1.locator('.class-title').fill('Class 2');
    await card1.locator('.class-title').press('Enter');
    assert.equal(await card1.getAttribute('data-class'), 'Class 1');
    assert.equal(await card1.locator('.class-title').inputValue(), 'Class 1');
    await card1.locator('.class-title').fill('hat');
    await card1.locator('.class-title').press('Enter');
    const card2 = page.locator('.class-card').nth(1);
    await card2.locator('.class-title').fill('shoes');
    await card2.locator('.class-title').press('Enter');
    assert.deepEqual(await page.locator('.class-card').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-class'))), ['hat', 'shoes']);
    await page.click('.class-card[data-class="shoes"] .webcam-close');
    assert.equal(await page.locator('.recorder:not([hidden])').count(), 0);
  });

  it('refuses a file that is not a photo in one friendly line and keeps the class as it was', async () => {
    const card = page.locator('.class-card[data-class="hat"]');
    const count = await card.getAttribute('data-photos');
    const notes = join(dir, 'notes.jpg');
    await writeFile(notes, 'shopping list: hats, shoes');
    await card.locator('input.class-files').setInputFiles(notes);
    await page.waitForSelector('.class-card[data-class="hat"] .class-error:not([hidden])');
    assert.equal(await card.locator('.class-error').innerText(), "'notes.jpg' is not a photo headswap can read (JPEG, PNG, WebP, GIF, AVIF, TIFF); it was not added.");
    assert.equal(await card.getAttribute('data-photos'), count);
  });

  it('trains at the chosen quality, naming each real stage while it moves', async () => {
    assert.equal(await page.locator('#job-quality').inputValue(), 'auto', 'auto by default');
    await page.selectOption('#job-quality', 'plain');
    assert.match(await page.locator('#quality-hint').innerText(), /quickest/);
    await page.uncheck('#job-compare');
    // Every status line and clock reading the page shows while the job runs.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { seen: string[] }).seen = seen;
      for (const id of ['job-status', 'job-elapsed']) {
        new MutationObserver(() => seen.push(`${id}|${document.getElementById(id)!.textContent}`)).observe(document.getElementById(id)!, { childList: true, characterData: true, subtree: true });
      }
    });
    await page.click('#train');
    await page.waitForSelector('#job[data-status="done"] .accuracy', { timeout: 60_000 });
    const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
    const statuses = seen.filter((s) => s.startsWith('job-status|')).map((s) => s.slice('job-status|'.length));
    // Over 16 photos (one batch of features): the count shows at least twice, rising.
    const features = statuses.filter((s) => s.startsWith('Computing features (one backbone pass per photo): '));
    assert.ok(features.length >= 2, statuses.join('\n'));
    const done = features.map((s) => Number(/: (\d+) of \d+ images/.exec(s)?.[1]));
    assert.ok(done.some((d, i) => i > 0 && d > done[i - 1]!), `the count moves: ${done.join(',')}`);
    assert.ok(statuses.some((s) => /^Training the head on mobilenet_\w+: \d+ of \d+ epochs/.test(s)), statuses.join('\n'));
    assert.ok(!statuses.some((s) => /^(Features|Head)\b/.test(s)), 'no raw library step names');
    const clock = seen.filter((s) => s.startsWith('job-elapsed|') && s.length > 'job-elapsed|'.length);
    assert.ok(clock.length >= 1 && /\d+ s in this step · \d+ s since training started/.test(clock[0]!), clock.join('\n'));

    const jobId = await page.locator('#job').getAttribute('data-job');
    const job = (await (await fetch(`${server.url}/v1/jobs/${jobId}`)).json()) as JobView;
    assert.equal(job.quality, 'plain');
    assert.deepEqual(job.classes.map((c) => c.name), ['hat', 'shoes']);
    // A handful of test photos: the accuracy says how little it can tell.
    const n = job.result!.testPhotos;
    assert.ok(n > 0 && n < 10, `${n} test photos`);
    assert.match(await page.locator('#job-result .caveat').innerText(), new RegExp(`^${n} test photos?: too few to tell \\(95% CI \\d+–100%\\); add photos or use cross-validation\\.$`));
    await page.screenshot({ path: join(OUTPUT, 'page-webcam-trained.png'), fullPage: true });
  });

  it('the live preview classifies the webcam stream in the browser and follows what it sees', async (t) => {
    const t0 = Date.now();
    await page.click('#live-model');
    await page.waitForSelector('#live[data-frames]', { timeout: 30_000 });
    t.diagnostic(`first live frame after ${Date.now() - t0} ms`);
    const select = await page.locator('#model-select option:checked').innerText();
    assert.equal(select, `${JOB_NAME} (2 classes)`, 'the model by its given name');
    // Top-1 of the live frames next to what the camera showed then, for a whole loop of the video and more.
    const pairs: [string, string][] = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && (pairs.length < 20 || new Set(pairs.map((p) => p[1])).size < 2)) {
      const top1 = await page.locator('#live').getAttribute('data-top1');
      if (top1) pairs.push([await sceneIn('#live-video'), top1]);
      await page.waitForTimeout(100);
    }
    const labels = new Set(pairs.map((p) => p[1]));
    assert.deepEqual([...labels].sort(), ['hat', 'shoes'], 'the live top-1 changes with the scene');
    const agree = pairs.filter(([scene, top1]) => scene === top1).length / pairs.length;
    // Frames in flight lag the camera by a frame or two, so the cut between scenes costs a few.
    assert.ok(agree > 0.7, `live top-1 matched the scene on ${(agree * 100).toFixed(0)}% of ${pairs.length} frames`);
    const fps = await page.locator('#live-fps').innerText();
    t.diagnostic(`${fps}; top-1 matched the scene on ${(agree * 100).toFixed(0)}% of ${pairs.length} samples`);
    assert.match(fps, /^\d+\.\d frames\/s · \d+ ms a frame$/);
    assert.ok(Number(/^([\d.]+)/.exec(await page.locator('#live-fps').innerText())![1]) > 0.5);
    assert.equal(await page.locator('#live-bars .bar').count(), 2, 'top 3 of 2 classes: both, with bars');
    await page.screenshot({ path: join(OUTPUT, 'page-webcam-live.png'), fullPage: true });
    await page.click('#live-stop');
    assert.equal(await page.locator('#live').getAttribute('data-state'), 'stopped');
    assert.deepEqual(problems, [], 'no console errors');
  });
});
