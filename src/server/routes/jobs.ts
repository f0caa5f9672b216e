import { rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { RequestError } from '../errors.js';
import type { JobEvent, JobRecord, JobView } from '../api-types.js';
import { randomId } from '../names.js';
import { receiveJob } from '../uploads.js';
import { idParams } from './models.js';

/** Comment lines keep proxies and browsers from closing a quiet progress stream. */
const HEARTBEAT_MS = 15_000;

function finished(job: JobRecord): boolean {
  return job.status === 'done' || job.status === 'failed';
}

function view(ctx: ServerContext, job: JobRecord): JobView {
  const self = `/v1/jobs/${job.id}`;
  return {
    ...job,
    position: ctx.jobs.position(job.id),
    progress: ctx.jobs.lastProgress(job.id) ?? null,
    links: { self, events: `${self}/events`, model: job.result ? `/v1/models/${job.result.modelId}` : null },
  };
}

function jobOr404(ctx: ServerContext, id: string): JobRecord {
  const job = ctx.jobs.get(id);
  if (!job) throw new RequestError(404, `no job '${id}'; GET /v1/jobs lists them`);
  return job;
}

export function registerJobRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const streams = new Set<ServerResponse>();
  // Open progress streams would otherwise hold the server open until their jobs finish.
  app.addHook('preClose', async () => {
    for (const s of streams) s.end();
  });

  app.post('/v1/jobs', async (request, reply) => {
    // Refused before the photos are read when the queue is full.
    ctx.jobs.assertRoom();
    let id = randomId();
    while (!ctx.jobs.newJobDir(id)) id = randomId();
    const upload = await ctx.jobs.uploadDir(id);
    try {
      const received = await receiveJob(request, upload, ctx.limits);
      const job: JobRecord = { id, name: received.name, createdAt: new Date().toISOString(), status: 'queued', classes: received.classes, compare: received.compare, quality: received.quality };
      await ctx.jobs.submit(job, upload);
      return reply.code(202).header('location', `/v1/jobs/${id}`).send(view(ctx, ctx.jobs.get(id) ?? job));
    } catch (err) {
      await rm(upload, { recursive: true, force: true });
      throw err;
    }
  });

  app.get('/v1/jobs', async () => ({
    // Thumbnails are left out of the list; GET /v1/jobs/:id has them.
    jobs: ctx.jobs.list().map((job) => view(ctx, job.result ? { ...job, result: { ...job.result, testThumbnails: [] } } : job)),
  }));

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', { schema: { params: idParams } }, async (request) => view(ctx, jobOr404(ctx, request.params.id)));

  // Server-Sent Events: `job` with the whole record on each status change, `progress` in between.
  app.get<{ Params: { id: string } }>('/v1/jobs/:id/events', { schema: { params: idParams } }, (request, reply) => {
    const job = jobOr404(ctx, request.params.id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    const send = (e: JobEvent): void => {
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e.type === 'job' ? view(ctx, e.job) : e.progress)}\n\n`);
    };
    send({ type: 'job', job });
    const last = ctx.jobs.lastProgress(job.id);
    if (last) send({ type: 'progress', progress: last });
    if (finished(job)) {
      res.end();
      return;
    }
    streams.add(res);
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    const unsubscribe = ctx.jobs.subscribe(job.id, (e) => {
      send(e);
      if (e.type === 'job' && finished(e.job)) res.end();
    });
    res.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      streams.delete(res);
    });
  });
}
