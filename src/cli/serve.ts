import type { Command } from 'commander';
import { HeadswapError, describeError } from '../errors.js';
import { DEFAULT_COMPARE_BUDGET_SECONDS, DEFAULT_LIMITS, dataDirs, defaultDataDir } from '../server/options.js';
import { info, warn } from './output.js';
import { int, num } from './parse.js';
import { cacheDirOption, decidedDefault } from './usage.js';

interface Flags {
  port: number;
  host: string;
  data?: string;
  cacheDir?: string;
  maxUploadMb: number;
  pixelLimit: number;
  maxQueue: number;
  timeout: number;
  compareBudget: number;
  log?: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve models over HTTP (classify, train jobs, downloads) with a page to use them, on this machine by default')
    .argument('[model-dirs...]', "model folders written by 'headswap train' to serve besides the trained ones in the data folder")
    .optionsGroup('Server options:')
    .option('--port <n>', 'TCP port', int(0, 65_535), 8080)
    .option('--host <address>', 'address to listen on (127.0.0.1: this machine only)', '127.0.0.1')
    .option('--log', 'log every request as a JSON line on stdout')
    .optionsGroup('Storage options:')
    .addOption(decidedDefault('--data <dir>', 'where trained models and jobs are kept', defaultDataDir()))
    .addOption(cacheDirOption('feature cache and model downloads'))
    .optionsGroup('Limits:')
    .option('--max-upload-mb <n>', 'largest image file accepted', num(0.001, 1024), DEFAULT_LIMITS.maxImageBytes / 2 ** 20)
    .option('--pixel-limit <n>', 'refuse images with more pixels than this', int(1), DEFAULT_LIMITS.pixelLimit)
    .option('--max-queue <n>', 'training jobs that may wait behind the running one; more get 429', int(0, 1000), DEFAULT_LIMITS.maxQueuedJobs)
    .option('--timeout <seconds>', 'answer 408 to a request not done in this time', num(1, 86_400), DEFAULT_LIMITS.requestTimeoutMs / 1000)
    .option('--compare-budget <seconds>', 'most seconds the optional from-scratch comparison of a job may train', num(1, 3600), DEFAULT_COMPARE_BUDGET_SECONDS)
    .addHelpText('after', '\nExamples:\n  headswap serve                          open http://127.0.0.1:8080/ and train from the page\n  headswap serve ./photos.model --port 3000')
    .action(async (models: string[], f: Flags) => {
      const data = f.data ?? defaultDataDir();
      // Loaded on use, so other commands do not pay for the web framework.
      const { createServer } = await import('../server/app.js');
      const app = await createServer({
        dataDir: data,
        models,
        cacheDir: f.cacheDir,
        compareBudgetSeconds: f.compareBudget,
        logger: f.log ?? false,
        onWarning: warn,
        limits: { maxImageBytes: Math.round(f.maxUploadMb * 2 ** 20), pixelLimit: f.pixelLimit, maxQueuedJobs: f.maxQueue, requestTimeoutMs: f.timeout * 1000 },
      });
      let url: string;
      try {
        url = await app.listen({ port: f.port, host: f.host });
      } catch (err) {
        await app.close();
        throw new HeadswapError(`cannot listen on ${f.host}:${f.port} (${describeError(err)}); pick another --port or --host`);
      }
      if (!LOOPBACK.has(f.host)) warn(`listening on ${f.host}: anyone who can reach it can classify and train (there is no login)`);
      info(`headswap serving ${models.length} model folder(s) and the trained models in ${dataDirs(data).root}`);
      info(`open ${url}/ (Ctrl-C stops)`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          info('stopping...');
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await app.close();
    });
}
