import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import fastifyMultipart from '@fastify/multipart';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';
import { clientErrorHandler, frameworkErrorHandler, installErrorHandlers, installProtocolErrors } from './errors.js';
import { Jobs } from './jobs.js';
import { Metrics } from './metrics.js';
import { DEFAULT_COMPARE_BUDGET_SECONDS, DEFAULT_LIMITS, dataDirs, defaultDataDir, defaultWebRoot, type ServerOptions } from './options.js';
import { ModelRegistry } from './registry.js';
import { registerClassifyRoutes } from './routes/classify.js';
import { registerExplainRoutes } from './routes/explain.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerModelRoutes } from './routes/models.js';
import { registerPage } from './routes/page.js';
import { registerSystemRoutes } from './routes/system.js';
import { runTrainingJob } from './training.js';

export { DEFAULT_LIMITS, type ServerLimits, type ServerOptions } from './options.js';

/**
 * The headswap HTTP server, ready but not listening: call `listen()` on it, or `inject()` in
 * tests. Opens the data folder (models and jobs from earlier runs come back; unfinished jobs
 * are queued again) and the command-line model folders. `close()` waits for a running job.
 */
export async function createServer(options: ServerOptions = {}): Promise<FastifyInstance> {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const dirs = dataDirs(options.dataDir ?? defaultDataDir());
  await mkdir(dirs.models, { recursive: true });
  const app = Fastify({
    logger: options.logger ?? false,
    handlerTimeout: limits.requestTimeoutMs,
    // Node's own guard against a client that never finishes sending its request.
    requestTimeout: limits.requestTimeoutMs,
    // requireHostHeader: checked in installProtocolErrors, so the refusal has a JSON body.
    http: { connectionsCheckingInterval: Math.min(30_000, Math.max(1000, limits.requestTimeoutMs / 4)), requireHostHeader: false },
    clientErrorHandler: clientErrorHandler(limits),
    frameworkErrors: frameworkErrorHandler(limits),
  });
  const warn = options.onWarning ?? ((m: string) => app.log.warn(m));

  const registry = await ModelRegistry.open(options.models ?? [], dirs.models, { threads: options.threads, onWarning: warn });
  const training = {
    modelsDir: dirs.models,
    cacheDir: options.cacheDir,
    pixelLimit: limits.pixelLimit,
    compareBudgetSeconds: options.compareBudgetSeconds ?? DEFAULT_COMPARE_BUDGET_SECONDS,
  };
  const jobs = await Jobs.open(dirs.jobs, {
    maxQueued: limits.maxQueuedJobs,
    runner: async (job, dir, onProgress) => {
      const result = await runTrainingJob(job, dir, training, onProgress);
      // In the registry before the job reads as done, so a client told "done" finds the model.
      await registry.add(result.modelId, join(dirs.models, result.modelId), job.name);
      return result;
    },
    onError: warn,
  });
  for (const job of jobs.list()) if (job.result) registry.nameFromJob(job.result.modelId, job.name);
  const ctx: ServerContext = { limits, registry, jobs, metrics: new Metrics(), startedAt: Date.now() };

  installErrorHandlers(app, limits, warn);
  installProtocolErrors(app);
  app.addHook('onResponse', async (request, reply) => {
    ctx.metrics.observe(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
  });
  app.addHook('onClose', async () => {
    await jobs.close();
    await registry.close();
  });
  // Raw image bodies, checked by content later whatever type they claim.
  for (const type of ['application/octet-stream', /^image\/[\w.+-]+$/]) {
    app.addContentTypeParser(type, { parseAs: 'buffer', bodyLimit: limits.maxImageBytes }, (_request, body, done) => done(null, body));
  }
  await app.register(fastifyMultipart, { limits: { fileSize: limits.maxImageBytes } });

  registerSystemRoutes(app, ctx);
  registerModelRoutes(app, ctx);
  registerClassifyRoutes(app, ctx);
  registerJobRoutes(app, ctx);
  registerExplainRoutes(app, ctx, { threads: options.threads });
  await registerPage(app, options.webRoot ?? defaultWebRoot());
  return app;
}
