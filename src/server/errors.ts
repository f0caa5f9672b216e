import type { FastifyError, FastifyInstance } from 'fastify';
import { HeadswapError, describeError } from '../errors.js';
import type { ErrorBody } from './api-types.js';
import type { ServerLimits } from './options.js';

/** A refusal meant for the client: the status code and one line saying what to change. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** "20 MB", or "256 KB" below a megabyte, for messages about limits. */
export function sizeText(bytes: number): string {
  return bytes >= 2 ** 20 ? `${Math.round(bytes / 2 ** 20)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

function oneLine(message: string): string {
  const line = message.split('\n')[0] ?? '';
  return line.length > 500 ? `${line.slice(0, 497)}...` : line;
}

/** Status and message for anything a route threw; library errors are the client's input at fault. */
export function describeFailure(err: unknown, limits: ServerLimits): { status: number; message: string } {
  if (err instanceof RequestError) return { status: err.statusCode, message: err.message };
  if (err instanceof HeadswapError) return { status: 400, message: err.message };
  const e = err as Partial<FastifyError> | null;
  // Fastify sends 503 for its handler timeout; the usual cause here is a slow upload.
  if (e?.code === 'FST_ERR_HANDLER_TIMEOUT') return { status: 408, message: `request not completed within ${limits.requestTimeoutMs / 1000} s; send smaller or fewer files` };
  if (e?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, message: `request body is larger than the server's limit of ${sizeText(limits.maxImageBytes)}` };
  if (e?.validation) return { status: 400, message: e.message ?? 'invalid request' };
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) return { status, message: e?.message ?? 'bad request' };
  return { status: 500, message: 'internal error; the server log has the details' };
}

/**
 * Every error leaves as one-line JSON `{error}`. Server-side failures are also logged with their
 * stack and reported through `onInternal` (the CLI prints them even without --log).
 */
export function installErrorHandlers(app: FastifyInstance, limits: ServerLimits, onInternal: (message: string) => void): void {
  app.setErrorHandler((err, request, reply) => {
    const { status, message } = describeFailure(err, limits);
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      onInternal(`${request.method} ${request.url.slice(0, 200)}: ${describeError(err)}`);
    }
    // The rest of an oversized or stalled upload is not worth reading.
    if (status === 408 || status === 413) reply.header('connection', 'close');
    return reply.code(status).type('application/json; charset=utf-8').send({ error: oneLine(message) } satisfies ErrorBody);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).type('application/json; charset=utf-8').send({ error: oneLine(`no such route: ${request.method} ${request.url.slice(0, 200)}`) } satisfies ErrorBody),
  );
}
