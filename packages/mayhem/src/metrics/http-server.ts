/**
 * `--http host:port`: the service's operations endpoint.
 *
 *   GET /metrics   Prometheus text: mayhem's figures (prometheus.ts), loopwatch's event-loop lag,
 *                  utilisation and stalls, and Node's default process metrics
 *   GET /healthz   200 while the process serves requests (liveness)
 *   GET /          an experiment's report, live and read-only (`--experiment`): one HTML page
 *   GET /readyz    200 once consuming, with the broker and the database answering ("paused: …"
 *                  while the kill switch holds: a paused instance is healthy); 503 with the
 *                  reason otherwise — from the moment a shutdown begins, so a load balancer or
 *                  orchestrator stops sending work before the service stops taking it
 *
 * It opens first (a port in use fails the start before anything connects) and closes last, after
 * the summary, so a final scrape still sees the last figures.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorLoopLag, type LoopLagMonitor } from 'loopwatch';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { errorText } from '../core/errors.js';
import { createPrometheusMetrics, type PrometheusMetrics } from './prometheus.js';

/** What readiness is judged from (the pipeline's dependency health and the shutdown signal). */
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

  const server = createServer((req, res) => void serve(req, res));
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return reply(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    switch (path) {
      case '/metrics': {
        let text: string;
        try {
          text = await registry.metrics();
        } catch (err) {
          o.logger.warn({ err: errorText(err) }, 'Could not collect metrics for a scrape');
          return reply(res, 500, `could not collect metrics: ${errorText(err)}\n`);
        }
        return reply(res, 200, text, { 'content-type': registry.contentType });
      }
      case '/healthz':
        return reply(res, 200, 'ok\n');
      case '/readyz': {
        const why = notReady();
        if (why !== undefined) return reply(res, 503, `not ready: ${why}\n`);
        const paused = state?.paused?.();
        return reply(res, 200, paused === undefined ? 'ready\n' : `paused: ${paused}\n`);
      }
      case '/': {
        if (report === undefined) return reply(res, 404, 'no report: run with --experiment NAME\n');
        let page: string;
        try {
          page = await report();
        } catch (err) {
          return reply(res, 500, `could not build the report: ${errorText(err)}\n`);
        }
        return reply(res, 200, page, { 'content-type': 'text/html; charset=utf-8' });
      }
      default:
        return reply(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
    }
  }

  const { host, port } = splitHostPort(o.listen);
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => {
      reject(
        new Error(
          `cannot serve --http on ${o.listen}: ${err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EADDRNOTAVAIL' ? 'no such local address' : errorText(err)} (${err.code ?? 'error'})`,
        ),
      );
    };
    server.once('error', failed);
    server.listen({ host, port }, () => {
      server.off('error', failed);
      resolve();
    });
  });
  // A failing connection must not become an uncaught error of the service.
  server.on('error', (err) => o.logger.warn({ err: errorText(err) }, 'HTTP endpoint error'));
  const address = server.address() as AddressInfo;
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
    close: () => {
      lag.stop();
      return closeServer(server);
    },
  };
}

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function splitHostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), 1000);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
