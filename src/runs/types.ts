/** One recorded train or compare run (kept in the same SQLite file as the feature cache). */
export interface RunRecord {
  readonly id: number;
  readonly createdAt: string;
  readonly kind: 'train' | 'compare';
  /** Data folder and separate test folder as given. */
  readonly data: string;
  readonly testDir: string | null;
  readonly base: string;
  /** Every option that shaped the result (split, seed, head settings, ...). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Fingerprint of the labelled data (which photo contents carry which labels). */
  readonly fingerprint: string;
  /** Headline numbers, as fractions (top1, top5, macroF1, cvTop1, scratchTop1, ...). */
  readonly metrics: Readonly<Record<string, number>>;
  /** Seconds per step. */
  readonly timings: Readonly<Record<string, number>>;
  readonly out: string | null;
}

export type NewRun = Omit<RunRecord, 'id' | 'createdAt'>;
