/**
 * How honest each accuracy estimate from the training folder is, on sets whose test photos are
 * the later files of each class (and clothing7 and the clothing10 draws, split at random by their
 * publisher). Per set, with train() at default settings (`--quality auto`, `--group-by auto`):
 * - held-out top-1 on the later photos, against `--cv 5` with grouped folds at random (the
 *   estimate train prints first) and in name order;
 * - the same with `--group-by none` (plain random folds, what headswap did before groups);
 * - the default 80/10/10 split's own test score (no --test-dir) against what that model then
 *   scores on the later photos;
 * - each backbone's plain probe (`--base <one> --quality plain`) on the later photos, and the
 *   time the recipe choice adds (its cross-validation).
 * Prints JSON.
 *   node --import tsx bench/estimates.ts [--sets a,b] > estimates.json
 * With --sweep: instead, CV top-1 of the ensemble's plain features at several near-duplicate
 * thresholds (--thresholds 0,0.1,0.15) for both fold kinds, to choose SIMILARITY_THRESHOLD.
 * BENCH_CACHE=<folder> keeps the feature cache between runs (default: a temp folder).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Backbone } from '../src/backbone/backbone.js';
import { groupPhotos } from '../src/dataset/groups.js';
import { scanDataset } from '../src/dataset/scan.js';
import { crossValidate, FOLD_KINDS } from '../src/evaluate/cv.js';
import { Classifier } from '../src/export/classifier.js';
import { openFeatureCache } from '../src/features/cache.js';
import { PLAIN_VIEW, extractViewsOf } from '../src/features/extract.js';
import { pairedGain, type RecipeScore } from '../src/pipeline/auto.js';
import { DEFAULT_BASES } from '../src/pipeline/plan.js';
import { train } from '../src/pipeline/train.js';
import { predictFiles } from '../src/predict/files.js';
import { packagePath } from '../src/util/paths.js';
import { materializeClothing10 } from './accuracy-data.js';
import { evalSets } from './eval-sets.js';

const { values } = parseArgs({ options: { sets: { type: 'string' }, thresholds: { type: 'string' }, folds: { type: 'string' }, sweep: { type: 'boolean' } } });
const thresholds = (values.thresholds ?? '0,0.05,0.1,0.15,0.2,0.25,0.3').split(',').map(Number);
const folds = Number(values.folds ?? 5);

const tmp = await mkdtemp(join(tmpdir(), 'headswap-estimates-'));
const cacheDir = process.env.BENCH_CACHE ?? join(tmp, 'cache');
const pct = (x: number): number => +(x * 100).toFixed(1);

const materialize = (draw: number): Promise<{ train: string; test: string }> => materializeClothing10(draw, tmp);

/** Top-1 of an exported model on a folder of class folders (labels by the model's classes). */
async function scoreOn(model: string, dir: string): Promise<number> {
  const classifier = await Classifier.load(model);
  try {
    const scanned = await scanDataset(dir, { classes: classifier.labels });
    const truth = new Map(scanned.files.map((f) => [f.path, f.label]));
    let right = 0;
    for await (const p of predictFiles(classifier, scanned.files.map((f) => f.path))) {
      if (classifier.labels.indexOf(p.top[0]!.label) === truth.get(p.input)) right++;
    }
    return right / scanned.files.length;
  } finally {
    await classifier.release();
  }
}

interface SetDirs { readonly name: string; readonly role: string; readonly train: string; readonly test: string }

async function estimates(set: SetDirs) {
  const common = { data: set.train, seed: 0, cacheDir, record: false } as const;
  const auto = await train({ ...common, testDir: set.test, out: false, cv: folds });
  const none = await train({ ...common, testDir: set.test, out: false, cv: folds, groupBy: 'none' });
  const out = join(tmp, `${set.name}.model`);
  const split = await train({ ...common, out, force: true });
  const splitLater = await scoreOn(out, set.test);
  const probes = await Promise.all(DEFAULT_BASES.map(async (base) => ({ base, top1: pct((await train({ ...common, testDir: set.test, out: false, base, quality: 'plain' })).evaluation.top1) })));
  const ensemble = await train({ ...common, testDir: set.test, out: false, base: DEFAULT_BASES, quality: 'plain' });
  const heldOf = new Map<string, number>([...probes.map((p) => [p.base, p.top1] as const), [DEFAULT_BASES.join('+'), pct(ensemble.evaluation.top1)]]);
  const held = auto.evaluation.top1;
  return {
    set: set.name,
    role: set.role,
    heldOutTop1: pct(held),
    recipe: auto.recipe?.chosen.name,
    recipeCandidates: auto.recipe?.candidates.map((c) => ({ name: c.name, cvTop1: pct(c.cvTop1) })),
    autoSeconds: +((auto.timings.autoMs ?? 0) / 1000).toFixed(2),
    groups: { count: auto.groups.count, largest: auto.groups.largest, grouped: auto.groups.grouped },
    cvGroupedRandom: { top1: pct(auto.crossValidation!.top1.mean), gap: pct(auto.crossValidation!.top1.mean - held) },
    cvGroupedOrdered: { top1: pct(auto.crossValidationOrdered!.top1.mean), gap: pct(auto.crossValidationOrdered!.top1.mean - held) },
    cvRandomUngrouped: { top1: pct(none.crossValidation!.top1.mean), heldOut: pct(none.evaluation.top1), gap: pct(none.crossValidation!.top1.mean - none.evaluation.top1) },
    defaultSplit: { ownTest: pct(split.evaluation.top1), onLater: pct(splitLater), gap: pct(split.evaluation.top1 - splitLater) },
    plainProbes: probes,
    ensemblePlain: heldOf.get(DEFAULT_BASES.join('+')),
    // The rule not kept: the cheapest candidate unless a dearer one wins by one standard error.
    cheapestFirst: auto.recipe ? { recipe: cheapestFirst(auto.recipe.candidates).name, heldOut: heldOf.get(cheapestFirst(auto.recipe.candidates).name) } : undefined,
    belowBestProbe: +(Math.max(...probes.map((p) => p.top1)) - pct(held)).toFixed(1),
  };
}

function cheapestFirst(candidates: readonly RecipeScore[]): RecipeScore {
  let chosen = candidates[0]!;
  for (const c of candidates.slice(1)) {
    const g = pairedGain(c, chosen);
    if (g.mean > 0 && g.mean > g.se) chosen = c;
  }
  return chosen;
}

async function sweep(set: SetDirs, backbones: readonly Backbone[]) {
  const cache = openFeatureCache(cacheDir);
  try {
    const heldOut = await train({ data: set.train, testDir: set.test, seed: 0, out: false, cacheDir, record: false, quality: 'plain', base: DEFAULT_BASES });
    const scanned = await scanDataset(set.train);
    const feats = await extractViewsOf(backbones, scanned.files.map((f) => f.path), [PLAIN_VIEW], { cache });
    const byPath = feats.map((r) => new Map(r.features.map((f) => [f.path, f.vector])));
    const files = scanned.files.filter((f) => byPath.every((m) => m.has(f.path)));
    const rows = files.map((f) => byPath.map((m) => ({ vector: m.get(f.path)!, label: f.label })));
    const out = [];
    for (const t of thresholds) {
      const groups = t > 0 ? groupPhotos(files, 'similarity', [], rows.map((r) => r.map((x) => x.vector)), t) : undefined;
      for (const kind of FOLD_KINDS) {
        const items = files.map((f, i) => ({ relPath: f.relPath, label: f.label, rows: rows[i]!, group: groups?.of.get(f.relPath) }));
        const cv = await crossValidate(items, scanned.classes, folds, { seed: 0, kind });
        out.push({ kind, threshold: t, groups: cv.groups, largest: groups?.largest ?? 1, ungroupedClasses: cv.ungroupedClasses.length, top1: pct(cv.top1.mean), gap: pct(cv.top1.mean - heldOut.evaluation.top1) });
      }
    }
    return { set: set.name, role: set.role, photos: files.length, heldOutTop1: pct(heldOut.evaluation.top1), estimates: out };
  } finally {
    cache.close();
  }
}

const backbones = values.sweep ? await Promise.all(DEFAULT_BASES.map((b) => Backbone.load(b, { cacheDir }))) : [];
try {
  const built = await evalSets();
  const sets: SetDirs[] = [
    { name: 'clothing7', role: 'choose', train: packagePath('data', 'clothing7', 'train'), test: packagePath('data', 'clothing7', 'test') },
    ...built.map((s) => ({ name: s.name as string, role: s.name === 'stellarium-deepsky5' ? 'confirm' : 'choose', train: s.train, test: s.test })),
    ...(await Promise.all([0, 1, 2].map(async (d) => ({ name: `clothing10-draw${d}`, role: 'confirm', ...(await materialize(d)) })))),
  ].filter((s) => !values.sets || values.sets.split(',').includes(s.name));
  const out = [];
  for (const set of sets) {
    const row = values.sweep ? await sweep(set, backbones) : await estimates(set);
    console.error(JSON.stringify(row));
    out.push(row);
  }
  console.log(JSON.stringify({ folds, ...(values.sweep ? { thresholds } : {}), sets: out }, null, 2));
} finally {
  for (const b of backbones) await b.release();
  await rm(tmp, { recursive: true, force: true });
}
