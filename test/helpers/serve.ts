import { request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { JobProgress, JobView } from '../../src/server/api-types.js';
import { createServer } from '../../src/server/app.js';
import type { ServerOptions } from '../../src/server/options.js';

export interface RunningServer {
  readonly app: FastifyInstance;
  /** e.g. `http://127.0.0.1:40123`, no trailing slash. */
  readonly url: string;
  readonly port: number;
}

/** `createServer` listening on a random loopback port. */
export async function startHeadswap(options: ServerOptions): Promise<RunningServer> {
  const app = await createServer(options);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (!address || typeof address === 'string') throw new Error('no TCP address');
  return { app, url: `http://127.0.0.1:${address.port}`, port: address.port };
}

/** A form with one file field per [field, path] pair, as a browser would send it. */
export async function formOf(files: readonly (readonly [string, string])[], fields: Readonly<Record<string, string>> = {}): Promise<FormData> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const [field, path] of files) form.append(field, new Blob([await readFile(path)], { type: 'image/jpeg' }), basename(path));
  return form;
}

/**
 * A request whose path goes to the server byte for byte: fetch() would resolve `..` and
 * `%2e%2e` itself, which would hide exactly what a path-traversal test must send.
 */
export function rawRequest(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

export interface FollowedJob {
  readonly final: JobView;
  readonly events: readonly ({ type: 'job'; job: JobView } | { type: 'progress'; progress: JobProgress })[];
}

/** Reads a job's Server-Sent Events until the server ends the stream. */
export async function followEvents(url: string): Promise<FollowedJob> {
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) throw new Error(`events: content-type ${res.headers.get('content-type')}`);
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body) text += decoder.decode(chunk as Uint8Array, { stream: true });
  const events = text
    .split('\n\n')
    .filter((block) => block.startsWith('event: '))
    .map((block) => {
      const type = /^event: (\w+)/.exec(block)![1];
      const data = JSON.parse(/\ndata: (.*)/.exec(block)![1]!) as unknown;
      return type === 'job' ? { type: 'job' as const, job: data as JobView } : { type: 'progress' as const, progress: data as JobProgress };
    });
  const jobs = events.flatMap((e) => (e.type === 'job' ? [e.job] : []));
  const final = jobs[jobs.length - 1];
  if (!final) throw new Error('events: no job event');
  return { final, events };
}
