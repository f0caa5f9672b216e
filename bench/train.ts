/**
 * The main job on clothing7 with the default backbone: a cold run (empty feature cache), then a
 * warm run (every feature cached). Prints JSON with seconds, images/s, top-1 and top-5.
 *   npm run bench:train
 * Reads the bundled copy of clothing7 (data/clothing7): train/ to train, test/ to score.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train, type TrainResult } from '../src/train.js';
import { packagePath } from '../src/util/paths.js';

const data = packagePath('data', 'clothing7', 'train');
const testDir = packagePath('data', 'clothing7', 'test');
const base = process.argv[2] ?? 'mobilenet_v2';
const dir = await mkdtemp(join(tmpdir(), 'headswap-bench-'));

function summary(r: TrainResult, seconds: number): Record<string, number> {
  const top5 = r.evaluation.topK.find((t) => t.k === 5)?.accuracy ?? NaN;
  return {
    seconds: +seconds.toFixed(2),
    featureSeconds: +(r.timings.featuresMs / 1000).toFixed(2),
    headSeconds: +(r.timings.headMs / 1000).toFixed(2),
    imagesPerSecond: +r.timings.imagesPerSecond.toFixed(0),
    computed: r.features.computed,
    cached: r.features.cached,
    top1: +(r.evaluation.top1 * 100).toFixed(1),
    top5: +(top5 * 100).toFixed(1),
  };
}

try {
  const run = async (out: string): Promise<[TrainResult, number]> => {
    const t = performance.now();
    const r = await train({ data, testDir, base, cacheDir: join(dir, 'cache'), out: join(dir, out) });
    return [r, (performance.now() - t) / 1000];
  };
  const [cold, coldS] = await run('cold.model');
  const [warm, warmS] = await run('warm.model');
  console.log(
    JSON.stringify(
      {
        dataset: 'clothing7 (train/ -> test/)',
        backbone: base,
        images: { train: cold.evaluation.count === 0 ? 0 : Object.values(cold.counts).reduce((a, c) => a + c.train + c.validation, 0), test: cold.evaluation.count },
        cold: summary(cold, coldS),
        warm: summary(warm, warmS),
        ci95Top1: cold.evaluation.top1Ci95.map((x) => +(x * 100).toFixed(1)),
      },
      null,
      2,
    ),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
