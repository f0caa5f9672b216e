import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

export function registerSystemRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/healthz',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              status: { type: 'string' },
              models: { type: 'integer' },
              jobs: { type: 'object', properties: { running: { type: 'integer' }, queued: { type: 'integer' } } },
              uptimeSeconds: { type: 'number' },
            },
          },
        },
      },
    },
    async () => ({
      status: 'ok',
      models: ctx.registry.list().length,
      jobs: { running: ctx.jobs.active, queued: ctx.jobs.queued },
      uptimeSeconds: (Date.now() - ctx.startedAt) / 1000,
    }),
  );

  app.get('/metrics', async (_request, reply) =>
    reply.type('text/plain; version=0.0.4; charset=utf-8').send(
      ctx.metrics.render({
        headswap_job_queue_length: ['Training jobs waiting to run.', ctx.jobs.queued],
        headswap_jobs_running: ['Training jobs running now.', ctx.jobs.active],
        headswap_models: ['Models the server answers for.', ctx.registry.list().length],
        process_resident_memory_bytes: ['Resident memory of the server process.', process.memoryUsage.rss()],
      }),
    ),
  );
}
