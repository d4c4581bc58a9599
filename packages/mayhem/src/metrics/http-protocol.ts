/** What the `--http` endpoint's two halves say to each other (http-server.ts ⇄ http-thread.ts). */

/** What the worker asks the main thread for: figures, readiness, liveness, the report page. */
export type AskKind = 'metrics' | 'ready' | 'live' | 'report';

export interface HttpThreadData {
  readonly host: string;
  readonly port: number;
  /** Connections held at most; a new one past it takes the place of the oldest idle one, else is closed. */
  readonly maxConnections: number;
  /** Headers, a whole request and an idle connection each get this long. */
  readonly timeoutMs: number;
  /** Longest a request's header block may be, bytes (431 past it). */
  readonly maxHeaderBytes: number;
  /** /metrics is served from a snapshot at most this old (ms); concurrent scrapes share one. */
  readonly metricsMaxAgeMs: number;
  /** Added to the thread's nice value (Linux: per thread), so the service's own thread comes first. */
  readonly niceness: number;
}

/** An answer of the main thread: a body (or why there is none). */
export interface Answer {
  readonly status: number;
  readonly body: string;
  readonly contentType?: string;
}

export type ToThread =
  { readonly type: 'answer'; readonly id: number; readonly answer: Answer } | { readonly type: 'close' };

export type FromThread =
  | { readonly type: 'listening'; readonly address: string; readonly family: string; readonly port: number }
  | { readonly type: 'failed'; readonly code: string | undefined; readonly message: string }
  | { readonly type: 'ask'; readonly id: number; readonly kind: AskKind }
  | { readonly type: 'log'; readonly level: 'warn' | 'info'; readonly msg: string; readonly fields?: object }
  | { readonly type: 'closed' };
