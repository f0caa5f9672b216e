// Apart from database.ts so the published types of the cache and the run store do not import
// better-sqlite3's (whose @types package a consumer does not have).
export interface DatabaseOptions {
  readonly?: boolean;
  /** How long to wait for another process's write lock before failing; default 10 s. */
  busyTimeoutMs?: number;
}
