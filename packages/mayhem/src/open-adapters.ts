/**
 * Opening the adapters of `mayhem run` from the config, in order, with rollback: what opened is
 * closed again (in the shutdown order) when a later one fails or a signal interrupts the start.
 * Opening files and connections is start-up: loopwatch does not report its sync calls.
 */
import { startup as whileStarting } from 'loopwatch';
import type { Logger } from 'pino';
import { openBroker } from './brokers/open.js';
import { parseNatsUrls } from './brokers/nats/url.js';
import type { Config } from './config/config.js';
import type { Broker, Metrics, Storage } from './core/contracts.js';
import { openExecutor, type OpenedExecutor } from './executors/open.js';
import { openHttpEndpoint, type HttpEndpoint } from './metrics/http-server.js';
import { isLoopbackHost, splitHostPort } from './metrics/listen-address.js';
import { openMetrics } from './metrics/open.js';
import type { StartupSignals } from './run-signals.js';
import { openStorage } from './storage/open.js';
import { previewStorage } from './storage/preview.js';
import type { Joined } from './fleet/join.js';

/** Every adapter of a run, open. */
export interface Adapters {
  readonly executor: OpenedExecutor;
  readonly http: HttpEndpoint | undefined;
  readonly metrics: Metrics;
  readonly storage: Storage;
  readonly broker: Broker;
  /** The fleet's settings this instance joined (read once storage is open, before the broker). */
  readonly joined: Joined;
  /** A leashed instance beside a fleet on a shared broker: it looks at the stream and takes nothing. */
  readonly browsing: boolean;
}

/** Close every adapter of a run that will not start after all, in the shutdown order. */
export async function closeAdapters(a: Adapters, logger: Logger): Promise<void> {
  const quietly = (p: Promise<void> | undefined): Promise<void> =>
    (p ?? Promise.resolve()).catch((err: unknown) => logger.debug({ err: String(err) }, 'Close failed'));
  await quietly(a.broker.close());
  await quietly(a.storage.close());
  await quietly(a.metrics.close());
  await quietly(a.http?.close());
  await quietly(a.executor.close());
}

/**
 * Open the executor, the HTTP endpoint, metrics, storage and the broker, listening to `startup`
 * meanwhile (stopped before this returns). Between storage and the broker the instance joins the
 * fleet's settings (`join`, which may refuse): a leashed preview on NATS then browses the stream
 * instead of joining the fleet's consumer, and keeps its records in process. `undefined` when a
 * signal interrupted the start: what had opened is closed; one still opening is not waited for, as
 * the process exits next. A failure closes what had opened and rethrows.
 */
export async function openAdapters(
  config: Config,
  deps: { logger: Logger; random: () => number; join: (storage: Storage) => Promise<Joined> },
  startup: StartupSignals,
): Promise<Adapters | undefined> {
  const { logger, random } = deps;
  const opened: {
    executor?: OpenedExecutor;
    http?: HttpEndpoint;
    metrics?: Metrics;
    storage?: Storage;
    broker?: Broker;
    joined?: Joined;
  } = {};
  let browsing = false;
  const closeOpened = async (): Promise<void> => {
    // What did open, in the shutdown order.
    await opened.broker?.close().catch(() => undefined);
    await opened.storage?.close().catch(() => undefined);
    await opened.metrics?.close().catch(() => undefined);
    await opened.http?.close().catch(() => undefined);
    await opened.executor?.close().catch(() => undefined);
  };
  const opening = whileStarting(async () => {
    // The executor first: a bad setting of it stops the start before anything listens or connects.
    opened.executor = await openExecutor(config, { logger, random });
    if (config.http !== undefined)
      opened.http = await openHttpEndpoint({
        listen: config.http,
        logger,
        maxConnections: config.httpMaxConnections,
        timeoutMs: config.httpTimeout,
        metricsMaxAgeMs: config.httpMetricsMaxAge,
      });
    if (opened.http !== undefined && !isLoopbackHost(splitHostPort(config.http!).host))
      logger.warn(
        { http: opened.http.url },
        `--http-public: ${opened.http.url} serves /metrics, /healthz, /readyz and the experiment report, without authentication, to anyone who can reach ${config.http!}`,
      );
    opened.metrics = await openMetrics(config.statsd, logger, opened.http?.metrics);
    opened.storage = await openStorage({
      url: config.db,
      logger,
      saveFailureRate: config.saveFailureRate,
      random,
      maxInFlight: config.maxInFlight,
      retentionMs: config.retention,
      deadLetterRetentionMs: config.deadLetterRetention,
    });
    opened.joined = await deps.join(opened.storage);
    browsing = opened.joined.preview && config.broker.startsWith('nats://');
    if (browsing) {
      opened.storage = previewStorage(opened.storage);
      const { openBrowsingBroker } = await import('./brokers/nats/index.js');
      opened.broker = await openBrowsingBroker({
        servers: parseNatsUrls(config.broker) ?? [],
        stream: config.stream,
        subject: config.subject,
        logger,
        auth: { credsFile: config.natsCreds, nkeyFile: config.natsNkey, tokenFile: config.natsTokenFile },
      });
      return;
    }
    opened.broker = await openBroker({
      url: config.broker,
      logger,
      ackDeadlineMs: config.ackDeadline,
      maxInFlight: config.maxInFlight,
      maxDeliveries: config.maxDeliveries,
      stream: config.stream,
      subject: config.subject,
      durable: config.durable,
      deadLetterSubject: config.deadLetterSubject,
      replicas: config.replicas,
      maxBacklog: config.maxBacklog,
      deadLetterMaxAgeMs: config.deadLetterMaxAge,
      deadLetterMaxBytes: config.deadLetterMaxBytes,
      maxMessageBytes: config.maxMessageBytes,
      auth: { credsFile: config.natsCreds, nkeyFile: config.natsNkey, tokenFile: config.natsTokenFile },
    });
  });
  try {
    await Promise.race([opening, startup.interrupted]);
  } catch (err) {
    startup.stop();
    await closeOpened();
    throw err;
  }
  startup.stop();
  if (startup.signal() !== undefined) {
    void opening.catch(() => undefined);
    await closeOpened();
    return undefined;
  }
  const { executor, metrics, storage, broker, joined } = opened as Required<typeof opened>;
  return { executor, http: opened.http, metrics, storage, broker, joined, browsing };
}
