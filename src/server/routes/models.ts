import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ModelDetail, ModelSummary } from '../api-types.js';
import { REPORT_FILE } from '../../report/write.js';
import { zipFiles } from '../archive.js';
import type { ServerContext } from '../context.js';
import { RequestError } from '../errors.js';
import { ID_PATTERN } from '../names.js';
import { MODEL_FILES, type ModelEntry, type ModelFileName } from '../registry.js';

/** The report is self-contained; the header repeats its own policy so nothing else can load. */
const REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";

export const idParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: ID_PATTERN } },
  required: ['id'],
} as const;

const summarySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    source: { type: 'string', enum: ['cli', 'trained'] },
    createdAt: { type: 'string' },
    labels: { type: 'array', items: { type: 'string' } },
    backbone: { type: 'object', properties: { id: { type: 'string' }, featureDims: { type: 'integer' } } },
    metrics: {
      type: 'object',
      properties: { top1: { type: 'number' }, top1Ci95: { type: 'array', items: { type: 'number' } }, testPhotos: { type: 'integer' }, macroF1: { type: 'number' } },
    },
    links: {
      type: 'object',
      properties: {
        self: { type: 'string' },
        classify: { type: 'string' },
        download: { type: 'string' },
        model: { type: 'string' },
        report: { type: ['string', 'null'] },
      },
    },
  },
} as const;

const detailSchema = {
  type: 'object',
  properties: {
    ...summarySchema.properties,
    input: { type: 'object', additionalProperties: true },
    preprocessing: { type: 'object', additionalProperties: true },
    evaluation: { type: 'object', additionalProperties: true },
    counts: { type: 'object', additionalProperties: true },
    members: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          backbone: { type: 'object', properties: { id: { type: 'string' }, featureDims: { type: 'integer' } } },
          top1: { type: 'number' },
          top1Ci95: { type: 'array', items: { type: 'number' } },
        },
      },
    },
  },
} as const;

export function modelOr404(ctx: ServerContext, id: string): ModelEntry {
  const entry = ctx.registry.get(id);
  if (!entry) throw new RequestError(404, `no model '${id}'; GET /v1/models lists them`);
  return entry;
}

async function summary(ctx: ServerContext, e: ModelEntry): Promise<ModelSummary> {
  const m = e.metadata;
  const self = `/v1/models/${e.id}`;
  return {
    id: e.id,
    name: e.name,
    source: e.source,
    createdAt: m.createdAt,
    labels: m.classes,
    backbone: { id: m.backbone.id, featureDims: m.backbone.featureDims },
    metrics: { top1: m.metrics.top1, top1Ci95: m.metrics.top1Ci95, testPhotos: m.metrics.count, macroF1: m.metrics.macroF1 },
    links: {
      self,
      classify: `${self}/classify`,
      download: `${self}/download`,
      model: `${self}/files/model.onnx`,
      report: (await ctx.registry.hasFile(e, REPORT_FILE)) ? `${self}/report` : null,
    },
  };
}

export function registerModelRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/v1/models', { schema: { response: { 200: { type: 'object', properties: { models: { type: 'array', items: summarySchema } } } } } }, async () => ({
    models: await Promise.all(ctx.registry.list().map((e) => summary(ctx, e))),
  }));

  app.get<{ Params: { id: string } }>('/v1/models/:id', { schema: { params: idParams, response: { 200: detailSchema } } }, async (request): Promise<ModelDetail> => {
    const e = modelOr404(ctx, request.params.id);
    const m = e.metadata;
    const members = m.ensemble?.members.map((x) => ({ backbone: { id: x.backbone.id, featureDims: x.backbone.featureDims }, top1: x.metrics.top1, top1Ci95: x.metrics.top1Ci95 }));
    return { ...(await summary(ctx, e)), input: m.input, preprocessing: m.preprocessing, evaluation: m.metrics, counts: m.training?.counts ?? {}, ...(members ? { members } : {}) };
  });

  // The browser runs model.onnx itself; only these known files are served, never a client-named path.
  app.get<{ Params: { id: string; file: ModelFileName } }>(
    '/v1/models/:id/files/:file',
    { schema: { params: { type: 'object', properties: { ...idParams.properties, file: { type: 'string', enum: [...MODEL_FILES] } }, required: ['id', 'file'] } } },
    async (request, reply) => {
      const e = modelOr404(ctx, request.params.id);
      const file = request.params.file;
      if (!(await ctx.registry.hasFile(e, file))) throw new RequestError(404, `model '${e.id}' has no ${file}`);
      return reply.type(file.endsWith('.json') ? 'application/json; charset=utf-8' : 'application/octet-stream').send(createReadStream(join(e.dir, file)));
    },
  );

  app.get<{ Params: { id: string } }>('/v1/models/:id/report', { schema: { params: idParams } }, async (request, reply) => {
    const e = modelOr404(ctx, request.params.id);
    if (!(await ctx.registry.hasFile(e, REPORT_FILE))) throw new RequestError(404, `model '${e.id}' has no report; run 'headswap report' on its folder`);
    return reply.type('text/html; charset=utf-8').header('content-security-policy', REPORT_CSP).send(createReadStream(join(e.dir, REPORT_FILE)));
  });

  app.get<{ Params: { id: string } }>('/v1/models/:id/download', { schema: { params: idParams } }, async (request, reply) => {
    const e = modelOr404(ctx, request.params.id);
    const files = await ctx.registry.archiveFiles(e);
    return reply
      .type('application/zip')
      .header('content-disposition', `attachment; filename="${e.id}.zip"`)
      .send(Readable.from(zipFiles(e.dir, files, e.id)));
  });
}
