/**
 * `--http host:port`: the service's operations endpoint.
 *
 *   GET /metrics   Prometheus text: mayhem's figures (prometheus.ts), loopwatch's event-loop lag,
 *                  utilisation and stalls, and Node's default process metrics; a snapshot at most
 *                  `--http-metrics-max-age` old, rendered once for every scrape meanwhile
 *   GET /healthz   200 while the service's thread answers (liveness)
 *   GET /          an experiment's report, live and read-only (`--experiment`): one HTML page
 *   GET /readyz    200 once consuming, with the broker and the database answering ("paused: …"
 *                  while the kill switch holds: a paused instance is healthy); 503 with the
 *                  reason otherwise — from the moment a shutdown begins, so a load balancer or
 *                  orchestrator stops sending work before the service stops taking it
 *
 * The socket belongs to a worker thread (http-thread.ts: connections capped, timeouts, 431, a lower
 * priority); this thread only answers its questions, so scrapers cannot slow the work down.
 * It opens first (a port in use fails the start before anything connects) and closes last, after
 * the summary, so a final scrape still sees the last figures.
 */
import { Worker } from 'node:worker_threads';
import { monitorLoopLag, type LoopLagMonitor } from 'loopwatch';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { errorText } from '../core/errors.js';
import type { Answer, AskKind, FromThread, HttpThreadData, ToThread } from './http-protocol.js';
import { splitHostPort } from './listen-address.js';
import { createPrometheusMetrics, type PrometheusMetrics } from './prometheus.js';

export interface ServiceState {
  /** Aborted the moment a shutdown begins. */
  readonly shuttingDown: AbortSignal;
  readonly storageHealth: { readonly down: boolean };
  readonly brokerHealth: { readonly down: boolean };
  /** Why restarts are paused fleet-wide, when they are (ready all the same). */
  readonly paused?: () => string | undefined;
}

export interface HttpEndpoint {
  /** `http://127.0.0.1:9464` (the port actually bound, when 0 was asked for). */
  readonly url: string;
  readonly metrics: PrometheusMetrics;
  /** The service consumes from now on: readiness follows `state`. Until then /readyz says "starting". */
  attach(state: ServiceState): void;
  /** Serve this page at `/` (the experiment's report, rendered on each request). */
  attachReport(render: () => Promise<string>): void;
  /** Why the service is not ready, or undefined when it is. */
  notReady(): string | undefined;
  /** Stop serving (open connections get up to a second to finish). */
  close(): Promise<void>;
}

export interface HttpEndpointOptions {
  /** `host:port` (`[::1]:9464` for IPv6; port 0 = any free port). */
  readonly listen: string;
  readonly logger: Logger;
  /** How often loopwatch samples the event loop, ms (default 10,000). */
  readonly loopLagIntervalMs?: number;
  /** Connections held at most (default 64). */
  readonly maxConnections?: number;
  /** Headers, a whole request, an idle connection: each closed past this, ms (default 10,000). */
  readonly timeoutMs?: number;
  /** /metrics is a snapshot at most this old, ms (default 1,000; 0 = rendered for each scrape). */
  readonly metricsMaxAgeMs?: number;
}

/** Request headers larger than this are answered 431 (Node's default, stated). */
const MAX_HEADER_BYTES = 16 * 1024;
/** How much lower the endpoint thread's priority is (nice), so the service's thread comes first. */
const THREAD_NICENESS = 10;

function threadUrl(): URL {
  const here = import.meta.url;
  // Under vitest this module runs from its .ts source; the thread runs from the build.
  if (here.endsWith('.ts'))
    return new URL(here.replace(/\/src\/metrics\/http-server\.ts$/, '/dist/src/metrics/http-thread.js'));
  return new URL('./http-thread.js', here);
}

export async function openHttpEndpoint(o: HttpEndpointOptions): Promise<HttpEndpoint> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = createPrometheusMetrics(registry);
  let state: ServiceState | undefined;
  let report: (() => Promise<string>) | undefined;
  const notReady = (): string | undefined => {
    if (state === undefined) return 'starting';
    if (state.shuttingDown.aborted) return 'shutting down';
    const down = [
      state.storageHealth.down ? 'database unavailable' : '',
      state.brokerHealth.down ? 'broker unavailable' : '',
    ].filter(Boolean);
    return down.length > 0 ? down.join(', ') : undefined;
  };

  async function answer(kind: AskKind): Promise<Answer> {
    switch (kind) {
      case 'metrics':
        try {
          return { status: 200, body: await registry.metrics(), contentType: registry.contentType };
        } catch (err) {
          o.logger.warn({ err: errorText(err) }, 'Could not collect metrics for a scrape');
          return { status: 500, body: `could not collect metrics: ${errorText(err)}\n` };
        }
      case 'live':
        return { status: 200, body: 'ok\n' };
      case 'ready': {
        const why = notReady();
        if (why !== undefined) return { status: 503, body: `not ready: ${why}\n` };
        const paused = state?.paused?.();
        return { status: 200, body: paused === undefined ? 'ready\n' : `paused: ${paused}\n` };
      }
      case 'report': {
        if (report === undefined) return { status: 404, body: 'no report: run with --experiment NAME\n' };
        try {
          return { status: 200, body: await report(), contentType: 'text/html; charset=utf-8' };
        } catch (err) {
          return { status: 500, body: `could not build the report: ${errorText(err)}\n` };
        }
      }
    }
  }

  const { host, port } = splitHostPort(o.listen);
  const data: HttpThreadData = {
    host,
    port,
    maxConnections: o.maxConnections ?? 64,
    timeoutMs: o.timeoutMs ?? 10_000,
    maxHeaderBytes: MAX_HEADER_BYTES,
    metricsMaxAgeMs: o.metricsMaxAgeMs ?? 1000,
    niceness: THREAD_NICENESS,
  };
  // execArgv []: the thread must not run `--import loopwatch/register` (or any other preload) itself.
  const worker = new Worker(threadUrl(), { workerData: data, execArgv: [] });
  const send = (m: ToThread): void => worker.postMessage(m);
  let closing = false;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('error', (err) => o.logger.error({ err: errorText(err) }, `HTTP endpoint stopped: ${errorText(err)}`));
  const listening = new Promise<{ address: string; family: string; port: number }>((resolve, reject) => {
    const failed = (why: string, code: string | undefined): void =>
      reject(new Error(`cannot serve --http on ${o.listen}: ${why} (${code ?? 'error'})`));
    worker.on('message', (m: FromThread) => {
      switch (m.type) {
        case 'listening':
          return resolve(m);
        case 'failed':
          return failed(
            m.code === 'EADDRINUSE'
              ? 'address already in use'
              : m.code === 'EADDRNOTAVAIL'
                ? 'no such local address'
                : m.message,
            m.code,
          );
        case 'ask':
          void answer(m.kind).then((a) => send({ type: 'answer', id: m.id, answer: a }));
          return;
        case 'log':
          o.logger[m.level](m.fields ?? {}, m.msg);
          return;
        case 'closed':
          return;
      }
    });
    worker.once('exit', () => {
      if (!closing) failed('the endpoint thread stopped', undefined);
    });
  });
  let address: { address: string; family: string; port: number };
  try {
    address = await listening;
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  const lag: LoopLagMonitor = monitorLoopLag({
    registry,
    intervalMs: o.loopLagIntervalMs ?? 10_000,
    onError: (m) => o.logger.warn(m),
  });
  await lag.ready;
  o.logger.info({ http: url }, `Serving /metrics, /healthz and /readyz on ${url}`);

  return {
    url,
    metrics,
    attach(s) {
      state = s;
    },
    attachReport(render) {
      report = render;
    },
    notReady,
    close: async () => {
      lag.stop();
      if (closing) return exited;
      closing = true;
      send({ type: 'close' });
      await exited;
    },
  };
}
