import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatEvaluation, table } from '../../src/evaluate/format.js';
import { evaluate, topKAccuracy, trueClassRank, wilson, type Prediction } from '../../src/evaluate/metrics.js';

function pred(file: string, label: number, probs: number[]): Prediction {
  return { file, label, probs: Float32Array.from(probs) };
}

function close(actual: number | null, expected: number, tol = 1e-6): void {
  assert.ok(actual !== null && Math.abs(actual - expected) <= tol, `expected ${expected} ± ${tol}, got ${actual}`);
}

const LABELS = ['cat', 'dog', 'bird'];

// Hand-checked 3-class example (true → predicted, rank of the true class):
//   cat1  cat→cat    [.7 .2 .1]    rank 0
//   cat2  cat→dog    [.3 .6 .1]    rank 1 (conf .6)
//   dog1  dog→dog    [.1 .8 .1]    rank 0
//   dog2  dog→cat    [.5 .1 .4]    rank 2 (conf .5)
//   bird1 bird→bird  [.1 .1 .8]    rank 0
//   bird2 bird→dog   [.05 .9 .05]  rank 2: dog is higher, cat ties and wins by lower index (conf .9)
// Confusion [true][pred]: cat [1 1 0], dog [1 1 0], bird [0 1 1]
// Column sums (times predicted): cat 2, dog 3, bird 1
//   cat:  P 1/2, R 1/2, F1 1/2
//   dog:  P 1/3, R 1/2, F1 2·(1/6)/(5/6) = 2/5
//   bird: P 1/1, R 1/2, F1 2·(1/2)/(3/2) = 2/3
// macro-F1 = (1/2 + 2/5 + 2/3)/3 = (15 + 12 + 20)/90 = 47/90
// top-1 = 3/6; top-2 = ranks < 2 = 4/6; top-3 = 1
// log loss = -mean(ln .7, ln .3, ln .8, ln .1, ln .8, ln .05)
const EXAMPLE = [
  pred('photos/cat/cat1.jpg', 0, [0.7, 0.2, 0.1]),
  pred('photos/cat/cat2.jpg', 0, [0.3, 0.6, 0.1]),
  pred('photos/dog/dog1.jpg', 1, [0.1, 0.8, 0.1]),
  pred('photos/dog/dog2.jpg', 1, [0.5, 0.1, 0.4]),
  pred('photos/bird/bird1.jpg', 2, [0.1, 0.1, 0.8]),
  pred('photos/bird/bird2.jpg', 2, [0.05, 0.9, 0.05]),
];

describe('evaluate: hand-checked 3-class example', () => {
  const ev = evaluate(EXAMPLE, LABELS);

  it('builds the confusion matrix [true][predicted]', () => {
    assert.deepEqual(ev.confusion, [
      [1, 1, 0],
      [1, 1, 0],
      [0, 1, 1],
    ]);
  });

  it('computes per-class precision, recall, F1 and support', () => {
    assert.deepEqual(
      ev.perClass.map((c) => [c.label, c.support]),
      [
        ['cat', 2],
        ['dog', 2],
        ['bird', 2],
      ],
    );
    const expected = [
      [1 / 2, 1 / 2, 1 / 2],
      [1 / 3, 1 / 2, 2 / 5],
      [1, 1 / 2, 2 / 3],
    ];
    for (const [i, [p, r, f]] of expected.entries()) {
      const m = ev.perClass[i];
      assert.ok(m);
      close(m.precision, p!);
      close(m.recall, r!);
      close(m.f1, f!);
    }
    close(ev.macroF1, 47 / 90);
  });

  it('computes top-1, top-k and the Wilson interval of top-1', () => {
    assert.equal(ev.count, 6);
    close(ev.top1, 3 / 6);
    assert.deepEqual(
      ev.topK.map((t) => t.k),
      [1, 2, 3],
    );
    close(ev.topK[0]!.accuracy, 3 / 6);
    close(ev.topK[1]!.accuracy, 4 / 6);
    close(ev.topK[2]!.accuracy, 1);
    assert.deepEqual(ev.top1Ci95, wilson(3, 6));
  });

  it('lists mistakes most confident first with both probabilities', () => {
    assert.deepEqual(
      ev.misclassified.map((m) => [m.file, m.trueLabel, m.predicted]),
      [
        ['photos/bird/bird2.jpg', 'bird', 'dog'],
        ['photos/cat/cat2.jpg', 'cat', 'dog'],
        ['photos/dog/dog2.jpg', 'dog', 'cat'],
      ],
    );
    close(ev.misclassified[0]!.confidence, 0.9);
    close(ev.misclassified[0]!.trueProb, 0.05);
    close(ev.misclassified[2]!.confidence, 0.5);
    close(ev.misclassified[2]!.trueProb, 0.1);
  });

  it('computes mean cross-entropy', () => {
    const expected = -(Math.log(0.7) + Math.log(0.3) + Math.log(0.8) + Math.log(0.1) + Math.log(0.8) + Math.log(0.05)) / 6;
    close(ev.logLoss, expected, 1e-5);
  });
});

describe('evaluate: edge cases', () => {
  it('breaks probability ties by lower class index, in top-1 and top-k', () => {
    const third = 1 / 3;
    const preds = [pred('a', 0, [third, third, third]), pred('b', 2, [third, third, third])];
    assert.equal(trueClassRank(preds[0]!), 0);
    assert.equal(trueClassRank(preds[1]!), 2);
    const ev = evaluate(preds, LABELS);
    assert.deepEqual(ev.confusion, [
      [1, 0, 0],
      [0, 0, 0],
      [1, 0, 0],
    ]);
    assert.deepEqual(
      ev.topK.map((t) => t.accuracy),
      [0.5, 0.5, 1],
    );
  });

  it('caps k at the class count and at maxK', () => {
    const two = [pred('a', 0, [0.6, 0.4]), pred('b', 1, [0.7, 0.3])];
    assert.deepEqual(
      evaluate(two, ['x', 'y']).topK.map((t) => t.k),
      [1, 2],
    );
    assert.deepEqual(
      evaluate(two, ['x', 'y'], { maxK: 1 }).topK.map((t) => t.k),
      [1],
    );
    const seven = Array.from({ length: 7 }, (_, i) => `c${i}`);
    const uniform = Array.from({ length: 7 }, () => 1 / 7);
    assert.deepEqual(
      evaluate([pred('a', 6, uniform)], seven).topK.map((t) => t.k),
      [1, 2, 3, 4, 5],
    );
    assert.deepEqual(
      evaluate([pred('a', 6, uniform)], seven, { maxK: 10 }).topK.map((t) => t.accuracy),
      [0, 0, 0, 0, 0, 0, 1],
    );
  });

  it('gives precision 0 to a never-predicted class and no scores at all to a class without test images', () => {
    // Everything predicted as x. x: P 1/2, R 1, F1 2/3. y: never predicted → P 0, R 0, F1 0.
    // z has no test images (support 0): nothing measured, so null, and macro-F1 = (2/3 + 0) / 2 = 1/3.
    const ev = evaluate([pred('a', 0, [0.9, 0.05, 0.05]), pred('b', 1, [0.6, 0.3, 0.1])], ['x', 'y', 'z']);
    const [x, y, z] = ev.perClass;
    close(x!.precision, 0.5);
    close(x!.f1, 2 / 3);
    assert.equal(y!.precision, 0);
    assert.equal(y!.f1, 0);
    assert.deepEqual(z, { label: 'z', support: 0, precision: null, recall: null, f1: null });
    close(ev.macroF1, 1 / 3);
  });

  it('keeps a class without test images absent even when photos were predicted as it', () => {
    // b is predicted as z, which has no test images: z's column shows it, z's scores stay absent.
    const ev = evaluate([pred('a', 0, [0.8, 0.1, 0.1]), pred('b', 1, [0.1, 0.2, 0.7])], ['x', 'y', 'z']);
    assert.equal(ev.confusion[1]![2], 1);
    assert.deepEqual([ev.perClass[2]!.precision, ev.perClass[2]!.recall, ev.perClass[2]!.f1], [null, null, null]);
    // x: F1 1; y: recall 0, F1 0; z left out: (1 + 0) / 2.
    close(ev.macroF1, 0.5);
    // JSON (headswap.json) keeps the nulls instead of dropping or zeroing them.
    assert.match(JSON.stringify(ev.perClass[2]), /"precision":null,"recall":null,"f1":null/);
  });

  it('clamps the log loss of a zero probability at 1e-7', () => {
    const ev = evaluate([pred('a', 1, [1, 0])], ['x', 'y']);
    close(ev.logLoss, -Math.log(1e-7));
  });

  it('keeps input order among equally confident mistakes', () => {
    const ev = evaluate([pred('first', 0, [0.2, 0.8]), pred('second', 0, [0.2, 0.8])], ['x', 'y']);
    assert.deepEqual(
      ev.misclassified.map((m) => m.file),
      ['first', 'second'],
    );
  });

  it('rejects empty and malformed input', () => {
    assert.throws(() => evaluate([], LABELS), /no predictions/);
    assert.throws(() => evaluate([pred('a', 0, [0.5, 0.5])], LABELS), /2 probabilities for 3 classes/);
    assert.throws(() => evaluate([pred('a', 3, [0.2, 0.3, 0.5])], LABELS), /label 3/);
    assert.throws(() => evaluate([pred('a', 0, [Number.NaN, 0.5, 0.5])], LABELS), /non-finite/);
    assert.throws(() => evaluate(EXAMPLE, LABELS, { maxK: 0 }), /maxK/);
    assert.throws(() => topKAccuracy(EXAMPLE, 0), /k must be/);
  });
});

describe('wilson', () => {
  it('matches known intervals', () => {
    const [lo, hi] = wilson(8, 10);
    close(lo, 0.4902, 1e-4);
    close(hi, 0.9433, 1e-4);
    const [lo5, hi5] = wilson(5, 10, 1.96);
    close(lo5, 0.2366, 1e-4);
    close(hi5, 0.7634, 1e-4);
  });

  it('stays inside [0, 1] at the extremes', () => {
    // 0/10, z = 1.96: upper = (z²/n) / (1 + z²/n) = 0.38416 / 1.38416
    const [lo0, hi0] = wilson(0, 10, 1.96);
    assert.equal(lo0, 0);
    close(hi0, 0.38416 / 1.38416, 1e-9);
    const [lo10, hi10] = wilson(10, 10, 1.96);
    close(lo10, 1 - 0.38416 / 1.38416, 1e-9);
    assert.equal(hi10, 1);
    assert.deepEqual(wilson(0, 0), [0, 1]);
  });

  it('narrows as n grows', () => {
    const [a, b] = wilson(8, 10);
    const [c, d] = wilson(800, 1000);
    assert.ok(d - c < b - a);
  });

  it('rejects impossible counts', () => {
    assert.throws(() => wilson(11, 10));
    assert.throws(() => wilson(-1, 10));
    assert.throws(() => wilson(1.5, 10));
  });
});

describe('table', () => {
  it('aligns columns left and right', () => {
    const lines = table(
      [
        ['name', 'n'],
        ['a', '1'],
        ['longer', '100'],
      ],
      ['l', 'r'],
    ).split('\n');
    assert.deepEqual(lines, ['name      n', 'a         1', 'longer  100']);
  });

  it('counts an emoji as one column and trims trailing spaces', () => {
    const lines = table([
      ['🐕', 'x'],
      ['ab', 'y'],
      ['abc', ''],
    ]).split('\n');
    assert.equal(lines[0], '🐕    x');
    assert.equal(lines[1], 'ab   y');
    assert.equal(lines[2], 'abc');
  });
});

describe('formatEvaluation', () => {
  const ev = evaluate(EXAMPLE, LABELS);
  const text = formatEvaluation(ev);
  const sections = text.trimEnd().split('\n\n');

  it('prints the summary with top-1, its CI and the image count', () => {
    const [lo, hi] = wilson(3, 6);
    const summary = sections[0] ?? '';
    assert.match(summary, /^top-1 50\.0% \(95% CI /);
    assert.ok(summary.includes(`${(lo * 100).toFixed(1)}-${(hi * 100).toFixed(1)}%)`), summary);
    assert.ok(summary.includes('on 6 test images'), summary);
    assert.ok(summary.includes('macro-F1 52.2%'), summary);
    // With 3 classes top-3 is always 100%, so it is not shown.
    assert.ok(!summary.includes('top-3'), summary);
  });

  it('shows top-3 and top-5 when there are more classes than k', () => {
    const names = Array.from({ length: 6 }, (_, i) => `c${i}`);
    const probs = [0.3, 0.25, 0.2, 0.15, 0.06, 0.04];
    const summary = formatEvaluation(evaluate([pred('a', 3, probs)], names)).split('\n')[0] ?? '';
    assert.match(summary, /top-1 0\.0% .* · top-3 0\.0% · top-5 100\.0% on 1 test image$/);
  });

  it('prints one per-class row with precision, recall and F1', () => {
    const lines = (sections[1] ?? '').split('\n');
    assert.equal(lines.length, 1 + LABELS.length);
    assert.match(lines[0] ?? '', /class\s+support\s+precision\s+recall\s+F1/);
    assert.match(lines[2] ?? '', /^dog\s+2\s+33\.3%\s+50\.0%\s+40\.0%$/);
    assert.match(lines[3] ?? '', /^bird\s+2\s+100\.0%\s+50\.0%\s+66\.7%$/);
  });

  it('prints the confusion matrix with a legend, rows true and columns predicted', () => {
    const lines = (sections[2] ?? '').split('\n');
    assert.match(lines[0] ?? '', /rows: true.*columns: predicted/);
    assert.equal(lines.length, 2 + LABELS.length);
    assert.match(lines[1] ?? '', /cat\s+dog\s+bird$/);
    assert.match(lines[4] ?? '', /bird\s+\.\s+1\s+1$/);
  });

  it('prints the most confident mistakes by basename and counts the rest', () => {
    const out = formatEvaluation(ev, { maxMisclassified: 2 });
    const mistakes = out.trimEnd().split('\n\n')[3] ?? '';
    const lines = mistakes.split('\n');
    assert.match(lines[0] ?? '', /^3 misclassified/);
    assert.match(lines[2] ?? '', /^\s*bird2\.jpg\s+bird\s+dog\s+90\.0%\s+5\.0%$/);
    assert.ok(!mistakes.includes('photos/'), mistakes);
    assert.ok(!mistakes.includes('dog2.jpg'), mistakes);
    assert.equal(lines.at(-1), '... and 1 more');
    assert.ok(!text.includes('more'), 'default limit of 10 shows all three');
  });

  it('keeps lines short with long unicode class names', () => {
    const long = ['Très longue catégorie de chiens 🐕 numéro un', 'Très longue catégorie de chiens 🐕 numéro deux', 'chat'];
    const out = formatEvaluation(evaluate(EXAMPLE, long));
    for (const line of out.split('\n')) assert.ok(Array.from(line).length <= 100, line);
    assert.ok(!out.includes(long[0]!), 'long names are truncated');
    assert.ok(out.includes('…'));
    assert.ok(!out.includes('\uFFFD') && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(out), 'no split surrogate pairs');
  });

  it('prints no scores for a class without test images, says why, and counts macro-F1 over the rest', () => {
    // A test folder holding only cat and dog photos, for a model of three classes.
    const out = formatEvaluation(evaluate(EXAMPLE.slice(0, 4), LABELS));
    const [summary, classes] = out.split('\n\n');
    const bird = (classes ?? '').split('\n').find((l) => l.startsWith('bird')) ?? '';
    assert.match(bird, /^bird\s+0\s+–\s+–\s+–$/);
    assert.ok(!bird.includes('%'), bird);
    assert.match(classes ?? '', /^– = no test images of this class/m);
    assert.match(summary ?? '', /macro-F1 \S+% \(over the 2 of 3 classes with test images\)/);
    assert.ok(!sections[0]!.includes('over the'), 'no remark when every class has test images');
  });

  it('lists the top confusions instead of a matrix for many classes', () => {
    const names = Array.from({ length: 13 }, (_, i) => `class${i}`);
    const probs = (hot: number) => names.map((_, j) => (j === hot ? 0.88 : 0.01));
    const out = formatEvaluation(evaluate([pred('a', 0, probs(5)), pred('b', 0, probs(5)), pred('c', 1, probs(1))], names));
    const section = out.split('\n\n')[2] ?? '';
    assert.match(section, /omitted for 13 classes/);
    assert.match(section, /class0\s+class5\s+2$/m);
    assert.equal(section.split('\n').length, 3);
  });
});
