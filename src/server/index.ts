/** `headswap/server`: the HTTP API and page of `headswap serve`, as a Fastify instance. */
export { createServer, DEFAULT_LIMITS, type ServerOptions, type ServerLimits } from './app.js';
export type * from './api-types.js';
