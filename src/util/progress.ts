/** Progress of a long step, reported to a callback (the CLI draws a bar from it). */
export interface Progress {
  readonly step: string;
  readonly done: number;
  readonly total: number;
  /** Items per second since the step started. */
  readonly rate: number;
  /** Seconds left at the current rate (Infinity before the first item). */
  readonly etaSeconds: number;
  /** What is counted: 'images' unless said (e.g. 'folds'). */
  readonly unit?: string;
}

export type ProgressCallback = (p: Progress) => void;

/** Builds Progress reports for one step with its own clock. */
export function progressTracker(step: string, total: number, callback?: ProgressCallback, unit?: string): (done: number) => void {
  const start = performance.now();
  return (done) => {
    if (!callback) return;
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    callback({ step, done, total, rate, etaSeconds: rate > 0 ? (total - done) / rate : Infinity, ...(unit ? { unit } : {}) });
  };
}
