import { Command } from 'commander';
import { HeadswapError } from '../errors.js';
import { table } from '../evaluate/format.js';
import { diffRuns } from '../runs/diff.js';
import { openRunStore, type RunStore } from '../runs/store.js';
import type { RunRecord } from '../runs/types.js';
import { percent } from './output.js';
import { int } from './parse.js';
import { cacheDirOption } from './usage.js';

export function withStore<T>(dir: string | undefined, fn: (store: RunStore) => T): T {
  const store = openRunStore(dir);
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

function metric(r: RunRecord, key: string): string {
  const v = r.metrics[key];
  return v === undefined ? '-' : percent(v);
}

function value(v: unknown): string {
  return v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v);
}

/** Fractions (accuracies, F1) print as points; everything else as a plain number. */
function formatMetric(key: string, v: number | null, signed = false): string {
  if (v === null) return '-';
  const sign = signed && v > 0 ? '+' : '';
  if (key === 'testImages') return `${sign}${v}`;
  if (key === 'logLoss') return `${sign}${v.toFixed(3)}`;
  return `${sign}${(v * 100).toFixed(1)}${signed ? ' pt' : '%'}`;
}

export function registerRuns(program: Command): void {
  const runs = program.command('runs').description('the history of train and compare runs (kept beside the feature cache)');
  runs
    .command('list', { isDefault: true })
    .description('list recorded runs, newest first')
    .option('--limit <n>', 'how many', int(1), 20)
    .addOption(cacheDirOption('where the run history is'))
    .option('--json', 'print JSON')
    .action((f: { limit: number; cacheDir?: string; json?: boolean }) => {
      const list = withStore(f.cacheDir, (s) => s.listRuns(f.limit));
      if (f.json) return void process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      if (list.length === 0) return void process.stdout.write('no runs recorded yet\n');
      const rows = list.map((r) => [String(r.id), r.createdAt.slice(0, 19).replace('T', ' '), r.kind, r.data, r.base, metric(r, 'top1'), metric(r, 'top5'), `${(r.timings.total ?? 0).toFixed(1)}s`, r.out ?? '-']);
      process.stdout.write(`${table([['id', 'when (UTC)', 'kind', 'data', 'backbone', 'top-1', 'top-5', 'time', 'model'], ...rows], ['r'])}\n`);
    });
  runs
    .command('diff')
    .description('what changed between two runs and how the metrics moved')
    .argument('<a>', 'run id', int(1))
    .argument('<b>', 'run id', int(1))
    .addOption(cacheDirOption('where the run history is'))
    .option('--json', 'print JSON')
    .action((a: number, b: number, f: { cacheDir?: string; json?: boolean }) => {
      const [ra, rb] = withStore(f.cacheDir, (s) => [s.getRun(a), s.getRun(b)]);
      const missing = !ra ? a : !rb ? b : undefined;
      if (missing !== undefined || !ra || !rb) throw new HeadswapError(`no run ${missing} in the history; 'headswap runs' lists them`);
      const d = diffRuns(ra, rb);
      if (f.json) return void process.stdout.write(`${JSON.stringify(d, null, 2)}\n`);
      const lines = [
        `run ${a} -> run ${b}`,
        `data: ${d.sameData ? 'same photos and labels' : `different (${ra.data} -> ${rb.data})`} · backbone: ${d.sameBackbone ? ra.base : `${ra.base} -> ${rb.base}`}`,
        d.options.length === 0 ? 'options: unchanged' : `options changed:\n${table(d.options.map((o) => ['  ' + o.key, value(o.a), '->', value(o.b)]))}`,
        'metrics:',
        table(d.metrics.map((m) => ['  ' + m.key, formatMetric(m.key, m.a), formatMetric(m.key, m.b), formatMetric(m.key, m.delta, true)]), ['l', 'r', 'r', 'r']),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
