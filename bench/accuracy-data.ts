/**
 * The data sets of bench/accuracy.ts. clothing7 is the bundled one. The second set is drawn from
 * ../shared/datasets/clothing10-all (beside the repository) (same source, 10 classes, thousands of photos): its train/
 * subsampled to 10-33 photos per class (seeded), scored on its test/. clothing7 was itself cut
 * from that pool (its photos re-encoded, so their sha256 differ but the UUID file names match:
 * all 150 of clothing7/train are in clothing10/train, and 83 of clothing7/test in clothing10/test),
 * so every clothing10 photo whose file name OR sha256 matches a clothing7 photo is excluded from
 * both sides. The drawn file lists are written to a temp folder, never into the repository.
 */
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { scanDataset, type ImageFile } from '../src/dataset/scan.js';
import { splitUnit } from '../src/dataset/split.js';
import { createRng } from '../src/util/random.js';
import { sha256 } from '../src/util/fs.js';
import { packagePath } from '../src/util/paths.js';

/** clothing10-all from the workplace's shared data beside the repository (`../shared`), or $CLOTHING10. */
export const CLOTHING10 = process.env.CLOTHING10 ?? packagePath('..', 'shared', 'datasets', 'clothing10-all');

export interface BenchSet {
  readonly name: string;
  readonly classes: readonly string[];
  readonly train: readonly ImageFile[];
  readonly test: readonly ImageFile[];
  readonly note?: string;
}

export async function clothing7(): Promise<BenchSet> {
  const train = await scanDataset(packagePath('data', 'clothing7', 'train'));
  const test = await scanDataset(packagePath('data', 'clothing7', 'test'), { classes: train.classes });
  return { name: 'clothing7', classes: train.classes, train: train.files, test: test.files };
}

async function hashes(files: readonly ImageFile[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of files) out.set(f.path, sha256(await readFile(f.path)));
  return out;
}

/**
 * Draw `draw` of the second set: per class a seeded size in [minPerClass, maxPerClass] (uneven
 * like clothing7's), files chosen by a seeded hash of their path. Test = all of clothing10/test
 * minus the overlap with clothing7.
 */
export async function clothing10Subset(draw: number, tempDir: string, minPerClass = 10, maxPerClass = 33): Promise<BenchSet & { excluded: { byName: number; bySha: number } }> {
  const c7 = await clothing7();
  const c7Files = [...c7.train, ...c7.test];
  const c7Names = new Set(c7Files.map((f) => basename(f.path)));
  const c7Shas = new Set((await hashes(c7Files)).values());
  const train = await scanDataset(join(CLOTHING10, 'train'));
  const test = await scanDataset(join(CLOTHING10, 'test'), { classes: train.classes });
  const shas = await hashes([...train.files, ...test.files]);
  let byName = 0;
  let bySha = 0;
  const clean = (f: ImageFile): boolean => {
    if (c7Names.has(basename(f.path))) return (byName++, false);
    if (c7Shas.has(shas.get(f.path)!)) return (bySha++, false);
    return true;
  };
  const trainPool = train.files.filter(clean);
  const testFiles = test.files.filter(clean);
  // Also no photo in both our train and test (clothing10's own splits could share one).
  const testShas = new Set(testFiles.map((f) => shas.get(f.path)!));
  const rng = createRng(1000 + draw);
  const chosen: ImageFile[] = [];
  for (let c = 0; c < train.classes.length; c++) {
    const size = minPerClass + Math.floor(rng() * (maxPerClass - minPerClass + 1));
    const inClass = trainPool
      .filter((f) => f.label === c && !testShas.has(shas.get(f.path)!))
      .sort((a, b) => splitUnit(draw, a.relPath) - splitUnit(draw, b.relPath));
    chosen.push(...inClass.slice(0, size));
  }
  await writeFile(
    join(tempDir, `clothing10-draw${draw}.json`),
    JSON.stringify({ draw, classes: train.classes, train: chosen.map((f) => f.relPath), test: testFiles.map((f) => f.relPath) }, null, 1),
  );
  return { name: `clothing10-draw${draw}`, classes: train.classes, train: chosen, test: testFiles, excluded: { byName, bySha } };
}

/** A clothing10 draw as class folders under `tempDir` (copies: the scan follows no link out of a data folder). */
export async function materializeClothing10(draw: number, tempDir: string): Promise<{ train: string; test: string }> {
  const set = await clothing10Subset(draw, tempDir);
  const root = join(tempDir, `clothing10-draw${draw}`);
  for (const [split, files] of [['train', set.train], ['test', set.test]] as const) {
    for (const f of files) {
      const dest = join(root, split, set.classes[f.label]!, f.relPath.split('/').pop()!);
      await mkdir(join(dest, '..'), { recursive: true });
      await cp(f.path, dest);
    }
  }
  return { train: join(root, 'train'), test: join(root, 'test') };
}
