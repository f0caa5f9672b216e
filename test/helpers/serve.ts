import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
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

// ---------------------------------------------------------------------------------------------
// Raw HTTP for hostile clients: exact bytes on a socket (malformed requests, slow senders, held
// connections, uploads cut short), shared by test/server-stress.test.ts and bench/server-stress.ts.

/** One response read off a raw socket. */
export interface RawReply {
  readonly status: number;
  /** Lowercased names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

interface Parsed {
  readonly reply: RawReply;
  readonly length: number;
}

/** The first complete final (non-1xx) response at the start of `buf`, and how many bytes it took; `closed`: no more bytes will come. */
function parseResponse(buf: Buffer, closed: boolean): Parsed | undefined {
  let offset = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', offset);
    if (end < 0) return undefined;
    const lines = buf.subarray(offset, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
    if (Number.isNaN(status)) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const start = end + 4;
    if (status < 200) {
      offset = start;
      continue;
    }
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length < start + n) return undefined;
      return { reply: { status, headers, body: buf.subarray(start, start + n).toString('utf8') }, length: start + n };
    }
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const chunks: Buffer[] = [];
      let at = start;
      for (;;) {
        const eol = buf.indexOf('\r\n', at);
        if (eol < 0) return undefined;
        const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
        if (buf.length < eol + 2 + size + 2) return undefined;
        if (size === 0) return { reply: { status, headers, body: Buffer.concat(chunks).toString('utf8') }, length: eol + 4 };
        chunks.push(buf.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
    }
    // No length: the body runs to the end of the connection.
    return closed ? { reply: { status, headers, body: buf.subarray(start).toString('utf8') }, length: buf.length } : undefined;
  }
}

/** A client connection that writes exact bytes and reads the responses one at a time. */
export class RawConnection {
  private buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  /** performance.now() when the connection closed (either side), or undefined while open. */
  closedAt: number | undefined;
  /** Whether it was the server that closed it (not `destroy()`). */
  closedByServer = false;
  readonly openedAt = performance.now();
  private destroyedHere = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.wake?.();
    });
    // A reset from the server is a close like any other here; the caller looks at what was answered.
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closedAt = performance.now();
      this.closedByServer = !this.destroyedHere;
      this.wake?.();
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  get open(): boolean {
    return this.closedAt === undefined;
  }

  /** This end's port: the server sees it as the remote port. */
  get localPort(): number | undefined {
    return this.socket.localPort;
  }

  write(data: string | Uint8Array): void {
    if (this.open && !this.socket.destroyed) this.socket.write(data);
  }

  /** The next response, or undefined if the connection closed (or `timeoutMs` passed) before one was complete. */
  async response(timeoutMs = 10_000): Promise<RawReply | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const parsed = parseResponse(this.buffer, !this.open);
      if (parsed) {
        this.buffer = this.buffer.subarray(parsed.length);
        return parsed.reply;
      }
      const left = deadline - performance.now();
      if (!this.open || left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Resolves when the connection has closed, or after `timeoutMs`; true if it closed. */
  async closed(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.open && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return !this.open;
  }

  destroy(): void {
    if (this.open) this.destroyedHere = true;
    this.socket.destroy();
  }
}

/** Sends `payload` on a new connection and reads one response (undefined: closed or timed out without one). */
export async function sendRaw(port: number, payload: string | Uint8Array, timeoutMs = 10_000): Promise<RawReply | undefined> {
  const conn = await RawConnection.open(port);
  try {
    conn.write(payload);
    return await conn.response(timeoutMs);
  } finally {
    conn.destroy();
  }
}

export interface Trickled {
  readonly reply: RawReply | undefined;
  /** Bytes of the payload sent before the connection closed. */
  readonly sent: number;
  readonly serverClosed: boolean;
  /** From connect to close. */
  readonly ms: number;
}

/**
 * A slowloris client: `head` at once (if given), then `payload` one byte every `everyMs`, until
 * the server closes the connection (or `giveUpMs` passes).
 */
export async function trickle(port: number, payload: string | Uint8Array, everyMs: number, giveUpMs: number, head?: Uint8Array): Promise<Trickled> {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const conn = await RawConnection.open(port);
  if (head) conn.write(head);
  let sent = 0;
  const timer = setInterval(() => {
    if (sent < bytes.length) conn.write(bytes.subarray(sent, ++sent));
  }, everyMs);
  try {
    await conn.closed(giveUpMs);
    const reply = await conn.response(0);
    return { reply, sent, serverClosed: conn.closedByServer, ms: (conn.closedAt ?? performance.now()) - conn.openedAt };
  } finally {
    clearInterval(timer);
    conn.destroy();
  }
}

/** An HTTP/1.1 request as bytes, with Content-Length (or chunked encoding when `chunked`). */
export function rawHttp(method: string, path: string, headers: Readonly<Record<string, string>>, body: Uint8Array | string = '', chunked = false): Buffer {
  const data = typeof body === 'string' ? Buffer.from(body, 'latin1') : Buffer.from(body);
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (chunked) lines.push('Transfer-Encoding: chunked');
  else if (data.length > 0 || method === 'POST') lines.push(`Content-Length: ${data.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  if (!chunked) return Buffer.concat([head, data]);
  return Buffer.concat([head, Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n0\r\n\r\n')]);
}

/** A multipart/form-data body built by hand, so tests control every byte (fields first, then files). */
export function multipartBody(files: readonly { field: string; filename: string; data: Uint8Array }[], fields: Readonly<Record<string, string>> = {}, boundary = 'headswap-stress-boundary'): { contentType: string; body: Buffer } {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`, 'utf8'));
  for (const f of files) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${f.field}"; filename="${f.filename}"\r\nContent-Type: image/jpeg\r\n\r\n`, 'utf8'), Buffer.from(f.data), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: Buffer.concat(parts) };
}

/** A malformed or hostile request and the status it must get (every one a 4xx). */
export interface HostileRequest {
  readonly name: string;
  readonly payload: Buffer;
  readonly status: number;
}

/** Requests Node's HTTP parser (or the server's protocol checks) must refuse, aimed at `model`'s routes. */
export function malformedHttp(model: string): HostileRequest[] {
  const classify = `/v1/models/${model}/classify`;
  const cases: [string, string | Buffer, number][] = [
    ['not HTTP at all', 'hello there\r\n\r\n', 400],
    ['binary garbage', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]), 400],
    ['a TLS ClientHello on the plain port', Buffer.from('16030100a5010000a10303000102030405060708090a0b0c0d0e0f', 'hex'), 400],
    ['unknown HTTP version', 'GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n', 400],
    ['unknown method', 'BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 400],
    ['header line without a colon', 'GET /healthz HTTP/1.1\r\nHost x\r\n\r\n', 400],
    ['NUL in a header value', 'GET /healthz HTTP/1.1\r\nHost: a\x00b\r\n\r\n', 400],
    ['space before the header colon', 'GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n', 400],
    ['bare LF line endings', 'GET /healthz HTTP/1.1\nHost: x\n\n', 400],
    ['headers over 16 KB', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ['Content-Length and Transfer-Encoding together (smuggling)', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400],
    ['two different Content-Lengths', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`, 400],
    ['negative Content-Length', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: -1\r\n\r\n`, 400],
    ['non-numeric Content-Length', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 12abc\r\n\r\n`, 400],
    ['bad chunk size', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, 400],
    ['chunk longer than its size', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcdef\r\n0\r\n\r\n`, 400],
    ['unknown transfer coding', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: rot13\r\n\r\nabc`, 400],
    ['HTTP/1.1 without Host', 'GET /healthz HTTP/1.1\r\n\r\n', 400],
    ['Expect other than 100-continue', `POST ${classify} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 3\r\nExpect: 200-ok\r\n\r\nabc`, 417],
    ['CONNECT (proxy request)', 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 405],
    ['URL that does not percent-decode', `GET /v1/models/%zz HTTP/1.1\r\nHost: x\r\n\r\n`, 400],
    ['URL with a quote', `GET /v1/models/a"b HTTP/1.1\r\nHost: x\r\n\r\n`, 400],
    // No route matches an absolute-form target (the static files are served under '/' only).
    ['absolute-form URL', 'GET http://127.0.0.1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n', 404],
  ];
  return cases.map(([name, payload, status]) => ({ name, payload: typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload, status }));
}

/** Multipart bodies that are not valid forms (or break the form limits), and the status any upload route gives them. */
export function malformedMultipart(): { name: string; contentType: string; body: string; status: number }[] {
  const b = 'zzb';
  const disposition = (name: string, file = 'a.jpg'): string => `Content-Disposition: form-data; name="${name}"; filename="${file}"`;
  return [
    { name: 'no boundary parameter', contentType: 'multipart/form-data', body: `--${b}\r\n${disposition('f')}\r\n\r\nxx\r\n--${b}--\r\n`, status: 400 },
    { name: 'empty boundary', contentType: 'multipart/form-data; boundary=""', body: `--\r\n\r\n`, status: 400 },
    { name: 'body with another boundary', contentType: `multipart/form-data; boundary=${b}`, body: `--other\r\n${disposition('f')}\r\n\r\nxx\r\n--other--\r\n`, status: 400 },
    { name: 'plain garbage', contentType: `multipart/form-data; boundary=${b}`, body: 'garbage garbage garbage', status: 400 },
    { name: 'part headers never end', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\r\n${disposition('f')}\r\nContent-Type: image/jpeg`, status: 400 },
    { name: 'file cut off (no closing boundary)', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\r\n${disposition('f')}\r\n\r\n\xff\xd8\xff\xe0 cut`, status: 400 },
    { name: 'part header of 100 KB', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\r\n${disposition('f')}\r\nX-Pad: ${'a'.repeat(100_000)}\r\n\r\nxx\r\n--${b}--\r\n`, status: 415 },
    { name: 'bare LF line endings', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\n${disposition('f')}\n\nxx\n--${b}--\n`, status: 400 },
    { name: 'part without Content-Disposition', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\r\nContent-Type: image/jpeg\r\n\r\nxx\r\n--${b}--\r\n`, status: 400 },
    { name: 'only the closing boundary', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}--\r\n`, status: 400 },
    { name: 'empty body', contentType: `multipart/form-data; boundary=${b}`, body: '', status: 400 },
    { name: 'a file that is not an image', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\r\n${disposition('f')}\r\n\r\nnot an image at all\r\n--${b}--\r\n`, status: 415 },
    { name: 'an empty file', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\r\n${disposition('f')}\r\n\r\n\r\n--${b}--\r\n`, status: 400 },
    {
      name: '50 text fields',
      contentType: `multipart/form-data; boundary=${b}`,
      body: `${Array.from({ length: 50 }, (_, i) => `--${b}\r\nContent-Disposition: form-data; name="x${i}"\r\n\r\n${i}\r\n`).join('')}--${b}--\r\n`,
      status: 413,
    },
    { name: '__proto__ as a field name', contentType: `multipart/form-data; boundary=${b}`, body: `--${b}\r\nContent-Disposition: form-data; name="__proto__"\r\n\r\nx\r\n--${b}--\r\n`, status: 400 },
  ];
}

/** Bodies with a Content-Type no upload route takes (or that does not match the bytes), and the status they get. */
export function wrongContentTypes(jpeg: Uint8Array): { name: string; contentType: string | undefined; body: string | Uint8Array; status: number }[] {
  return [
    { name: 'text/plain', contentType: 'text/plain', body: 'hello', status: 415 },
    { name: 'JSON', contentType: 'application/json', body: '{"image": "aGVsbG8="}', status: 415 },
    { name: 'invalid JSON', contentType: 'application/json', body: '{"image": ', status: 400 },
    { name: 'JSON with __proto__', contentType: 'application/json', body: '{"__proto__": {"polluted": true}}', status: 400 },
    { name: 'a form (urlencoded)', contentType: 'application/x-www-form-urlencoded', body: 'image=abc&top=3', status: 415 },
    { name: 'XML', contentType: 'application/xml', body: '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', status: 415 },
    { name: 'no Content-Type', contentType: undefined, body: jpeg, status: 415 },
    { name: 'a JPEG sent as JSON', contentType: 'application/json', body: jpeg, status: 400 },
    { name: 'SVG as image/svg+xml', contentType: 'image/svg+xml', body: '<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>', status: 415 },
    { name: 'HTML as image/png', contentType: 'image/png', body: '<html><script>alert(1)</script></html>', status: 415 },
    { name: 'malformed type', contentType: ';;;=', body: jpeg, status: 415 },
    { name: 'image/ without subtype', contentType: 'image/', body: jpeg, status: 415 },
    { name: 'multipart/mixed', contentType: 'multipart/mixed; boundary=x', body: '--x\r\n\r\nabc\r\n--x--\r\n', status: 415 },
    { name: 'a 2 KB Content-Type', contentType: `image/${'x'.repeat(2048)}`, body: 'not an image', status: 415 },
  ];
}

/**
 * Path-traversal attempts for one path parameter (sent byte for byte: see rawRequest), aimed at
 * `secret.txt` and `headswap.json` beside the model folder `modelFolder` and at system files.
 */
export function traversals(modelFolder: string): string[] {
  return [
    '..',
    '.',
    '%2e%2e',
    '..%2f..%2fsecret.txt',
    '%2e%2e%2f%2e%2e%2fsecret.txt',
    '%2e%2e/%2e%2e/secret.txt',
    '../../secret.txt',
    '..%5c..%5csecret.txt',
    '%252e%252e%252fsecret.txt',
    '..%c0%af..%c0%afsecret.txt',
    '%c0%ae%c0%ae%2fsecret.txt',
    '....%2f%2fsecret.txt',
    '..%3b%2fsecret.txt',
    'secret.txt%00',
    '%00',
    '%2fetc%2fpasswd',
    '..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
    '..%2fheadswap.json',
    `..%2f${modelFolder}`,
    modelFolder,
    '..%2fsecret.txt%23',
    '~%2f.ssh%2fid_rsa',
  ];
}

/** Every route with a path parameter, with `p` in each parameter in turn (and in the page and assets paths). */
export function traversalAttempts(modelFolder: string, model: string): [string, string][] {
  return traversals(modelFolder).flatMap((p): [string, string][] => [
    ['GET', `/v1/models/${p}`],
    ['GET', `/v1/models/${p}/download`],
    ['GET', `/v1/models/${p}/report`],
    ['GET', `/v1/models/${p}/files/model.onnx`],
    ['GET', `/v1/models/${model}/files/${p}`],
    ['GET', `/v1/models/${p}/files/${p}`],
    ['POST', `/v1/models/${p}/classify`],
    ['POST', `/v1/models/${p}/classify/batch`],
    ['GET', `/v1/jobs/${p}`],
    ['GET', `/v1/jobs/${p}/events`],
    ['GET', `/${p}`],
    ['GET', `/assets/${p}`],
  ]);
}
