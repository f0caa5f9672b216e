/**
 * "What to do next": advice computed from one run's numbers. Every step states the numbers it
 * follows from (counts, recall, intervals, cross-validation), so none is generic; a step whose
 * numbers are missing (no mistakes, no recipe, too few classes to correlate) is left out.
 */
import { wilson, type Misclassified } from '../evaluate/metrics.js';
import type { ReportInput } from './types.js';

export type NextStepKind = 'untested' | 'weak-class' | 'confused-pair' | 'photos-vs-recall' | 'fit-gap' | 'recipe' | 'cv-vs-test' | 'test-size' | 'no-mistakes';

export interface NextStep {
  readonly kind: NextStepKind;
  /** One or two sentences of plain text (escaped when rendered). */
  readonly text: string;
  /** Test photos the step is about: the most confused pair's mistakes. */
  readonly photos?: readonly Misclassified[];
}

/** The weakest classes named, at most. */
const MAX_WEAK = 3;
/** Below this many classes with test photos, a rank correlation means nothing. */
const MIN_CORRELATED_CLASSES = 4;
/** Rank correlation from which recall is said to follow the photo counts, and below which not at all. */
const FOLLOWS = 0.5;
const UNRELATED = 0.2;
/** Training accuracy below this: the features do not separate the classes (a fit, not a data, problem). */
const POOR_FIT = 0.9;
/** The precision a test score is worth aiming at: ±5 points (95%). */
const TARGET_HALF_WIDTH = 0.05;
const MAX_SUGGESTED_TEST_PHOTOS = 100_000;
/** A test interval wider than ±10 points cannot confirm that test and training photos are alike. */
const WIDE_TEST_HALF_WIDTH = 0.1;
/** Quality levels below `balanced`, which adds augmented training views. */
const UNAUGMENTED = new Set(['plain', 'fast']);

/** The steps, in reading order: what is unmeasured, what is weak, why, and what would help. */
export function nextSteps(input: ReportInput): NextStep[] {
  const ev = input.evaluation;
  const training = trainingCounts(input);
  const steps: NextStep[] = [];

  const untested = ev.perClass.filter((m) => m.support === 0).map((m) => m.label);
  if (untested.length > 0) {
    steps.push({
      kind: 'untested',
      text: `${untested.length} of ${input.classes.length} classes have no test photos (${untested.join(', ')}): their accuracy is not measured and macro-F1 leaves them out; add test photos of them to know how they do.`,
    });
  }

  if (ev.misclassified.length === 0) {
    const [lo, hi] = ev.top1Ci95;
    steps.push({ kind: 'no-mistakes', text: `No test photo was misclassified (${ev.count} of ${ev.count}; 95% CI ${pct(lo)}–${pct(hi)}).` });
  } else {
    steps.push(...weakClasses(input, training));
    const pair = confusedPair(input);
    if (pair) steps.push(pair);
  }

  const correlation = photosVsRecall(input, training);
  if (correlation) steps.push(correlation);
  const gap = fitGap(input);
  if (gap) steps.push(gap);
  const recipe = recipeStep(input);
  if (recipe) steps.push(recipe);
  const cv = cvVsTest(input);
  if (cv) steps.push(cv);
  steps.push(testSize(input));
  return steps;
}

/** Photos each class was trained on (train and validation: the head is refit on both). */
function trainingCounts(input: ReportInput): number[] {
  const counts = input.classes.map(() => 0);
  for (const f of input.dataset.files) if (f.split !== 'test' && counts[f.label] !== undefined) counts[f.label]!++;
  return counts;
}

/** Classes whose recall is below the overall top-1, lowest first (fewer training photos first on ties). */
function weakClasses(input: ReportInput, training: readonly number[]): NextStep[] {
  const ev = input.evaluation;
  const median = medianOf(training);
  const weak = ev.perClass
    .map((m, c) => ({ m, c, recall: m.recall }))
    .filter((x): x is { m: typeof x.m; c: number; recall: number } => x.recall !== null && x.recall < ev.top1)
    .sort((a, b) => a.recall - b.recall || (training[a.c] ?? 0) - (training[b.c] ?? 0) || a.c - b.c)
    .slice(0, MAX_WEAK);
  return weak.map(({ m, c, recall }) => {
    const row = ev.confusion[c] ?? [];
    const hits = row[c] ?? 0;
    const [lo, hi] = wilson(hits, m.support);
    const photos = training[c] ?? 0;
    // Said when the class's own interval still holds the overall score: weakest, but maybe by chance.
    const noise = hi >= ev.top1 ? `, an interval that still holds the overall ${pct(ev.top1)}` : '';
    let text = `${m.label}: ${photos} training photo${photos === 1 ? '' : 's'}, ${whole(recall)} recall (${hits} of ${m.support} test photo${m.support === 1 ? '' : 's'}, 95% CI ${whole(lo)}–${whole(hi)}${noise})`;
    if (photos < median) {
      text += ` — fewer training photos than most classes (median ${formatCount(median)}): add photos of ${m.label}.`;
    } else {
      const [index, n] = topMiss(row, c);
      const other = input.classes[index] ?? String(index);
      const misses = m.support - hits;
      const went = n === misses ? (misses === 1 ? 'its one miss went' : `all ${misses} of its misses went`) : `${n} of its ${misses} misses went`;
      text += ` — as many training photos as most classes (median ${formatCount(median)}), yet ${went} to ${other}: add ${m.label} photos that show what sets it apart from ${other}.`;
    }
    return { kind: 'weak-class' as const, text };
  });
}

/** The wrong prediction a class's photos got most often, and how often (lower index on ties). */
function topMiss(row: readonly number[], own: number): [number, number] {
  let best = -1;
  let count = 0;
  for (const [j, n] of row.entries()) if (j !== own && n > count) [best, count] = [j, n];
  return [best, count];
}

/**
 * The two classes mistaken for each other most often, both directions added, with those photos;
 * only when one pair leads (more than one mistake, more than any other pair).
 */
function confusedPair(input: ReportInput): NextStep | undefined {
  const ev = input.evaluation;
  const pairs: { a: number; b: number; ab: number; ba: number }[] = [];
  for (let a = 0; a < ev.confusion.length; a++) {
    for (let b = a + 1; b < ev.confusion.length; b++) {
      const ab = ev.confusion[a]?.[b] ?? 0;
      const ba = ev.confusion[b]?.[a] ?? 0;
      if (ab + ba > 0) pairs.push({ a, b, ab, ba });
    }
  }
  // Stable: equal counts keep class order.
  pairs.sort((x, y) => y.ab + y.ba - (x.ab + x.ba));
  const [best, next] = pairs;
  if (!best) return undefined;
  const total = best.ab + best.ba;
  if (total < 2 || (next && next.ab + next.ba === total)) {
    const most = total === 1 ? 'one each' : `at most ${total} each`;
    return { kind: 'confused-pair', text: `No pair of classes stands out: the ${ev.misclassified.length} mistakes spread over ${pairs.length} pairs of classes, ${most}.` };
  }
  const [a, b] = [input.classes[best.a] ?? String(best.a), input.classes[best.b] ?? String(best.b)];
  const ways = [best.ab > 0 && `${best.ab} ${a} taken for ${b}`, best.ba > 0 && `${best.ba} ${b} taken for ${a}`].filter((x) => x !== false);
  return {
    kind: 'confused-pair',
    text: `Most confused: ${a} and ${b}, ${total} of the ${ev.count} test photos (${ways.join(', ')}); photos of either that show their difference clearly would help most. These are the photos:`,
    photos: ev.misclassified.filter((m) => (m.trueLabel === a && m.predicted === b) || (m.trueLabel === b && m.predicted === a)),
  };
}

/** Whether the classes with fewer training photos are the weaker ones (Spearman's rank correlation). */
function photosVsRecall(input: ReportInput, training: readonly number[]): NextStep | undefined {
  const pairs = input.evaluation.perClass.flatMap((m, c) => (m.recall === null ? [] : [[training[c] ?? 0, m.recall] as const]));
  if (pairs.length < MIN_CORRELATED_CLASSES) return undefined;
  const rho = spearman(pairs.map((p) => p[0]), pairs.map((p) => p[1]));
  if (rho === undefined) return undefined;
  const measured = `(rank correlation ${rho.toFixed(2)} over ${pairs.length} classes)`;
  const text =
    rho >= FOLLOWS
      ? `Recall rises with the number of training photos ${measured}: more photos of the smaller classes are the likeliest gain.`
      : rho < UNRELATED
        ? `Recall does not follow the number of training photos ${measured}: more photos of the small classes alone are unlikely to lift the weak ones.`
        : `Recall follows the number of training photos only loosely ${measured}: more photos of the small classes may help, but they are not the whole story.`;
  return { kind: 'photos-vs-recall', text };
}

/** Training fit against the test score: overfitting calls for data, a poor fit for better features. */
function fitGap(input: ReportInput): NextStep | undefined {
  const fit = input.history.at(-1)?.accuracy;
  if (fit === undefined) return undefined;
  const ev = input.evaluation;
  const [lo, hi] = ev.top1Ci95;
  const quality = typeof input.options.quality === 'string' ? input.options.quality : undefined;
  const test = `${pct(ev.top1)} of the test photos (95% CI ${pct(lo)}–${pct(hi)})`;
  if (fit < POOR_FIT) {
    return {
      kind: 'fit-gap',
      text: `The head gets only ${pct(fit)} of its own training photos right (and ${test}): the features do not separate these classes well, so richer features (${quality === 'plain' ? '--quality fast or balanced adds region features; ' : ''}another backbone with --base) are likelier to help than more of the same photos.`,
    };
  }
  if (fit > hi) {
    const augment = quality !== undefined && UNAUGMENTED.has(quality) ? `; --quality balanced also trains on mirrored and cropped copies of each photo (this model: ${quality})` : '';
    return {
      kind: 'fit-gap',
      text: `The head gets ${pct(fit)} of its training photos right but ${test}: it fits the photos it saw better than it generalizes, which more photos per class address${augment}.`,
    };
  }
  return {
    kind: 'fit-gap',
    text: `The head's fit to its training photos (${pct(fit)}) is within the test score's interval (${test}): it is not overfitting, so richer features (another --quality level or backbone) are likelier to help than more of the same photos.`,
  };
}

/** The recipe candidates' cross-validation: does the choice of network matter on these photos? */
function recipeStep(input: ReportInput): NextStep | undefined {
  const r = input.recipe;
  const chosen = r?.candidates.find((c) => c.name === r.chosen);
  const others = r?.candidates.filter((c) => c.name !== r.chosen) ?? [];
  if (!r || !chosen || others.length === 0) return undefined;
  const other = others.reduce((a, b) => (b.cvTop1 > a.cvTop1 ? b : a));
  const d = chosen.cvTop1 - other.cvTop1;
  const noise = Math.max(chosen.cvStd, other.cvStd);
  const scores = `${r.folds}-fold cross-validation on the training photos scored the chosen ${chosen.name} ${pct(chosen.cvTop1)} and ${other.name} ${pct(other.cvTop1)}`;
  const apart = `${points(Math.abs(d))} apart`;
  const text =
    Math.abs(d) <= noise
      ? `${scores}, ${apart}, within the folds' spread (std up to ${points(noise)}): another choice of network is unlikely to change much.`
      : d > 0
        ? `${scores}, ${apart}, more than the folds' spread (std up to ${points(noise)}): the choice of network matters on these photos, and the chosen one is ahead.`
        : `${scores}, ${apart}, more than the folds' spread (std up to ${points(noise)}): try --base ${other.name}.`;
  return { kind: 'recipe', text };
}

/**
 * Cross-validation on the training photos against the held-out score. They disagree only when
 * the CV mean is outside the test interval by more than one fold standard deviation too.
 */
function cvVsTest(input: ReportInput): NextStep | undefined {
  const ev = input.evaluation;
  const chosen = input.recipe?.candidates.find((c) => c.name === input.recipe?.chosen);
  const cv = input.crossValidation ? { mean: input.crossValidation.top1.mean, std: input.crossValidation.top1.std } : chosen && { mean: chosen.cvTop1, std: chosen.cvStd };
  if (!cv) return undefined;
  const [lo, hi] = ev.top1Ci95;
  const estimate = `Cross-validation on the training photos (${pct(cv.mean)}, fold std ${points(cv.std)})`;
  const test = `the test score (${pct(ev.top1)}, 95% CI ${pct(lo)}–${pct(hi)})`;
  const text =
    cv.mean - cv.std > hi
      ? `${estimate} is above ${test}: the test photos differ from the training photos, so photos like the test ones would help more than more of the same.`
      : cv.mean + cv.std < lo
        ? `${estimate} is below ${test}: the test photos are easier than the training ones; expect nearer ${pct(cv.mean)} on photos like the training set.`
        : (hi - lo) / 2 > WIDE_TEST_HALF_WIDTH
          ? `${estimate} is within the noise of ${test}, which is too wide to tell whether the test photos differ from the training ones.`
          : `${estimate} agrees with ${test} within their noise: the test photos behave like the training ones.`;
  return { kind: 'cv-vs-test', text };
}

/** How precise the test score is, and how many test photos would make it ±5 points. */
function testSize(input: ReportInput): NextStep {
  const ev = input.evaluation;
  const [lo, hi] = ev.top1Ci95;
  const half = (hi - lo) / 2;
  if (half <= TARGET_HALF_WIDTH) {
    return {
      kind: 'test-size',
      text: `On ${ev.count} test photos the score is known to ±${points(half)} (95% CI ${pct(lo)}–${pct(hi)}): a change of more than that, from more photos or another --quality level, would show.`,
    };
  }
  const needed = photosFor(ev.top1, TARGET_HALF_WIDTH);
  return {
    kind: 'test-size',
    text: `The test score rests on ${ev.count} photos: its 95% interval spans ${points(hi - lo)} (${pct(lo)}–${pct(hi)}), so a gain of a few points, e.g. from another --quality level, could not be seen on it${needed === undefined ? '' : `; about ${needed.toLocaleString('en-US')} test photos would narrow it to ±${points(TARGET_HALF_WIDTH)}`}.`,
  };
}

/** The fewest photos whose Wilson interval at accuracy `p` is at most ±half wide. */
export function photosFor(p: number, half: number): number | undefined {
  // Steps of about 1%: the answer is "about N", and the search stays short for large N.
  for (let n = 1; n <= MAX_SUGGESTED_TEST_PHOTOS; n += Math.max(1, Math.floor(n / 100))) {
    const [lo, hi] = wilson(Math.round(p * n), n);
    if ((hi - lo) / 2 <= half) return n;
  }
  return undefined;
}

/** Spearman's rank correlation (average ranks for ties); undefined when either side is constant. */
export function spearman(xs: readonly number[], ys: readonly number[]): number | undefined {
  const rx = ranks(xs);
  const ry = ranks(ys);
  const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(rx);
  const my = mean(ry);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (const [i, x] of rx.entries()) {
    const dx = x - mx;
    const dy = (ry[i] ?? my) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx === 0 || syy === 0 ? undefined : sxy / Math.sqrt(sxx * syy);
}

function ranks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => ({ x, i })).sort((a, b) => a.x - b.x);
  const out = new Array<number>(xs.length).fill(0);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && order[end + 1]!.x === order[start]!.x) end++;
    for (let k = start; k <= end; k++) out[order[k]!.i] = (start + end) / 2 + 1;
    start = end + 1;
  }
  return out;
}

function medianOf(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function formatCount(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

/** Overall scores, as elsewhere in the report. */
function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** One class's scores: on a few dozen photos a decimal would be false precision. */
function whole(x: number): string {
  return `${Math.round(x * 100)}%`;
}

/** An accuracy difference in percentage points. */
function points(x: number): string {
  return `${(x * 100).toFixed(1).replace(/\.0$/, '')} points`;
}
