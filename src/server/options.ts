import { join, resolve } from 'node:path';
import envPaths from 'env-paths';
import { packagePath } from '../util/paths.js';

/** What one request (or one training job) may ask of the server. */
export interface ServerLimits {
  /** Largest image file, in bytes (raw body or one multipart file). */
  readonly maxImageBytes: number;
  /** Largest width*height of an image, checked from its header before decoding. */
  readonly pixelLimit: number;
  /** Most images in one batch classify request. */
  readonly maxBatchImages: number;
  /** Most photos, classes and total bytes in one training job. */
  readonly maxJobImages: number;
  readonly maxJobClasses: number;
  readonly maxJobBytes: number;
  /** Training jobs waiting behind the running one; one more is answered 429. */
  readonly maxQueuedJobs: number;
  /** A request not answered in this time gets 408 (streams of job progress are exempt). */
  readonly requestTimeoutMs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxImageBytes: 20 * 1024 * 1024,
  // Half the library's default: a server decodes several images at once.
  pixelLimit: 50_000_000,
  maxBatchImages: 32,
  maxJobImages: 2000,
  maxJobClasses: 100,
  maxJobBytes: 1024 * 1024 * 1024,
  maxQueuedJobs: 4,
  requestTimeoutMs: 120_000,
};

export interface ServerOptions {
  /** Where trained models and jobs are kept (survives restarts); default `defaultDataDir()`. */
  readonly dataDir?: string;
  /** Extra model folders written by `headswap train`, served read-only. */
  readonly models?: readonly string[];
  /** Feature cache and backbone downloads; default $HEADSWAP_CACHE or the user cache folder. */
  readonly cacheDir?: string;
  readonly limits?: Partial<ServerLimits>;
  /** Cap in seconds on the optional transfer-vs-scratch step of a training job (default 20). */
  readonly compareBudgetSeconds?: number;
  /** The built page; default the package's `dist/web`. */
  readonly webRoot?: string;
  /** onnxruntime threads per loaded model; default all cores. */
  readonly threads?: number;
  /** Log requests as JSON lines on stdout (fastify's pino logger). */
  readonly logger?: boolean;
  /** Skipped model or job folders and failures outside any request; default the logger. */
  readonly onWarning?: (message: string) => void;
}

export const DEFAULT_COMPARE_BUDGET_SECONDS = 20;

/** `~/.local/share/headswap/server` on Linux (the platform's user data folder elsewhere). */
export function defaultDataDir(): string {
  return join(envPaths('headswap', { suffix: '' }).data, 'server');
}

export function defaultWebRoot(): string {
  return packagePath('dist', 'web');
}

/** The server's own folders: every file it reads for a request lies under one of them or a served model folder. */
export interface DataDirs {
  readonly root: string;
  readonly models: string;
  readonly jobs: string;
}

export function dataDirs(root: string): DataDirs {
  const abs = resolve(root);
  return { root: abs, models: join(abs, 'models'), jobs: join(abs, 'jobs') };
}
