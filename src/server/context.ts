import type { Jobs } from './jobs.js';
import type { Metrics } from './metrics.js';
import type { ServerLimits } from './options.js';
import type { ModelRegistry } from './registry.js';

/** What the route modules share. */
export interface ServerContext {
  readonly limits: ServerLimits;
  readonly registry: ModelRegistry;
  readonly jobs: Jobs;
  readonly metrics: Metrics;
  readonly startedAt: number;
}
