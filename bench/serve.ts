/**
 * Load on `headswap serve`'s classify route: autocannon on loopback, 8 connections, 5000
 * requests (the four test photos in turn as raw bodies). Prints JSON: p50/p99 latency,
 * requests/s, the server's RSS before and after (from its own /metrics), non-2xx and 5xx
 * counts, and whether the floors hold (p99 < 1 s, RSS growth < 100 MB, no 5xx); exits 1 if not.
 *   npm run bench:serve
 * The server runs in a child process, so the load generator's memory is not counted as its own.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { createServer } from '../src/server/app.js';
import { train } from '../src/pipeline/train.js';
import { packagePath } from '../src/util/paths.js';

const CONNECTIONS = 8;
const REQUESTS = 5000;
const WARMUP = 200;
const PHOTOS = ['shoe-1.jpg', 'shoe-2.jpg', 'hat-1.jpg', 'dress-1.jpg'].map((f) => packagePath('test', 'fixtures', 'photos', f));
const FLOORS = { p99Ms: 1000, rssGrowthMb: 100 };

/** Child mode: serve `model` from `data` on a free loopback port and print the URL. */
async function serveChild(model: string, data: string, cache: string): Promise<void> {
  const app = await createServer({ dataDir: data, models: [model], cacheDir: cache });
  process.stdout.write(`${await app.listen({ port: 0, host: '127.0.0.1' })}\n`);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

async function rssMb(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^process_resident_memory_bytes (\d+)$/m.exec(text);
  if (!m) throw new Error('no process_resident_memory_bytes in /metrics');
  return Number(m[1]) / 2 ** 20;
}

async function load(url: string, amount: number): Promise<autocannon.Result> {
  const bodies = await Promise.all(PHOTOS.map((p) => readFile(p)));
  return autocannon({
    url: `${url}/v1/models/clothing7/classify`,
    connections: CONNECTIONS,
    amount,
    timeout: 30,
    requests: bodies.map((body) => ({ method: 'POST' as const, headers: { 'content-type': 'image/jpeg' }, body })),
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'headswap-bench-serve-'));
  let stopServer = async (): Promise<void> => {};
  try {
    const model = join(dir, 'clothing7.model');
    const cache = join(dir, 'cache');
    await train({ data: packagePath('data', 'clothing7', 'train'), testDir: packagePath('data', 'clothing7', 'test'), out: model, cacheDir: cache });
    const proc = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', model, join(dir, 'data'), cache], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    stopServer = async () => {
      proc.kill('SIGTERM');
      await exited;
    };
    const url = await new Promise<string>((resolve, reject) => {
      proc.stdout.on('data', (d: Buffer) => resolve(d.toString().trim()));
      proc.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    await load(url, WARMUP);
    const rssBefore = await rssMb(url);
    const r = await load(url, REQUESTS);
    const rssAfter = await rssMb(url);
    const result = {
      route: 'POST /v1/models/:id/classify (raw JPEG body, 224x224 MobileNetV2 + head)',
      connections: CONNECTIONS,
      requests: r.requests.total,
      seconds: +r.duration.toFixed(1),
      latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max },
      requestsPerSecond: +r.requests.average.toFixed(1),
      status: { '2xx': r['2xx'], non2xx: r.non2xx, '4xx': r['4xx'], '5xx': r['5xx'] },
      errors: r.errors,
      timeouts: r.timeouts,
      rssMb: { before: +rssBefore.toFixed(1), after: +rssAfter.toFixed(1), growth: +(rssAfter - rssBefore).toFixed(1) },
      floors: {
        p99Under1s: r.latency.p99 < FLOORS.p99Ms,
        rssGrowthUnder100Mb: rssAfter - rssBefore < FLOORS.rssGrowthMb,
        no5xx: r['5xx'] === 0 && r.errors === 0,
      },
    };
    console.log(JSON.stringify(result, null, 2));
    if (!Object.values(result.floors).every(Boolean)) process.exitCode = 1;
  } finally {
    await stopServer();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serveChild(process.argv[3]!, process.argv[4]!, process.argv[5]!);
else await main();
