import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

const JSON_TYPE = 'application/json; charset=utf-8';

function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type(JSON_TYPE).send({ error: oneLine(message) } satisfies ErrorBody);
}

/** A whole HTTP response for a socket Node answers before Fastify sees a request; the connection then closes. */
function rawResponse(status: number, message: string): string {
  const body = JSON.stringify({ error: oneLine(message) } satisfies ErrorBody);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: ${JSON_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/**
 * Fastify's `clientErrorHandler`: a request Node's parser refused (malformed, headers too large,
 * or stalled past the timeout) gets the same `{error}` body as any other refusal, not Fastify's
 * `{error, message, statusCode}`.
 */
export function clientErrorHandler(limits: ServerLimits): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const [status, message] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, `request not received within ${limits.requestTimeoutMs / 1000} s`]
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'request headers are too large']
          : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
            ? [413, 'chunk extensions are too large']
            : [400, `malformed HTTP request (${err.code ?? err.message})`];
    // As Node does: no answer in the middle of a response already being sent on this socket.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) socket.write(rawResponse(status, message));
    socket.destroy();
  };
}

/** Fastify's `frameworkErrors` (a URL that does not decode, a too-long parameter): the usual `{error}` body. */
export function frameworkErrorHandler(limits: ServerLimits): (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => void {
  return (err, _request, reply) => {
    const { status, message } = describeFailure(err, limits);
    void sendError(reply, status, message);
  };
}

/**
 * The answers Node gives by itself without a body, in the `{error}` form too: an HTTP/1.1
 * request without a Host header (Node's check is turned off in createServer for this), an
 * `Expect` other than 100-continue, and CONNECT (which Node would just hang up on).
 */
export function installProtocolErrors(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && request.headers.host === undefined) throw new RequestError(400, 'HTTP/1.1 request without a Host header');
  });
  app.server.on('checkExpectation', (request, response) => {
    const body = JSON.stringify({ error: oneLine(`unsupported Expect: ${String(request.headers.expect)}`) } satisfies ErrorBody);
    response.writeHead(417, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body), connection: 'close' }).end(body);
  });
  app.server.on('connect', (_request, socket: Duplex) => {
    socket.end(rawResponse(405, 'CONNECT is not supported: this server is not a proxy'));
  });
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
    return sendError(reply, status, message);
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, 404, `no such route: ${request.method} ${request.url.slice(0, 200)}`));
}
