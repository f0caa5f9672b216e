/**
 * The main job on clothing7 with the default backbone, for every `--quality` level: a cold run
 * (empty feature cache), then a warm run (every feature cached). Prints JSON with wall and CPU
 * seconds, images/s, top-1 and top-5, and each level's cold time as a multiple of `fast`'s (the
 * default is the best level within 3x `fast`).
 *   npm run bench:train [-- base[,base]] [-- levels]      e.g. npm run bench:train -- mobilenet_v2 fast,balanced
 * (default: train()'s own backbones, DEFAULT_BASES)
 * Reads the bundled copy of clothing7 (data/clothing7): train/ to train, test/ to score.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_BASES } from '../src/pipeline/plan.js';
import { DEFAULT_QUALITY, QUALITY_NAMES, type QualityName } from '../src/pipeline/quality.js';
import { train, type TrainResult } from '../src/pipeline/train.js';
import { packagePath } from '../src/util/paths.js';

const data = packagePath('data', 'clothing7', 'train');
const testDir = packagePath('data', 'clothing7', 'test');
const base = process.argv[2]?.split(',') ?? [...DEFAULT_BASES];
const levels = (process.argv[3]?.split(',') ?? QUALITY_NAMES) as QualityName[];
for (const l of levels) if (!QUALITY_NAMES.includes(l)) throw new Error(`unknown quality ${l}; known: ${QUALITY_NAMES.join(', ')}`);
const dir = await mkdtemp(join(tmpdir(), 'headswap-bench-'));

function summary(r: TrainResult, seconds: number, cpuSeconds: number): Record<string, number> {
  const top5 = r.evaluation.topK.find((t) => t.k === 5)?.accuracy ?? NaN;
  return {
    seconds: +seconds.toFixed(2),
    cpuSeconds: +cpuSeconds.toFixed(2),
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
  const results: Record<string, { cold: Record<string, number>; warm: Record<string, number>; ci95Top1: number[] }> = {};
  for (const quality of levels) {
    // A cache of its own per level, so every cold run starts empty.
    const run = async (out: string): Promise<Record<string, number>> => {
      const cpu = process.cpuUsage();
      const t = performance.now();
      const r = await train({ data, testDir, base, quality, cacheDir: join(dir, `cache-${quality}`), out: join(dir, `${quality}-${out}`), record: false });
      const used = process.cpuUsage(cpu);
      last = r;
      return summary(r, (performance.now() - t) / 1000, (used.user + used.system) / 1e6);
    };
    let last: TrainResult | undefined;
    const cold = await run('cold.model');
    const warm = await run('warm.model');
    results[quality] = { cold, warm, ci95Top1: last!.evaluation.top1Ci95.map((x) => +(x * 100).toFixed(1)) };
    console.error(quality, JSON.stringify(results[quality]));
  }
  const fast = results.fast?.cold;
  console.log(
    JSON.stringify(
      {
        dataset: 'clothing7 (train/ -> test/)',
        backbone: base.join(','),
        default: DEFAULT_QUALITY,
        results,
        ...(fast
          ? {
              coldVsFast: Object.fromEntries(
                Object.entries(results).map(([q, r]) => [q, { wall: +(r.cold.seconds! / fast.seconds!).toFixed(2), cpu: +(r.cold.cpuSeconds! / fast.cpuSeconds!).toFixed(2) }]),
              ),
            }
          : {}),
      },
      null,
      2,
    ),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
