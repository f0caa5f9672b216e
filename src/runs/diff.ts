import type { RunRecord } from './types.js';

export interface RunDiff {
  readonly a: RunRecord;
  readonly b: RunRecord;
  /** Options whose values differ (absent = null). */
  readonly options: readonly { readonly key: string; readonly a: unknown; readonly b: unknown }[];
  readonly sameData: boolean;
  readonly sameBackbone: boolean;
  /** Every metric of either run with its change b - a (NaN where one side lacks it). */
  readonly metrics: readonly { readonly key: string; readonly a: number | null; readonly b: number | null; readonly delta: number | null }[];
}

/** What changed between two runs, and how the numbers moved. */
export function diffRuns(a: RunRecord, b: RunRecord): RunDiff {
  const keys = (x: object, y: object): string[] => [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
  const options = keys(a.options, b.options)
    .map((key) => ({ key, a: a.options[key] ?? null, b: b.options[key] ?? null }))
    .filter((o) => JSON.stringify(o.a) !== JSON.stringify(o.b));
  const metrics = keys(a.metrics, b.metrics).map((key) => {
    const va = a.metrics[key] ?? null;
    const vb = b.metrics[key] ?? null;
    return { key, a: va, b: vb, delta: va === null || vb === null ? null : vb - va };
  });
  return { a, b, options, sameData: a.fingerprint === b.fingerprint, sameBackbone: a.base === b.base, metrics };
}
