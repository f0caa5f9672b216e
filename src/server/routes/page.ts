import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { RequestError } from '../errors.js';

/**
 * Everything the page loads comes from this server: its scripts, styles and onnxruntime-web's
 * wasm. 'wasm-unsafe-eval' lets the browser compile that wasm; blob: and data: are the
 * previews of the user's own photos and the thumbnails the server sends.
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The page built by Vite (`npm run build`), served from the package's own folder. */
export async function registerPage(app: FastifyInstance, webRoot: string): Promise<void> {
  if (!existsSync(join(webRoot, 'index.html'))) {
    app.get('/', async () => {
      throw new RequestError(404, `the page is not built (${webRoot} has no index.html); run 'npm run build'`);
    });
    return;
  }
  await app.register(fastifyStatic, {
    root: webRoot,
    prefix: '/',
    index: 'index.html',
    dotfiles: 'deny',
    setHeaders: (reply, path) => {
      if (path.endsWith('.html')) reply.setHeader('content-security-policy', PAGE_CSP);
    },
  });
}
