import { rename, rm } from 'node:fs/promises';
import { basename, join, sep } from 'node:path';
import type { CompareResult } from '../compare/types.js';
import { HeadswapError, describeError } from '../errors.js';
import { reportFromTrain } from '../report/input.js';
import { makeThumbnails } from '../report/thumbnails.js';
import { writeReport } from '../report/write.js';
import { train, type TrainResult } from '../pipeline/train.js';
import type { JobComparison, JobProgress, JobRecord, JobResult, TestThumbnail } from './api-types.js';
import { slug } from './names.js';
import type { Progress } from '../util/progress.js';

export interface TrainingContext {
  readonly modelsDir: string;
  readonly cacheDir?: string;
  readonly pixelLimit: number;
  readonly compareBudgetSeconds: number;
}

const THUMBNAIL_SIZE = 56;
/** Keeps job.json small when a job has many test photos; the counts still cover them all. */
const MAX_THUMBNAILS = 300;
const SEED = 0;

/** Paths inside the server's data folder mean nothing to the client: they become paths inside the job. */
function hidePaths(text: string, data: string): string {
  return text.split(`${data}${sep}`).join('').split(data).join('the photos');
}

function modelIdOf(job: JobRecord): string {
  return `${slug(job.name, 'model')}-${job.id}`;
}

/** The job's photos live in `jobs/<id>/photos/<class>/`, the layout train() reads. */
function photosDir(jobDir: string): string {
  return join(jobDir, 'photos');
}

async function testThumbnails(r: TrainResult): Promise<TestThumbnail[]> {
  const wrong = new Map(r.evaluation.misclassified.map((m) => [m.file, r.classes.indexOf(m.predicted)]));
  const test = r.files.filter((f) => f.split === 'test').slice(0, MAX_THUMBNAILS);
  const thumbs = await makeThumbnails(test.map((f) => f.path), THUMBNAIL_SIZE);
  return test.flatMap((f) => {
    const t = thumbs.get(f.path);
    return t?.ok ? [{ actual: f.label, predicted: wrong.get(f.path) ?? f.label, src: t.src }] : [];
  });
}

function comparison(c: CompareResult): JobComparison {
  return {
    transferTop1: c.transfer.evaluation.top1,
    transferSeconds: c.transfer.trainSeconds,
    scratchTop1: c.scratch.evaluation.top1,
    scratchSeconds: c.scratch.trainSeconds,
    scratchEpochs: c.scratch.epochs,
    testPhotos: c.transfer.evaluation.count,
    verdict: c.verdict,
  };
}

interface JobPaths {
  /** The photos, `<class>/<file>`. */
  readonly data: string;
  /** Hidden folder the model is written into, renamed to `final` when complete. */
  readonly partial: string;
  readonly final: string;
}

/**
 * One training job: train() on the uploaded photos into a hidden folder, optionally the
 * transfer-vs-scratch comparison, the report, then a rename makes the model appear whole.
 * Errors and warnings name photos by their place in the job, not by server paths.
 */
export async function runTrainingJob(job: JobRecord, jobDir: string, ctx: TrainingContext, onProgress: (p: JobProgress) => void): Promise<JobResult> {
  const modelId = modelIdOf(job);
  const paths: JobPaths = {
    data: photosDir(jobDir),
    partial: join(ctx.modelsDir, `.${modelId}.partial-${process.pid}`),
    final: join(ctx.modelsDir, modelId),
  };
  try {
    return await trainInto(job, paths, ctx, onProgress);
  } catch (err) {
    throw new HeadswapError(hidePaths(describeError(err), paths.data), { cause: err });
  } finally {
    await rm(paths.partial, { recursive: true, force: true });
  }
}

/** The library's step names, as the page names them. */
function stepLabel(step: string): string {
  if (step === 'features') return 'computing features (one backbone pass per photo)';
  if (step === 'augment') return 'computing features of the extra training views';
  if (step === 'mirror') return 'computing features of the mirrored test photos';
  if (step === 'cross-validation') return 'choosing the recipe by cross-validation';
  const head = /^head(, refit on train \+ validation)?: (.+)$/.exec(step);
  if (head) return `training the head on ${head[2]}${head[1] ? ', refit on train + validation' : ''}`;
  return step;
}

/** The library's progress as the page shows it: the real step, its unit and, once known, its ETA. */
function jobProgress(p: Progress, prefix = ''): JobProgress {
  return {
    step: `${prefix}${stepLabel(p.step)}`,
    done: p.done,
    total: p.total,
    unit: p.unit ?? 'images',
    ...(Number.isFinite(p.etaSeconds) ? { etaSeconds: Math.round(p.etaSeconds) } : {}),
  };
}

async function trainInto(job: JobRecord, paths: JobPaths, ctx: TrainingContext, onProgress: (p: JobProgress) => void): Promise<JobResult> {
  const t0 = performance.now();
  const { data, partial, final } = paths;
  const result = await train({
    data,
    out: partial,
    recordAs: final,
    force: true,
    seed: SEED,
    cacheDir: ctx.cacheDir,
    pixelLimit: ctx.pixelLimit,
    ...(job.quality ? { quality: job.quality } : {}),
    onProgress: (p) => onProgress(jobProgress(p)),
  });
  let compared: CompareResult | undefined;
  if (job.compare) {
    onProgress({ step: 'comparison: loading TensorFlow.js', done: 0, total: 0 });
    // Loaded on use: TensorFlow.js and its wasm backend are heavy to import.
    const { compare } = await import('../compare/compare.js');
    compared = await compare({
      data,
      seed: SEED,
      cacheDir: ctx.cacheDir,
      budgetSeconds: ctx.compareBudgetSeconds,
      ...(job.quality ? { quality: job.quality } : {}),
      record: false,
      // compare() first repeats the transfer training with its features computed afresh (its real cost), then trains the CNN.
      onProgress: (p) => onProgress(jobProgress(p, p.step === 'training from scratch' || p.step.startsWith('decoding') ? 'comparison: ' : 'comparison, transfer learning: ')),
    });
  }
  onProgress({ step: 'writing the report', done: 0, total: 0 });
  await writeReport(reportFromTrain(result, job.name, compared), partial);
  const thumbnails = await testThumbnails(result);
  // A job re-run after a crash may find its own earlier model: the new one replaces it.
  await rm(final, { recursive: true, force: true });
  await rename(partial, final);
  return {
    modelId: basename(final),
    classes: result.classes,
    top1: result.evaluation.top1,
    top1Ci95: result.evaluation.top1Ci95,
    testPhotos: result.evaluation.count,
    confusion: result.evaluation.confusion,
    testThumbnails: thumbnails,
    compare: compared ? comparison(compared) : null,
    warnings: result.warnings.map((w) => hidePaths(w, data)),
    seconds: (performance.now() - t0) / 1000,
  };
}
