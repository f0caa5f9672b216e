/**
 * kill -9 of `train` at random points, many times: after each kill the feature cache must open
 * and pass integrity_check with every row the right length, the model folder must be absent or
 * whole, and an uninterrupted rerun must reproduce the uninterrupted reference run exactly
 * (split, head weights, metrics, model.onnx bytes) and leave no temp folder behind.
 *   npm run bench:crash -- [iterations=100] [seed=1]
 * Prints one line per iteration on stderr and a JSON summary on stdout; exits 1 if any failed.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLOTHING7, copySubset } from '../test/helpers/dataset.js';
import { createRng } from '../src/util/random.js';
import { crashIteration, makeReference, type IterationReport, type KillMode } from '../test/helpers/crash.js';

const iterations = Number(process.argv[2] ?? 100);
const seed = Number(process.argv[3] ?? 1);
if (!Number.isInteger(iterations) || iterations < 1 || !Number.isInteger(seed)) {
  process.stderr.write('usage: npm run bench:crash -- [iterations=100] [seed=1]\n');
  process.exit(2);
}

/** Random points most often; the phase-targeted kills make sure every phase is hit. */
const WEIGHTS: readonly [KillMode, number][] = [
  ['random', 0.4],
  ['extract', 0.2],
  ['head', 0.15],
  ['export-model', 0.1],
  ['export-metadata', 0.05],
  ['export-swap', 0.1],
];

function pick(random: () => number): KillMode {
  let r = random();
  for (const [mode, w] of WEIGHTS) if ((r -= w) < 0) return mode;
  return 'random';
}

const dir = await mkdtemp(join(tmpdir(), 'headswap-crash-loop-'));
const start = performance.now();
const reports: IterationReport[] = [];
try {
  const data = join(dir, 'photos');
  const classes = (await readdir(join(CLOTHING7, 'train'))).sort();
  await copySubset('train', classes, 8, data);
  const ref = await makeReference({ data, cacheDir: join(dir, 'cache'), out: join(dir, 'photos.model'), seed, batchSize: 4 });
  const random = createRng(seed);
  for (let i = 0; i < iterations; i++) {
    const mode = pick(random);
    const r = await crashIteration(ref, mode, random);
    reports.push(r);
    const status = r.problems.length === 0 ? 'ok' : `FAIL: ${r.problems.join(' | ')}`;
    process.stderr.write(`${i + 1}/${iterations} ${mode} ${r.outcome} in ${r.phase}; rerun computed ${r.rerunComputed} · ${status}\n`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const count = <K extends string>(key: (r: IterationReport) => K): Record<string, number> =>
  reports.reduce<Record<string, number>>((acc, r) => ((acc[key(r)] = (acc[key(r)] ?? 0) + 1), acc), {});
const failed = reports.filter((r) => r.problems.length > 0);
process.stdout.write(
  `${JSON.stringify(
    {
      iterations: reports.length,
      seed,
      seconds: Math.round((performance.now() - start) / 1000),
      passed: reports.length - failed.length,
      failed: failed.length,
      byMode: count((r) => r.mode),
      byOutcome: count((r) => r.outcome),
      // Where the kills landed (extraction steps grouped).
      byPhase: count((r) => r.phase.replace(/ \d+\/\d+$/, '')),
      failures: failed.map((r) => ({ mode: r.mode, phase: r.phase, problems: r.problems })),
    },
    null,
    2,
  )}\n`,
);
process.exitCode = failed.length > 0 ? 1 : 0;
