import type { FastifyInstance, FastifyReply } from 'fastify';
import { describeError } from '../../errors.js';
import { ModelExplainer, camPng, type ActivationMap } from '../../explain/index.js';
import type { ServerContext } from '../context.js';
import { RequestError } from '../errors.js';
import type { ModelEntry } from '../registry.js';
import { receiveImages } from '../uploads.js';
import { idParams, modelOr404 } from './models.js';

/**
 * `POST /v1/models/:id/explain`: the class activation map of one uploaded photo (as for
 * classify), for the predicted class or `?class=`. `format=png` (default) answers the photo as
 * the model sees it with the map as a heat overlay, the class and probability in
 * `X-Headswap-Class` / `X-Headswap-Probability`; `format=json` answers the maps' numbers.
 */

const query = {
  type: 'object',
  properties: {
    class: { type: 'string', minLength: 1, maxLength: 200 },
    format: { type: 'string', enum: ['png', 'json'], default: 'png' },
  },
} as const;

const mapSchema = {
  type: 'object',
  properties: { width: { type: 'integer' }, height: { type: 'integer' }, values: { type: 'array', items: { type: 'number' } } },
  required: ['width', 'height', 'values'],
} as const;

const jsonSchema = {
  type: 'object',
  properties: {
    model: { type: 'string' },
    name: { type: 'string' },
    class: { type: 'string' },
    index: { type: 'integer' },
    probability: { type: 'number' },
    predicted: { type: 'string' },
    method: { type: 'string', enum: ['cam', 'grad-cam'] },
    tta: { type: 'boolean' },
    map: mapSchema,
    members: {
      type: 'array',
      items: { type: 'object', properties: { backbone: { type: 'string' }, method: { type: 'string' }, probability: { type: 'number' }, map: mapSchema } },
    },
  },
} as const;

type Route = { Params: { id: string }; Querystring: { class?: string; format: 'png' | 'json' } };

const mapJson = (m: ActivationMap): { width: number; height: number; values: number[] } => ({ width: m.width, height: m.height, values: [...m.data] });

/**
 * Explainers by model id, loaded on first use and kept (reading the graph and its session takes
 * a second or two). An entry the registry replaced (a job re-run) gets a new explainer.
 */
class Explainers {
  private readonly loaded = new Map<string, { entry: ModelEntry; explainer: Promise<ModelExplainer> }>();

  constructor(private readonly threads?: number) {}

  get(entry: ModelEntry): Promise<ModelExplainer> {
    const held = this.loaded.get(entry.id);
    if (held?.entry === entry) return held.explainer;
    if (held) void held.explainer.then((e) => e.release(), () => undefined);
    const explainer = ModelExplainer.load(entry.dir, this.threads === undefined ? {} : { threads: this.threads });
    explainer.catch(() => this.loaded.delete(entry.id));
    this.loaded.set(entry.id, { entry, explainer });
    return explainer;
  }

  async close(): Promise<void> {
    const all = [...this.loaded.values()];
    this.loaded.clear();
    await Promise.all(all.map(async (h) => (await h.explainer.catch(() => undefined))?.release()));
  }
}

export function registerExplainRoutes(app: FastifyInstance, ctx: ServerContext, options: { threads?: number } = {}): void {
  const explainers = new Explainers(options.threads);
  app.addHook('onClose', () => explainers.close());

  app.post<Route>('/v1/models/:id/explain', { schema: { params: idParams, querystring: query, response: { 200: jsonSchema } } }, async (request, reply: FastifyReply) => {
    const { id } = request.params;
    // Checked before the upload is read, so a wrong id or class costs little.
    const entry = modelOr404(ctx, id);
    const wanted = request.query.class;
    if (wanted !== undefined && !entry.metadata.classes.includes(wanted)) {
      throw new RequestError(400, `class '${wanted}' is not a class of model '${id}'; its classes: ${entry.metadata.classes.join(', ')}`);
    }
    const [image] = await receiveImages(request, ctx.limits, 1);
    let explainer: ModelExplainer;
    try {
      explainer = await explainers.get(entry);
    } catch (err) {
      // A broken model folder, or one whose graph has no map to explain: the server's side, not the request's.
      throw new RequestError(503, `model '${id}' cannot be explained (${describeError(err)})`);
    }
    const photo = await explainer.loadImage(image!, { pixelLimit: ctx.limits.pixelLimit });
    const explained = await explainer.explain(photo, wanted === undefined ? [] : [wanted]);
    const top = explained.classes[0]!;
    const c = explained.classes.find((k) => k.label === (wanted ?? top.label))!;
    if (request.query.format === 'json') {
      return {
        model: id,
        name: image!.name,
        class: c.label,
        index: c.index,
        probability: c.probability,
        predicted: top.label,
        method: explained.method,
        tta: explained.tta,
        map: mapJson(c.map),
        members: c.members.map((m) => ({ backbone: m.backbone, method: m.method, probability: m.probability, map: mapJson(m.map) })),
      };
    }
    const png = await camPng(photo, c.map);
    return reply
      .type('image/png')
      .header('X-Headswap-Class', encodeURIComponent(c.label))
      .header('X-Headswap-Probability', c.probability.toFixed(6))
      .send(png);
  });
}
