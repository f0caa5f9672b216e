/**
 * `headswap serve` under attack, at full scale (test/server-stress.test.ts is the small version):
 * 1000 connections held open and then all sending at once, 100 slowloris sockets, 200 malformed
 * requests, path traversal in every path parameter, uploads at the size limit and one byte over,
 * and 50 job uploads whose client disconnects, each with normal classify traffic alongside; the
 * whole set twice, to tell bounded memory from a leak.
 * Prints JSON: per case the status counts, 5xx count, errors (no answer), and the p99 latency of
 * the normal classify requests during it; the server's RSS before, after and at its peak; and
 * whether the checks hold (no 5xx, every refusal a 4xx, slow clients cut off, classify still
 * right, no half job left, nothing outside the data folder written, no sentinel content served).
 * Exits 1 if one does not.
 *   npm run bench:stress [-- rounds]
 * The server runs in a child process (as in bench/serve.ts), so its RSS is its own.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, lstat, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClassifyResponse, JobView } from '../src/server/api-types.js';
import { createRng } from '../src/util/random.js';
import { createServer } from '../src/server/app.js';
import { train } from '../src/pipeline/train.js';
import { packagePath } from '../src/util/paths.js';
import { CLOTHING7 } from '../test/helpers/dataset.js';
import {
  RawConnection,
  followEvents,
  malformedHttp,
  malformedMultipart,
  multipartBody,
  rawHttp,
  rawRequest,
  sendRaw,
  traversalAttempts,
  trickle,
  wrongContentTypes,
} from '../test/helpers/serve.js';

const MODEL = 'clothing7';
const LIMIT = 1024 * 1024;
/** Short enough for the slowloris case to end soon; Node checks stalled requests every timeout/4. */
const TIMEOUT_MS = 5000;
const CHECK_MS = Math.max(1000, TIMEOUT_MS / 4);
const SCALE = { connections: 1000, slowloris: 100, malformed: 200, disconnects: 50 };
/** Normal clients during each attack: this many in parallel, one request after another. */
const TRAFFIC_CLIENTS = 2;
/** The whole set of attacks runs this many times (`npm run bench:stress -- N`): RSS that levels off after the first is bounded. */
const ROUNDS = process.argv[2] === '--serve' ? 0 : Number(process.argv[2] ?? 2);
const TOKEN = `sentinel-${randomBytes(12).toString('hex')}`;

/** Child mode: serve the model from `data` on a free loopback port and print the URL. */
async function serveChild(model: string, data: string, cache: string, web: string): Promise<void> {
  const app = await createServer({
    dataDir: data,
    models: [model],
    cacheDir: cache,
    webRoot: web,
    limits: { maxImageBytes: LIMIT, requestTimeoutMs: TIMEOUT_MS },
    onWarning: (m) => process.stderr.write(`server warning: ${m}\n`),
  });
  process.stdout.write(`${await app.listen({ port: 0, host: '127.0.0.1' })}\n`);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
  // On request, memory after a full collection: the live heap tells a leak from memory the allocator keeps.
  process.on('SIGUSR2', () => {
    (globalThis as { gc?: () => void }).gc?.();
    const m = process.memoryUsage();
    process.stdout.write(`${JSON.stringify({ rssMb: m.rss / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20, externalMb: m.external / 2 ** 20 })}\n`);
  });
}

// --- measuring -----------------------------------------------------------------------------

/** Status counts of one case; 0 stands for "no answer" (connection closed or timed out). */
class Tally {
  readonly status = new Map<number, number>();
  sentinelSeen = 0;
  /** Refusals whose body is not one line of JSON `{error}`. */
  badBodies = 0;

  add(reply: { status: number; body: string } | undefined): void {
    const status = reply?.status ?? 0;
    this.status.set(status, (this.status.get(status) ?? 0) + 1);
    if (!reply) return;
    if (reply.body.includes(TOKEN)) this.sentinelSeen++;
    if (status >= 400 && !isErrorBody(reply.body)) this.badBodies++;
  }

  count(pred: (status: number) => boolean): number {
    let n = 0;
    for (const [s, c] of this.status) if (pred(s)) n += c;
    return n;
  }

  json(): Record<string, unknown> {
    return {
      requests: this.count(() => true),
      status: Object.fromEntries([...this.status].sort(([a], [b]) => a - b).map(([s, c]) => [s === 0 ? 'none' : String(s), c])),
      '5xx': this.count((s) => s >= 500),
      errors: this.count((s) => s === 0),
      nonJsonErrorBodies: this.badBodies,
      sentinelSeen: this.sentinelSeen,
    };
  }
}

function isErrorBody(body: string): boolean {
  try {
    const v = JSON.parse(body) as unknown;
    return !!v && typeof v === 'object' && Object.keys(v).length === 1 && typeof (v as { error?: unknown }).error === 'string' && !body.includes('\n');
  } catch {
    return false;
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

interface Probe {
  readonly label: string;
  readonly data: Buffer;
}

interface Traffic {
  readonly requests: number;
  /** Not answered 200. */
  readonly failed: number;
  readonly wrongLabel: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Normal clients: classify requests one after another until `stop` resolves (at least `min` each). */
async function classifyTraffic(url: string, probes: readonly Probe[], stop: Promise<unknown>, min = 5): Promise<Traffic> {
  let stopped = false;
  const halt = (): void => void (stopped = true);
  stop.then(halt, halt);
  const latencies: number[] = [];
  let requests = 0;
  let wrong = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: TRAFFIC_CLIENTS }, async (_, client) => {
      for (let i = 0; !stopped || i < min; i++) {
        const p = probes[(i * TRAFFIC_CLIENTS + client) % probes.length]!;
        const t = performance.now();
        requests++;
        try {
          const res = await fetch(`${url}/v1/models/${MODEL}/classify`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(p.data) });
          const body = await res.text();
          latencies.push(performance.now() - t);
          if (res.status !== 200) failed++;
          else if ((JSON.parse(body) as ClassifyResponse).top[0]?.label !== p.label) wrong++;
        } catch {
          failed++;
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { requests, failed, wrongLabel: wrong, p50Ms: Math.round(percentile(latencies, 0.5)), p99Ms: Math.round(percentile(latencies, 0.99)), maxMs: Math.round(latencies.at(-1) ?? NaN) };
}

interface Memory {
  readonly rssMb: number;
  readonly heapUsedMb: number;
  readonly externalMb: number;
}

function roundMemory(m: Memory): Memory {
  return { rssMb: +m.rssMb.toFixed(1), heapUsedMb: +m.heapUsedMb.toFixed(1), externalMb: +m.externalMb.toFixed(1) };
}

/** RSS and peak RSS of a process, from /proc (Linux). */
async function rssOf(pid: number): Promise<{ rssMb: number; hwmMb: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
}

async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/** Runs `fn` on every item, at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

async function snapshot(dir: string, skip: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(e.parentPath, e.name);
    if (path === skip || path.startsWith(`${skip}/`)) continue;
    const s = await lstat(path);
    out.set(relative(dir, path), `${s.isDirectory() ? 'dir' : s.size} ${s.mtimeMs}`);
  }
  return out;
}

function sameSnapshot(a: Map<string, string>, b: Map<string, string>): string[] {
  const diff: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) diff.push(k);
  for (const k of b.keys()) if (!a.has(k)) diff.push(k);
  return diff;
}

/** The sum of every numeric `key` anywhere in `value`. */
function sumKey(value: unknown, key: string): number {
  if (!value || typeof value !== 'object') return 0;
  let n = 0;
  for (const [k, v] of Object.entries(value)) n += k === key && typeof v === 'number' ? v : sumKey(v, key);
  return n;
}

// --- the cases -------------------------------------------------------------------------------

/** What a case measured, and the checks it must pass. */
interface CaseResult {
  readonly report: Record<string, unknown>;
  readonly checks: Record<string, boolean>;
}

interface Env {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly probes: readonly Probe[];
  readonly jobsDir: string;
  readonly jobPhotos: readonly { field: string; filename: string; data: Buffer }[];
}

async function connectionsCase(env: Env): Promise<CaseResult> {
  const tally = new Tally();
  const fdsBefore = await openFds(env.pid);
  const conns: RawConnection[] = [];
  // Opened 100 at a time, so the listen queue (backlog 511) is not what this measures.
  for (let i = 0; i < SCALE.connections; i += 100) conns.push(...(await Promise.all(Array.from({ length: Math.min(100, SCALE.connections - i) }, () => RawConnection.open(env.port)))));
  for (const c of conns) c.write(rawHttp('GET', '/healthz', {}));
  for (const r of await Promise.all(conns.map((c) => c.response(30_000)))) tally.add(r);
  const fdsHeld = await openFds(env.pid);
  // Held open and idle: normal clients meanwhile.
  const idleTraffic = await classifyTraffic(env.url, env.probes, Promise.resolve(), 50);
  // Then all at once: one in four a photo, the others the model detail, with normal clients alongside.
  const kinds = conns.map((_, i) => (i % 4 === 0 ? 'classify' : 'detail'));
  for (const [i, c] of conns.entries()) {
    const p = env.probes[i % env.probes.length]!;
    c.write(kinds[i] === 'classify' ? rawHttp('POST', `/v1/models/${MODEL}/classify`, { 'Content-Type': 'image/jpeg' }, p.data) : rawHttp('GET', `/v1/models/${MODEL}`, {}));
  }
  const t = performance.now();
  const burst = Promise.all(conns.map((c) => c.response(60_000)));
  const burstTraffic = await classifyTraffic(env.url, env.probes, burst);
  const answers = await burst;
  const burstSeconds = (performance.now() - t) / 1000;
  let wrong = 0;
  for (const [i, r] of answers.entries()) {
    tally.add(r);
    if (kinds[i] === 'classify' && r?.status === 200 && (JSON.parse(r.body) as ClassifyResponse).top[0]?.label !== env.probes[i % env.probes.length]!.label) wrong++;
  }
  const stillOpen = conns.filter((c) => c.open).length;
  for (const c of conns) c.destroy();
  await new Promise((r) => setTimeout(r, 1000));
  const fdsAfter = await openFds(env.pid);
  return {
    report: {
      connections: SCALE.connections,
      ...tally.json(),
      heldOpenAfterBurst: stillOpen,
      burstSeconds: +burstSeconds.toFixed(1),
      burstClassifyWrongLabel: wrong,
      serverFds: { before: fdsBefore, held: fdsHeld, afterClose: fdsAfter },
      classifyWhileHeldIdle: idleTraffic,
      classifyDuringBurst: burstTraffic,
    },
    checks: {
      allAnswered200: tally.count((s) => s === 200) === 2 * SCALE.connections,
      burstClassifyRight: wrong === 0,
      keptAlive: stillOpen === SCALE.connections,
      connectionsReleased: fdsAfter < fdsBefore + 20,
    },
  };
}

async function slowlorisCase(env: Env): Promise<CaseResult> {
  const tally = new Tally();
  const route = `/v1/models/${MODEL}/classify`;
  const photo = env.probes[0]!.data;
  const job = multipartBody(env.jobPhotos);
  const one = multipartBody([{ field: 'f', filename: 'a.jpg', data: photo }]);
  const kinds: [string, Buffer][] = [
    ['headers', Buffer.from(`GET /v1/models HTTP/1.1\r\nHost: x\r\nUser-Agent: ${'s'.repeat(2000)}\r\n\r\n`)],
    ['raw body', rawHttp('POST', route, { 'Content-Type': 'image/jpeg' }, photo)],
    ['multipart classify', rawHttp('POST', route, { 'Content-Type': one.contentType }, one.body)],
    ['job upload', rawHttp('POST', '/v1/jobs', { 'Content-Type': job.contentType }, job.body)],
    ['nothing sent', Buffer.alloc(0)],
  ];
  const per = Math.ceil(SCALE.slowloris / kinds.length);
  const cutMs: number[] = [];
  let notCut = 0;
  const attack = Promise.all(
    kinds.flatMap(([name, payload]) =>
      Array.from({ length: per }, async () => {
        const split = name === 'headers' || name === 'nothing sent' ? 0 : payload.indexOf('\r\n\r\n') + 4;
        const r = await trickle(env.port, payload.subarray(split), 100, TIMEOUT_MS * 4, payload.subarray(0, split));
        tally.add(r.reply);
        if (r.serverClosed) cutMs.push(r.ms);
        else notCut++;
      }),
    ),
  );
  const traffic = await classifyTraffic(env.url, env.probes, attack);
  await attack;
  cutMs.sort((a, b) => a - b);
  const bound = TIMEOUT_MS + CHECK_MS + 1000;
  return {
    report: {
      sockets: per * kinds.length,
      ...tally.json(),
      cutOffByServer: cutMs.length,
      notCutOff: notCut,
      cutAfterMs: { min: Math.round(cutMs[0] ?? NaN), max: Math.round(cutMs.at(-1) ?? NaN), bound },
      classifyDuring: traffic,
    },
    checks: { all408: tally.count((s) => s === 408) === per * kinds.length, allCutOffInTime: notCut === 0 && (cutMs.at(-1) ?? Infinity) < bound },
  };
}

/** 200 malformed requests: malformed HTTP, malformed multipart and wrong content types on every upload route. */
async function malformedCase(env: Env): Promise<CaseResult> {
  const tally = new Tally();
  const uploads = [`/v1/models/${MODEL}/classify`, `/v1/models/${MODEL}/classify/batch`, '/v1/jobs'];
  const corpus: { payload: Buffer; status: number }[] = [
    ...malformedHttp(MODEL),
    ...uploads.flatMap((route) => malformedMultipart().map((m) => ({ payload: rawHttp('POST', route, { 'Content-Type': m.contentType }, Buffer.from(m.body, 'latin1')), status: m.status }))),
    ...uploads.flatMap((route) =>
      wrongContentTypes(env.probes[0]!.data).map((w) => ({ payload: rawHttp('POST', route, w.contentType === undefined ? {} : { 'Content-Type': w.contentType }, w.body), status: w.status })),
    ),
  ];
  const requests = Array.from({ length: SCALE.malformed }, (_, i) => corpus[i % corpus.length]!);
  let unexpected = 0;
  const attack = pool(requests, 50, async ({ payload, status }) => {
    const r = await sendRaw(env.port, payload, 30_000);
    tally.add(r);
    if (r?.status !== status) unexpected++;
  });
  const traffic = await classifyTraffic(env.url, env.probes, attack);
  await attack;
  return {
    report: { distinct: corpus.length, ...tally.json(), unexpectedStatus: unexpected, classifyDuring: traffic },
    checks: { all4xx: tally.count((s) => s >= 400 && s < 500) === requests.length, eachTheExpectedStatus: unexpected === 0 },
  };
}

async function traversalCase(env: Env): Promise<CaseResult> {
  const tally = new Tally();
  const attempts = traversalAttempts(`${MODEL}.model`, MODEL);
  const attack = pool(attempts, 20, async ([method, path]) => tally.add(await rawRequest(env.port, path, method)));
  const traffic = await classifyTraffic(env.url, env.probes, attack);
  await attack;
  return { report: { ...tally.json(), classifyDuring: traffic }, checks: { all4xx: tally.count((s) => s >= 400 && s < 500) === attempts.length } };
}

async function sizeLimitCase(env: Env): Promise<CaseResult> {
  const atLimit = Buffer.concat([env.probes[0]!.data, Buffer.alloc(LIMIT - env.probes[0]!.data.length)]);
  const over = Buffer.concat([atLimit, Buffer.alloc(1)]);
  const route = `/v1/models/${MODEL}/classify`;
  const raw = (data: Buffer): Buffer => rawHttp('POST', route, { 'Content-Type': 'image/jpeg' }, data);
  const form = (data: Buffer): Buffer => {
    const f = multipartBody([{ field: 'f', filename: 'p.jpg', data }]);
    return rawHttp('POST', route, { 'Content-Type': f.contentType }, f.body);
  };
  const groups: Record<string, { payload: Buffer; tally: Tally; expect: number; label?: string }> = {
    rawAtLimit: { payload: raw(atLimit), tally: new Tally(), expect: 200, label: env.probes[0]!.label },
    rawOneOver: { payload: raw(over), tally: new Tally(), expect: 413 },
    multipartAtLimit: { payload: form(atLimit), tally: new Tally(), expect: 200, label: env.probes[0]!.label },
    multipartOneOver: { payload: form(over), tally: new Tally(), expect: 413 },
  };
  let wrong = 0;
  const work = Object.values(groups).flatMap((g) => Array.from({ length: 25 }, () => g));
  const attack = pool(work, 10, async (g) => {
    const r = await sendRaw(env.port, g.payload, 60_000);
    g.tally.add(r);
    if (g.label && r?.status === 200 && (JSON.parse(r.body) as ClassifyResponse).top[0]?.label !== g.label) wrong++;
  });
  const traffic = await classifyTraffic(env.url, env.probes, attack);
  await attack;
  return {
    report: { limitBytes: LIMIT, ...Object.fromEntries(Object.entries(groups).map(([k, g]) => [k, g.tally.json()])), atLimitWrongLabel: wrong, classifyDuring: traffic },
    checks: { atLimitTaken200OneOver413: Object.values(groups).every((g) => g.tally.count((s) => s === g.expect) === 25) && wrong === 0 },
  };
}

async function jobDisconnectCase(env: Env): Promise<CaseResult> {
  const before = (await readdir(env.jobsDir)).sort();
  const f = multipartBody(env.jobPhotos, { name: 'cut' });
  const request = rawHttp('POST', '/v1/jobs', { 'Content-Type': f.contentType }, f.body);
  const random = createRng(7);
  const cuts = Array.from({ length: SCALE.disconnects }, () => ({ at: Math.floor(random() * (request.length - 1)), delay: Math.floor(random() * 50) }));
  const attack = pool(cuts, 10, async ({ at, delay }) => {
    const c = await RawConnection.open(env.port);
    c.write(request.subarray(0, at));
    await new Promise((r) => setTimeout(r, delay));
    c.destroy();
  });
  const traffic = await classifyTraffic(env.url, env.probes, attack);
  await attack;
  let leftovers: string[] = [];
  const deadline = performance.now() + 5000;
  do {
    await new Promise((r) => setTimeout(r, 100));
    leftovers = (await readdir(env.jobsDir)).filter((n) => n.includes('.upload-'));
  } while (leftovers.length > 0 && performance.now() < deadline);
  const after = (await readdir(env.jobsDir)).filter((n) => !n.includes('.upload-')).sort();
  // Then a whole job: it must be taken and run to the end.
  const t = performance.now();
  const later = multipartBody(env.jobPhotos, { name: 'later' });
  const res = await fetch(`${env.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': later.contentType }, body: new Uint8Array(later.body) });
  const view = (await res.json()) as JobView;
  const final = res.status === 202 ? (await followEvents(`${env.url}${view.links.events}`)).final : undefined;
  return {
    report: {
      uploads: SCALE.disconnects,
      cutAtBytes: { min: Math.min(...cuts.map((c) => c.at)), max: Math.max(...cuts.map((c) => c.at)), of: request.length },
      halfJobsLeft: leftovers.length,
      jobsCreated: after.length - before.length,
      laterJob: { status: res.status, final: final?.status ?? null, seconds: +((performance.now() - t) / 1000).toFixed(1) },
      classifyDuring: traffic,
    },
    checks: { noHalfJobs: leftovers.length === 0 && after.length === before.length, laterJobDone: final?.status === 'done' },
  };
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'headswap-bench-stress-'));
  const root = join(base, 'srv');
  const data = join(root, 'data');
  const cache = join(data, 'cache');
  let stopServer = async (): Promise<void> => {};
  try {
    await mkdir(data, { recursive: true });
    const secret = JSON.stringify({ name: 'headswap', format: 'headswap-model', secret: TOKEN });
    for (const name of ['secret.txt', 'headswap.json', 'labels.json', 'model.onnx', 'report.html', 'index.html']) await writeFile(join(root, name), secret);
    await cp(packagePath('dist', 'web'), join(root, 'web'), { recursive: true });
    const model = join(root, `${MODEL}.model`);
    await train({ data: join(CLOTHING7, 'train'), testDir: join(CLOTHING7, 'test'), out: model, cacheDir: cache });

    const proc = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--serve', model, data, cache, join(root, 'web')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    stopServer = async () => {
      proc.kill('SIGTERM');
      await exited;
    };
    // The first line is the URL; each later line answers a SIGUSR2 with the server's memory.
    const lines: string[] = [];
    let wake: (() => void) | undefined;
    let pending = '';
    proc.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop()!;
      lines.push(...parts);
      wake?.();
    });
    const nextLine = async (): Promise<string> => {
      while (lines.length === 0) {
        if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
        await new Promise<void>((resolve) => (wake = resolve));
      }
      return lines.shift()!;
    };
    proc.on('exit', () => wake?.());
    const url = await nextLine();
    const memory = async (): Promise<Memory> => {
      proc.kill('SIGUSR2');
      return roundMemory(JSON.parse(await nextLine()) as Memory);
    };
    const pid = proc.pid!;
    const port = Number(new URL(url).port);

    // One test photo per class that the server gets right before any attack.
    const probes: Probe[] = [];
    for (const c of (await readdir(join(CLOTHING7, 'test'))).sort()) {
      for (const n of (await readdir(join(CLOTHING7, 'test', c))).sort().slice(0, 10)) {
        const photo = await readFile(join(CLOTHING7, 'test', c, n));
        const res = await fetch(`${url}/v1/models/${MODEL}/classify`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(photo) });
        if (res.status === 200 && (((await res.json()) as ClassifyResponse).top[0]?.label ?? '') === c) {
          probes.push({ label: c, data: photo });
          break;
        }
      }
    }
    const jobPhotos: { field: string; filename: string; data: Buffer }[] = [];
    for (const c of ['hat', 'shoes']) {
      for (const n of (await readdir(join(CLOTHING7, 'train', c))).sort().slice(0, 3)) jobPhotos.push({ field: c, filename: n, data: await readFile(join(CLOTHING7, 'train', c, n)) });
    }
    const env: Env = { url, port, pid, probes, jobsDir: join(data, 'jobs'), jobPhotos };

    let peak = 0;
    const sampler = setInterval(() => void rssOf(pid).then((r) => (peak = Math.max(peak, r.rssMb)), () => {}), 100);
    const baseline = await classifyTraffic(url, probes, Promise.resolve(), 100);
    const memBefore = await memory();
    const treeBefore = await snapshot(base, data);
    const checks: Record<string, boolean> = {};
    const run: [string, (e: Env) => Promise<CaseResult>][] = [
      ['connections', connectionsCase],
      ['slowloris', slowlorisCase],
      ['malformed', malformedCase],
      ['pathTraversal', traversalCase],
      ['sizeLimit', sizeLimitCase],
      ['jobDisconnects', jobDisconnectCase],
    ];
    const rounds: { round: number; cases: Record<string, Record<string, unknown>>; memoryAfter: Memory }[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const cases: Record<string, Record<string, unknown>> = {};
      for (const [name, fn] of run) {
        const r = await fn(env);
        cases[name] = r.report;
        for (const [k, v] of Object.entries(r.checks)) checks[`${name}.${k}`] = (checks[`${name}.${k}`] ?? true) && v;
      }
      rounds.push({ round, cases, memoryAfter: await memory() });
    }
    const after = await classifyTraffic(url, probes, Promise.resolve(), 50);
    const health = await fetch(`${url}/healthz`);
    await new Promise((r) => setTimeout(r, 1000));
    clearInterval(sampler);
    const memAfter = await memory();
    const hwmMb = (await rssOf(pid)).hwmMb;
    const changed = sameSnapshot(treeBefore, await snapshot(base, data));

    // Totals over every case's counts and every stretch of normal traffic.
    const sum = (key: string): number => sumKey(rounds, key);
    Object.assign(checks, {
      no5xx: sum('5xx') === 0,
      everyRefusalOneLineJsonError: sum('nonJsonErrorBodies') === 0,
      noSentinelContentServed: sum('sentinelSeen') === 0,
      classifyStillRightDuringAndAfter: sum('failed') + after.failed === 0 && sum('wrongLabel') + after.wrongLabel === 0 && health.status === 200,
      nothingWrittenOutsideData: changed.length === 0,
      rssGrowthUnder200Mb: memAfter.rssMb - memBefore.rssMb < 200,
      // No leak: what stays reachable after all the attacks is about what was there before.
      liveHeapGrowthUnder20Mb: memAfter.heapUsedMb - memBefore.heapUsedMb < 20,
    });
    const result = {
      server: { maxImageBytes: LIMIT, requestTimeoutMs: TIMEOUT_MS, cores: availableParallelism() },
      classifyBaseline: baseline,
      rounds,
      classifyAfter: after,
      memoryMb: {
        // After a full GC in the server: RSS, the live JS heap, and memory held outside it (buffers).
        before: memBefore,
        afterEachRound: rounds.map((r) => r.memoryAfter),
        after: memAfter,
        rssPeakDuringAttacks: +peak.toFixed(1),
        rssPeakSinceStart: +hwmMb.toFixed(1),
        rssGrowth: +(memAfter.rssMb - memBefore.rssMb).toFixed(1),
      },
      filesChangedOutsideData: changed,
      checks,
    };
    console.log(JSON.stringify(result, null, 2));
    if (!Object.values(checks).every(Boolean)) process.exitCode = 1;
  } finally {
    await stopServer();
    await rm(base, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serveChild(process.argv[3]!, process.argv[4]!, process.argv[5]!, process.argv[6]!);
else await main();
