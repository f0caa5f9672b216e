import type { FastifyInstance } from 'fastify';
import { describeError } from '../../errors.js';
import type { Classifier } from '../../export/classifier.js';
import type { BatchClassifyResponse, Classified, ClassifyResponse } from '../api-types.js';
import type { ServerContext } from '../context.js';
import { RequestError } from '../errors.js';
import { receiveImages } from '../uploads.js';
import { idParams, modelOr404 } from './models.js';

const DEFAULT_TOP = 5;

const query = {
  type: 'object',
  properties: { top: { type: 'integer', minimum: 1, maximum: 1000, default: DEFAULT_TOP } },
} as const;

const topSchema = {
  type: 'array',
  items: { type: 'object', properties: { label: { type: 'string' }, index: { type: 'integer' }, probability: { type: 'number' } }, required: ['label', 'index', 'probability'] },
} as const;

const oneSchema = { type: 'object', properties: { model: { type: 'string' }, name: { type: 'string' }, top: topSchema } } as const;
const batchSchema = {
  type: 'object',
  properties: { model: { type: 'string' }, results: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, top: topSchema } } } },
} as const;

async function classify(ctx: ServerContext, id: string, images: readonly { name: string; data: Buffer }[], top: number): Promise<Classified[]> {
  let classifier: Classifier;
  try {
    classifier = await ctx.registry.classifier(modelOr404(ctx, id));
  } catch (err) {
    // A broken model folder is the server's fault, not the request's.
    throw new RequestError(503, `model '${id}' cannot be loaded (${describeError(err)})`);
  }
  const predictions = await classifier.predict(images, { top, pixelLimit: ctx.limits.pixelLimit });
  return predictions.map((p) => ({ name: p.input, top: p.top }));
}

type Route = { Params: { id: string }; Querystring: { top: number } };

export function registerClassifyRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<Route>('/v1/models/:id/classify', { schema: { params: idParams, querystring: query, response: { 200: oneSchema } } }, async (request): Promise<ClassifyResponse> => {
    // Checked before a multipart upload is read, so a wrong id costs little.
    modelOr404(ctx, request.params.id);
    const images = await receiveImages(request, ctx.limits, 1);
    const [result] = await classify(ctx, request.params.id, images, request.query.top);
    return { model: request.params.id, ...result! };
  });

  app.post<Route>('/v1/models/:id/classify/batch', { schema: { params: idParams, querystring: query, response: { 200: batchSchema } } }, async (request): Promise<BatchClassifyResponse> => {
    modelOr404(ctx, request.params.id);
    const images = await receiveImages(request, ctx.limits, ctx.limits.maxBatchImages);
    return { model: request.params.id, results: await classify(ctx, request.params.id, images, request.query.top) };
  });
}
