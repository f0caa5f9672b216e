import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { assertOneLineError } from '../helpers/assert.js';
import { loadClassifier } from '../../src/export/classifier.js';
import { HEAD_DEFAULTS } from '../../src/head/train.js';
import { PIXELS_VERSION } from '../../src/image/resize.js';
import { packagePath } from '../../src/util/paths.js';
import { copySubset } from '../helpers/dataset.js';
import { PHOTOS, SHOE_1, writeBrokenFiles } from '../helpers/images.js';

// The real entry point users run, on the built package (npm test builds it first).
const BIN = packagePath('bin', 'headswap.js');
let dir: string;
let env: NodeJS.ProcessEnv;

function headswap(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}


before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'headswap-cli-'));
  env = { ...process.env, HEADSWAP_CACHE: join(dir, 'cache') };
  assert.ok(existsSync(packagePath('dist', 'cli', 'main.js')), 'run `npm run build` before this test');
});
after(() => rm(dir, { recursive: true, force: true }));

describe('headswap CLI', () => {
  it('train, then predict as text, JSON and CSV', async () => {
    await copySubset('train', ['hat', 'shoes'], 6, join(dir, 'photos'));
    await copySubset('test', ['hat', 'shoes'], 4, join(dir, 'held-out'));
    const t = headswap('train', 'photos', '--test-dir', 'held-out', '--json');
    assert.equal(t.code, 0, t.stderr);
    const result = JSON.parse(t.stdout);
    assert.deepEqual(result.classes, ['hat', 'shoes']);
    assert.equal(result.evaluation.count, 8);
    assert.equal(result.head.weights, undefined, 'weights stay in model.onnx');
    assert.ok(existsSync(join(dir, 'photos.model', 'model.onnx')));

    const text = headswap('predict', 'photos.model', 'held-out', '--top', '2');
    assert.equal(text.code, 0, text.stderr);
    const rows = text.stdout.trim().split('\n');
    assert.equal(rows.length, 8);
    assert.match(rows[0]!, /held-out\/hat\/.*\t(hat|shoes) \d+\.\d%  (hat|shoes) \d+\.\d%$/);

    // Rows shaped as the library's classifier.predict() returns them (without the full vector).
    const json = headswap('predict', 'photos.model', SHOE_1, '--json', '--top', '2');
    const row = JSON.parse(json.stdout.trim());
    const classifier = await loadClassifier(join(dir, 'photos.model'));
    const [lib] = await classifier.predict(SHOE_1, { top: 2 }).finally(() => classifier.release());
    assert.deepEqual(Object.keys(row), ['input', 'top']);
    assert.equal(row.input, lib!.input);
    assert.equal(row.top.length, 2);
    row.top.forEach((t: { label: string; index: number; probability: number }, i: number) => {
      assert.deepEqual(Object.keys(t), ['label', 'index', 'probability']);
      assert.equal(t.label, lib!.top[i]!.label);
      assert.equal(t.index, lib!.top[i]!.index);
      assert.ok(Math.abs(t.probability - lib!.top[i]!.probability) < 1e-5, `${t.probability} vs ${lib!.top[i]!.probability}`);
    });
    assert.equal(row.top[0].label, 'shoes');

    const csv = headswap('predict', 'photos.model', 'held-out/shoes', '--csv', '--top', '1');
    const lines = csv.stdout.trim().split('\n');
    assert.equal(lines[0], 'input,label1,p1');
    assert.equal(lines.length, 5);
  });

  it('predict warns when a model was trained on other pixels than today\'s resize makes', async () => {
    const meta = JSON.parse(await readFile(join(dir, 'photos.model', 'headswap.json'), 'utf8'));
    assert.equal(meta.input.pixels, PIXELS_VERSION);
    assert.equal(headswap('predict', 'photos.model', SHOE_1).stderr, '');
    await mkdir(join(dir, 'older.model'));
    for (const f of await readdir(join(dir, 'photos.model'))) if (f !== 'headswap.json') await copyFile(join(dir, 'photos.model', f), join(dir, 'older.model', f));
    delete meta.input.pixels;
    await writeFile(join(dir, 'older.model', 'headswap.json'), JSON.stringify(meta));
    const old = headswap('predict', 'older.model', SHOE_1);
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stderr, /^warning: older\.model: trained on pixels resized by an older headswap \(now version \d+, docs\/PREPROCESSING\.md\).*train it again for exact numbers$/m);
  });

  it('stops quietly when its reader goes away (| head)', async () => {
    const child = spawn(process.execPath, [packagePath('bin', 'headswap.js'), 'train', '--help'], { stdio: ['ignore', 'pipe', 'pipe'], env });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  it('names options as flags in warnings: a --test-dir missing a class', async () => {
    await copySubset('test', ['shoes'], 2, join(dir, 'shoes-only'));
    // Its own cache, so the run history the next tests number stays as it was.
    const t = headswap('train', 'photos', '--test-dir', 'shoes-only', '--out', 'partial.model', '--cache-dir', 'cache-partial');
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stderr, /^warning: --test-dir \S*shoes-only has no photos of 'hat': the test score covers the other 1 of 2 classes$/m);
  });

  it('train prints tables, writes the report, refuses to overwrite without --force', async () => {
    const again = headswap('train', 'photos', '--test-dir', 'held-out');
    assertOneLineError(again, /photos\.model: already exists; choose another --out or pass --force/);
    const forced = headswap('train', 'photos', '--test-dir', 'held-out', '--force', '--report');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /top-1 \d+\.\d% \(95% CI/);
    assert.match(forced.stdout, /confusion matrix/);
    // The default: both bundled networks, one plain pass each over the 20 photos; auto keeps the
    // ensemble here (no single network beats it on these photos), so both are exported.
    assert.match(forced.stdout, /(ensemble mobilenet_v2 \(1280 features\) \+ mobilenet_edgetpu|backbone mobilenet_(v2|edgetpu)) \(1280 features\) · 2 classes · quality auto \(plain\)/);
    assert.match(forced.stdout, /recipe chosen by \d-fold grouped cross-validation on the training photos \([\d.]+s\): mobilenet_v2 [\d.]+% · mobilenet_edgetpu [\d.]+% · mobilenet_v2\+mobilenet_edgetpu [\d.]+% → /);
    assert.match(forced.stdout, /groups \(--group-by auto\): /);
    assert.match(forced.stdout, /each backbone alone on the same test photos: mobilenet_v2 \d+\.\d% · mobilenet_edgetpu \d+\.\d% · the ensemble \d+\.\d%/);
    assert.match(forced.stdout, /features: 0 computed, 40 from cache/);
    assert.match(forced.stdout, /recorded as run 2 /);
    assert.match(forced.stderr, /report written to photos\.model\/report\.html/);
    for (const f of ['report.html', 'confusion.png', 'learningCurves.png']) assert.ok(existsSync(join(dir, 'photos.model', f)), f);
    const rebuilt = headswap('report', 'photos.model', '--out', 'again.html');
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    const page = await readFile(join(dir, 'again.html'), 'utf8');
    assert.match(page, /Confusion/);
    assert.doesNotMatch(page, /src="https?:/);
    // A run id from the history stands for the folder that run wrote.
    const byRun = headswap('report', '2', '--out', 'by-run.html');
    assert.equal(byRun.code, 0, byRun.stderr);
    assert.match(await readFile(join(dir, 'by-run.html'), 'utf8'), /Confusion/);
    assertOneLineError(headswap('report', '99'), /no model folder '99' and no run 99 in the history/);

    const runs = JSON.parse(headswap('runs', '--json').stdout);
    assert.deepEqual(runs.map((r: { id: number }) => r.id), [2, 1]);
    const diff = headswap('runs', 'diff', '1', '2');
    assert.equal(diff.code, 0, diff.stderr);
    assert.match(diff.stdout, /data: same photos and labels/);
    assert.match(diff.stdout, /options: unchanged/);
    assertOneLineError(headswap('runs', 'diff', '1', '99'), /no run 99 in the history/);
  });

  it('predict skips broken files with one line each and goes on', async () => {
    await writeBrokenFiles(join(dir, 'held-out', 'hat'));
    const r = headswap('predict', 'photos.model', 'held-out/hat');
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim().split('\n').length, 4);
    const [summary, ...warnings] = r.stderr.trim().split('\n').reverse();
    assert.equal(warnings.length, 4, r.stderr);
    for (const w of warnings) assert.match(w, /^warning: skipped .*held-out\/hat\/(zero-byte|truncated|not-an-image|bomb)/);
    assert.equal(summary, 'skipped 4 file(s) (listed above); 4 image(s) classified');
  });

  it('classify shows ImageNet labels of the default backbone', () => {
    const r = headswap('classify', SHOE_1, '--top', '3');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /sandal|clog|Loafer|running shoe/);
  });

  it('the bundled MobileNet-EdgeTPU (.tflite, converted on first use): classify, import, inspect', () => {
    const r = headswap('classify', SHOE_1, PHOTOS, '--base', 'mobilenet_edgetpu', '--top', '3', '--json');
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { input: string; top: { label: string; index: number }[] });
    assert.ok(rows.length >= 5);
    for (const row of rows.filter((x) => /shoe/.test(x.input))) assert.match(row.top.map((l) => l.label).join(' | '), /sandal|clog|Loafer|running shoe|cowboy boot|knee pad/, row.input);
    assert.ok(rows.every((x) => x.top.every((t) => Number.isInteger(t.index))));
    const file = packagePath('models', 'mobilenet_edgetpu', 'mobilenet_edgetpu_224_1.0_uint8.tflite');
    const i = headswap('import', file, 'edgetpu.onnx');
    assert.equal(i.code, 0, i.stderr);
    assert.match(i.stdout, /edgetpu\.onnx: TensorFlow Lite model converted to ONNX; .*1001 labels/);
    const t = headswap('inspect', file);
    assert.match(t.stdout, /^MobilenetEdgeTPU\/Conv_1\/Relu\s+DequantizeLinear\s+float32\s+\[1,1280,7,7\]/m);
    assertOneLineError(headswap('import', SHOE_1.replace(/\.jpg$/, '.tflite'), 'x.onnx'), /shoe-1\.tflite not found; give a \.tflite file/);
  });

  it('backbones lists the zoo; inspect shows the feature cut', () => {
    const b = headswap('backbones');
    assert.match(b.stdout, /^mobilenet_v2\s+bundled/m);
    assert.match(b.stdout, /^mobilenet_edgetpu\s+bundled/m);
    assert.match(b.stdout, /^resnet50\s+download/m);
    const i = headswap('inspect', 'mobilenet_v2');
    assert.match(i.stdout, /^627\s+DequantizeLinear\s+float32\s+\[1,1280,7,7\]\s+<- feature cut \(avg-nchw\)/m);
  });

  it('explain writes the layer sheet as PNG and HTML', () => {
    const r = headswap('explain', SHOE_1, '--out', 'shoe.explain.png', '--channels', '3');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'shoe.explain.png')));
    assert.ok(existsSync(join(dir, 'shoe.explain.html')));
    assert.match(r.stdout, /layer 4/);
  });

  it('bad input: one line, non-zero exit, no stack trace', async () => {
    assertOneLineError(headswap('train', 'no-such-folder'), /no-such-folder/);
    assertOneLineError(headswap('predict', 'no-such.model', PHOTOS), /not a headswap model folder/);
    assertOneLineError(headswap('predict', 'photos.model', SHOE_1, '--resize', 'squash'), /^headswap: --resize: only for a \.tflite classifier; photos\.model is a headswap model folder, which brings its own preprocessing; drop the flag$/);
    assertOneLineError(headswap('classify', SHOE_1, '--base', 'nonexistent_net'), /unknown backbone 'nonexistent_net'/);
    assertOneLineError(headswap('classify', SHOE_1, '--base', join(dir, 'missing.onnx')), /missing\.onnx not found/);
    assertOneLineError(headswap('train', 'photos', '--seed', 'abc'), /^headswap: --seed abc is not a whole number ≥ 0; see 'headswap train --help'$/);
    const meta = JSON.parse(await readFile(join(dir, 'photos.model', 'headswap.json'), 'utf8'));
    assert.equal(meta.format, 'headswap-model', 'failed runs left the model intact');
  });

  it('usage errors: one headswap line naming the flag, its range in words and the help', () => {
    assertOneLineError(headswap('train', 'photos', '--epochs', '-3'), /^headswap: --epochs -3 is not a whole number ≥ 1; see 'headswap train --help'$/);
    assertOneLineError(headswap('train', 'photos', '--label-smoothing', '0.7'), /^headswap: --label-smoothing 0\.7 is not a number from 0 to 0\.5; see 'headswap train --help'$/);
    for (const args of [['train'], ['trian'], ['predict', 'photos.model', '--frob'], ['classify', SHOE_1, '--feature', 'x']]) {
      const r = headswap(...args);
      assertOneLineError(r, /; see 'headswap( \w+)? --help'$/);
      assert.doesNotMatch(r.stderr, /error:/, 'one prefix');
    }
  });

  it('help groups the options and shows the defaults; no option where it means nothing', () => {
    const train = headswap('train', '--help');
    assert.equal(train.code, 0, train.stderr);
    const headings = train.stdout.split('\n').filter((l) => /^([\w-]+ )*options:$/i.test(l));
    assert.deepEqual(headings, ['Data options:', 'Backbone options:', 'Head options:', 'Quality options:', 'Output options:', 'Options:']);
    const flat = train.stdout.replace(/\s+/g, ' ');
    assert.match(flat, new RegExp(`--lr <rate> [^-]*\\(default: ${HEAD_DEFAULTS.learningRate}\\)`));
    assert.match(flat, new RegExp(`--epochs <n> [^-]*\\(default: ${HEAD_DEFAULTS.epochs}\\b`));
    assert.match(flat, new RegExp(`--batch-size <n> .*?\\(default: ${HEAD_DEFAULTS.batchSize}\\)`));
    assert.match(flat, /--resize <policy> .*?default: the backbone's own: crop\)/);
    assert.match(flat, /--pixel-limit <n> .*?\(default: \d+ = \d+ megapixels\)/);
    const classify = headswap('classify', '--help');
    assert.equal(classify.code, 0, classify.stderr);
    assert.match(classify.stdout, /--size <HxW>/);
    assert.doesNotMatch(classify.stdout, /--feature/);
    assert.doesNotMatch(headswap('demo', '--help').stdout, /--test-pct|--test-dir|--force/);
  });

  it('data folder mistakes say what was found and name the flag', async () => {
    await copySubset('train', ['hat'], 4, join(dir, 'loose'));
    // The photos of one class, straight in the folder.
    const flat = join(dir, 'flat');
    await mkdir(flat);
    for (const f of await readdir(join(dir, 'loose', 'hat'))) await copyFile(join(dir, 'loose', 'hat', f), join(flat, f));
    assertOneLineError(
      headswap('train', 'flat'),
      /^headswap: '.*flat' holds 4 image\(s\) but no class sub-folders; put each class's photos in a sub-folder named after the class: '.*flat\/cat\/\*\.jpg', '.*flat\/dog\/\*\.jpg'$/,
    );
    assertOneLineError(headswap('train', 'photos', '--test-dir', 'no-such-test'), /^headswap: --test-dir '.*no-such-test' does not exist; check the path$/);
    assertOneLineError(headswap('train', 'photos', '--test-pct', '0'), /^headswap: --test-pct 0 leaves no photos to score the classifier on; give a separate --test-dir or a --test-pct above 0$/);
  });
});
