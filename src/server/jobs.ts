import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError } from '../errors.js';
import { processAlive, writeFileAtomic } from '../util/fs.js';
import { RequestError } from './errors.js';
import type { JobEvent, JobProgress, JobRecord, JobResult } from './api-types.js';
import { isId } from './names.js';

const JOB_FILE = 'job.json';

export type JobRunner = (job: JobRecord, dir: string, onProgress: (p: JobProgress) => void) => Promise<JobResult>;
type Listener = (event: JobEvent) => void;

/** Upload folders are `.<id>.upload-<pid>`: hidden until complete, and tied to the process writing them. */
const UPLOAD_RE = /^\.[a-z0-9-]+\.upload-(\d+)$/;

/**
 * Training jobs on disk (`jobs/<id>/job.json` + photos) and the queue that runs them one at a
 * time: training already uses every core, so two at once would only make both slower. Jobs
 * that were queued or running when the server stopped run again when it starts.
 */
export class Jobs {
  private readonly records = new Map<string, JobRecord>();
  private readonly pending: string[] = [];
  private readonly progress = new Map<string, JobProgress>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private running: { readonly id: string; readonly done: Promise<void> } | undefined;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly maxQueued: number,
    private readonly runner: JobRunner,
    private readonly onError: (message: string) => void,
  ) {}

  static async open(dir: string, options: { maxQueued: number; runner: JobRunner; onError: (message: string) => void }): Promise<Jobs> {
    const jobs = new Jobs(dir, options.maxQueued, options.runner, options.onError);
    await mkdir(dir, { recursive: true });
    const resume: JobRecord[] = [];
    for (const name of await readdir(dir)) {
      const upload = UPLOAD_RE.exec(name);
      if (upload) {
        // An upload cut short by a crash; a live process's upload is left alone.
        if (!processAlive(Number(upload[1]))) await rm(join(dir, name), { recursive: true, force: true });
        continue;
      }
      if (!isId(name)) continue;
      try {
        const job = JSON.parse(await readFile(join(dir, name, JOB_FILE), 'utf8')) as JobRecord;
        if (job.id !== name) continue;
        if (job.status === 'queued' || job.status === 'running') resume.push({ ...job, status: 'queued' });
        jobs.records.set(name, job);
      } catch (err) {
        options.onError(`skipped job folder ${name}: ${describeError(err)}`);
      }
    }
    for (const job of resume.sort((a, b) => a.createdAt.localeCompare(b.createdAt))) {
      jobs.records.set(job.id, job);
      jobs.pending.push(job.id);
    }
    jobs.kick();
    return jobs;
  }

  get(id: string): JobRecord | undefined {
    return this.records.get(id);
  }

  /** Newest first. */
  list(): JobRecord[] {
    return [...this.records.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  get queued(): number {
    return this.pending.length;
  }

  get active(): number {
    return this.running ? 1 : 0;
  }

  /** How many jobs run before this one (the running one included): 0 when it runs or has finished. */
  position(id: string): number {
    const i = this.pending.indexOf(id);
    return i < 0 ? 0 : i + this.active;
  }

  lastProgress(id: string): JobProgress | undefined {
    return this.progress.get(id);
  }

  /** Refuses a job before its upload is read when the queue is already full. */
  assertRoom(): void {
    if (this.closed) throw new RequestError(503, 'the server is shutting down; try again in a moment');
    if (this.pending.length >= this.maxQueued) {
      throw new RequestError(429, `the training queue is full (${this.pending.length} jobs waiting); try again when a job has finished`);
    }
  }

  /** A fresh hidden folder for a job's upload; `submit` makes it the job's folder. */
  async uploadDir(id: string): Promise<string> {
    const dir = join(this.dir, `.${id}.upload-${process.pid}`);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  newJobDir(id: string): boolean {
    return !this.records.has(id) && !existsSync(join(this.dir, id));
  }

  jobDir(id: string): string {
    return join(this.dir, id);
  }

  /** Writes the job's record into its complete upload folder and queues it. */
  async submit(job: JobRecord, uploadDir: string): Promise<void> {
    // Checked again: other uploads may have filled the queue while this one was read.
    this.assertRoom();
    await writeFileAtomic(join(uploadDir, JOB_FILE), JSON.stringify(job));
    await rename(uploadDir, this.jobDir(job.id));
    this.records.set(job.id, job);
    this.pending.push(job.id);
    this.kick();
  }

  /** Calls `listener` on every event of the job until the returned function is called. */
  subscribe(id: string, listener: Listener): () => void {
    let set = this.listeners.get(id);
    if (!set) {
      set = new Set();
      this.listeners.set(id, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(id);
    };
  }

  /** Starts no more jobs and waits for the running one (training cannot be interrupted half-way). */
  async close(): Promise<void> {
    this.closed = true;
    await this.running?.done;
  }

  private emit(id: string, event: JobEvent): void {
    for (const listener of this.listeners.get(id) ?? []) listener(event);
  }

  private emitJob(id: string): void {
    const job = this.records.get(id);
    if (job) this.emit(id, { type: 'job', job });
  }

  private async update(id: string, change: Partial<JobRecord>): Promise<JobRecord> {
    const job = { ...this.records.get(id)!, ...change };
    this.records.set(id, job);
    await writeFileAtomic(join(this.jobDir(id), JOB_FILE), JSON.stringify(job));
    this.emitJob(id);
    return job;
  }

  private kick(): void {
    if (this.closed || this.running) return;
    const id = this.pending.shift();
    if (id === undefined) return;
    this.running = { id, done: this.execute(id) };
    for (const waiting of this.pending) this.emitJob(waiting);
  }

  private async execute(id: string): Promise<void> {
    try {
      const job = await this.update(id, { status: 'running', startedAt: new Date().toISOString() });
      try {
        const result = await this.runner(job, this.jobDir(id), (p) => {
          this.progress.set(id, p);
          this.emit(id, { type: 'progress', progress: p });
        });
        await this.update(id, { status: 'done', finishedAt: new Date().toISOString(), result });
      } catch (err) {
        await this.update(id, { status: 'failed', finishedAt: new Date().toISOString(), error: describeError(err) });
      }
    } catch (err) {
      // Only the job's own record could not be written (disk full, folder removed).
      this.onError(`job ${id}: ${describeError(err)}`);
    } finally {
      this.progress.delete(id);
      this.running = undefined;
      this.kick();
    }
  }
}
