import cliProgress from 'cli-progress';
import { HeadswapError } from '../errors.js';
import type { Progress } from '../util/progress.js';
import { flagOf } from './flags.js';
import { escapeControl } from '../util/text.js';

/**
 * Writes one line to stderr (messages the user reads; stdout is for results). Control characters
 * (a newline or an escape sequence inside a file name) are escaped, so it stays one line.
 */
export function info(line: string): void {
  process.stderr.write(`${escapeControl(line)}\n`);
}

export function warn(line: string): void {
  process.stderr.write(`warning: ${escapeControl(line)}\n`);
}

/** The closing line of a command that passed over files: how many, so none goes unnoticed. */
export function skippedSummary(skipped: number, done: number, verb: string): void {
  if (skipped > 0) info(`skipped ${skipped} file(s) (listed above); ${done} image(s) ${verb}`);
}

function seconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  return s < 60 ? `${s.toFixed(0)}s` : `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;
}

/**
 * A progress bar on a terminal (images/s and ETA); on a pipe or in CI, one summary line per step
 * instead of redraws that would flood a log.
 */
export function progressBar(): { update: (p: Progress) => void; stop: () => void } {
  let bar: cliProgress.SingleBar | undefined;
  let last: Progress | undefined;
  const tty = process.stderr.isTTY;
  // Closes the current step: its bar on a terminal, its summary line elsewhere.
  const finish = (): void => {
    bar?.stop();
    bar = undefined;
    if (last && !tty) {
      const unit = last.unit ?? 'images';
      info(`${last.step}: ${last.done}/${last.total} ${unit} · ${last.rate.toFixed(last.rate < 10 ? 1 : 0)} ${unit}/s`);
    }
    last = undefined;
  };
  return {
    update(p) {
      // A job runs several steps (features, augmented views, mirror images): one bar each.
      if (last && last.step !== p.step) finish();
      last = p;
      if (!tty) return;
      const payload = { step: p.step, rate: p.rate.toFixed(p.rate < 10 ? 1 : 0), eta: seconds(p.etaSeconds), unit: p.unit ?? 'images' };
      if (!bar) {
        bar = new cliProgress.SingleBar(
          { format: '{step} [{bar}] {value}/{total} · {rate} {unit}/s · ETA {eta}', stream: process.stderr, hideCursor: true, clearOnComplete: false },
          cliProgress.Presets.shades_classic,
        );
        bar.start(p.total, p.done, payload);
      } else {
        bar.update(p.done, payload);
      }
    },
    stop: finish,
  };
}

/**
 * Turns any failure into one line on stderr and an exit code; never a stack trace. The options a
 * library message names (`out`, `force: true`) are spelled as the flags the user typed (`--out`, `--force`).
 */
export function reportError(err: unknown): number {
  if (err instanceof HeadswapError) {
    info(`headswap: ${err.spell(flagOf)}`);
    return 1;
  }
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  info(`headswap: unexpected error: ${message} (please report it with the command you ran)`);
  return 70;
}

export function percent(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`;
}
