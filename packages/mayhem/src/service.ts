/**
 * The composition root of `mayhem run`: config → adapters (open-adapters.ts) → the core
 * (core/assemble.ts), with the shutdown latch and signals (run-signals.ts), the process-level exception
 * handler, `--count`, the memory broker's publisher, and the status line and summary
 * (run-report.ts). The only module that knows both the core and the adapters.
 */
import { activeMode, trackWork } from 'loopwatch';
import type { Logger } from 'pino';
import { backlogSource } from './brokers/open.js';
import { createMayhem } from './core/assemble.js';
import { hostname } from 'node:os';
import { errorText } from './core/errors.js';
import { Counters } from './core/counters.js';
import type { Outcome } from './core/pipeline.js';
import { shutdown } from './core/shutdown.js';
import { seededRandom } from './core/timing.js';
import { railsSettings, type Config } from './config/config.js';
import { mayhemSettings } from './config/mayhem-options.js';
import { redactUrl } from './core/redact.js';
import { withRestartTimings } from './executors/open.js';
import { noopMetrics } from './metrics/noop.js';
import { runSimulatedPublisher } from './publisher/simulated.js';
import { LocalFleetControl } from './storage/memory/control.js';
import { Rails } from './core/rails.js';
import { ShadowControl } from './core/shadow-control.js';
import { announceFleet, followFleet, joinRunFleet } from './run-fleet.js';
import { closeAdapters, openAdapters } from './open-adapters.js';
import { beginExperiment, type RunExperiment } from './run-experiment.js';
import { renderHtml } from './report/html.js';
import { readReport } from './report/read.js';
import { describeSummary, reportUnfinished, startStatus, summarize, type Summary } from './run-report.js';
import { listenDuringStartup, listenWhileRunning, ShutdownLatch } from './run-signals.js';

export interface RunResult {
  readonly exitCode: number;
  readonly summary: Summary;
}

/** Run the service until a signal, `--count`, or a fatal error. Never calls process.exit itself. */
export async function runService(config: Config, logger: Logger): Promise<RunResult> {
  const random = config.seed !== undefined ? seededRandom(config.seed) : Math.random;
  const started = performance.now();

  // A signal during start-up (queued by the hub since the process began, or arriving while files
  // and connections open) ends it: nothing was pulled yet, so closing what opened is the shutdown.
  const startup = listenDuringStartup(logger);
  const instance = config.instanceName ?? `${hostname()}:${process.pid}`;
  const adapters = await openAdapters(
    config,
    { logger, random, join: (storage) => joinRunFleet(config, storage, instance) },
    startup,
  );
  if (adapters === undefined) {
    const summary = summarize(new Counters(noopMetrics), {
      reason: `received ${startup.signal()} during start-up`,
      ms: performance.now() - started,
      inFlight: 0,
    });
    logger.info(summary, describeSummary(summary));
    logger.info('Successfully shutdown the Mayhem service.');
    return { exitCode: 0, summary };
  }
  const { metrics, storage, broker, executor, http, joined } = adapters;
  // A broker in this process (the memory broker): the simulated publisher feeds it; it keeps nothing.
  const local = broker.localPublisher?.();
  logger.info({ executor: config.executor }, `Restart executor: ${executor.description}`);
  announceFleet(joined, logger);
  // The fleet's settings from here on (this instance's own where it stored them first).
  const fleetConfig = joined.config;

  let experiment: RunExperiment;
  try {
    experiment = await beginExperiment(fleetConfig, {
      control: storage.control?.() ?? new LocalFleetControl(),
      storage,
      logger,
      instance,
    });
  } catch (err) {
    await closeAdapters(adapters, logger);
    throw err;
  }
  const { control } = experiment;
  // A leashed member of a fleet on a shared broker takes nothing (hold); a leashed instance with its
  // own messages (the memory broker, a preview browsing the stream) records what it would do (look),
  // keeping those restarts in a shadow of the fleet's state so every rail holds for them too.
  const rails = new Rails(railsSettings(fleetConfig, joined.stored.inventory?.hosts), control, random, {
    leash: local !== undefined || adapters.browsing ? 'look' : 'hold',
    shadow: new ShadowControl(control, { restartMs: config.previewRestartTime, now: Date.now, forwardAudit: true }),
  });
  if (adapters.browsing)
    logger.warn(
      { stream: config.stream },
      `Leashed beside the fleet: looking at the requests pending on NATS stream ${config.stream} without taking any (no consumer joined); each restart it would make is logged and recorded as 'leashed'`,
    );
  else if (rails.settings.leashed && rails.looks) {
    logger.warn(
      { leashed: fleetConfig.leashed },
      fleetConfig.leashed === 'auto'
        ? `Leashed: the ${config.executor} executor restarts nothing yet; each restart it would make is logged and recorded as 'leashed'. Pass --leashed false to let it restart hosts`
        : "Leashed: nothing is restarted; each restart that would run is logged and recorded as 'leashed'",
    );
  }
  const { counters, pipeline, consumer } = createMayhem(
    {
      broker,
      storage,
      metrics,
      logger,
      rails,
      control,
      executor: withRestartTimings(executor.executor, metrics),
      // Each message's phase in `loopwatch ps`/`top`/`where`: the shared no-op while loopwatch is off.
      track: trackWork,
    },
    {
      ...mayhemSettings(config),
      random,
      instance,
      executorName: config.executor,
      experiment: config.experiment,
      // While loopwatch tracks tasks, every message in flight is one, so task dumps show them.
      messageTasks: activeMode() === 'debug' || config.monitorTasksMs !== undefined,
    },
  );

  const latch = new ShutdownLatch();
  const cancelInFlight = new AbortController();

  // --count: done once N messages are settled (acked or dead-lettered) by this instance.
  let settled = 0;
  consumer.onSettled = (outcome: Outcome) => {
    if (outcome !== 'acked' && outcome !== 'dead-lettered') return;
    settled += 1;
    if (config.count !== undefined && settled >= config.count) latch.request(`all ${config.count} messages settled`, 0);
  };

  const stopListening = listenWhileRunning(logger, latch);
  // Errors outside message handlers (those inside are the consumer's central handler's, core/consumer.ts):
  // log, then shut down in the one order (core/shutdown.ts) with exit 1.
  const onFatal = (err: unknown): void => {
    logger.fatal(
      { err: err instanceof Error ? err.stack : errorText(err) },
      `Unexpected error outside message handlers: ${errorText(err)}`,
    );
    latch.request('unexpected error', 1);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);

  // The simulated publisher feeds the memory broker (the article's `publish`).
  let published: Promise<number> | undefined;
  if (local !== undefined) {
    const memory = local;
    published = runSimulatedPublisher(
      (payload, id) => memory.publishSync(payload, id),
      {
        rate: config.publishRate,
        count: config.count,
        random,
        malformedEvery: config.malformedEvery,
        instances: config.instances?.split(',').map((n) => n.trim()),
        pick: config.pick,
        // The broker holds at most --max-backlog: the publisher waits for room, so memory stays flat.
        waitForRoom: (signal) => memory.waitForRoom(signal),
      },
      latch.stopPulling.signal,
    );
    logger.info(
      { rate: config.publishRate || 'max', count: config.count ?? 'unlimited', maxBacklog: memory.maxBacklog },
      'Simulated publisher started on the in-memory broker',
    );
  }
  logger.info(
    { broker: redactUrl(config.broker), db: redactUrl(config.db), maxInFlight: config.maxInFlight },
    'Mayhem Mandrill is consuming',
  );
  // /readyz: ready while consuming with both dependencies up; not ready from the moment shutdown begins.
  http?.attach({
    shuttingDown: latch.stopPulling.signal,
    storageHealth: pipeline.storageHealth,
    brokerHealth: pipeline.brokerHealth,
    paused: () => {
      const p = control.pauseState();
      return p && `restarts paused by ${p.by}${p.reason ? ` (${p.reason})` : ''}`;
    },
  });
  experiment.runner?.start();
  const stopFollowing = followFleet({ config, joined, control, rails, experiment, logger });
  http?.metrics.setRailsSource({
    paused: () => rails.paused,
    inWindow: () => rails.settings.window === undefined || rails.settings.window.isOpen(Date.now()),
  });
  http?.metrics.setProbeSource(() => experiment.runner?.status ?? []);
  const experiments = storage.experiments?.();
  if (config.experiment !== undefined && experiments !== undefined) {
    const name = config.experiment;
    http?.attachReport(async () => renderHtml(await readReport(name, { control, experiments }), { live: true }));
  }
  const backlog = backlogSource(broker);
  if (backlog !== undefined) http?.metrics.setBacklogSource(backlog);
  reportUnfinished(storage, local !== undefined, logger);

  const statusTimer = startStatus(config, logger, { counters, consumer, started });
  // Keeps the process alive while the consumer waits on a promise (a pending pull holds no handle).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const pulling = consumer.run(latch.stopPulling.signal, cancelInFlight.signal).catch(onFatal);

  await latch.requested;
  // The one order (core/shutdown.ts), then below it what the core does not own: the executor, the
  // summary, and the `--http` endpoint last.
  await shutdown({
    logger,
    graceMs: config.grace,
    stopPulling: latch.stopPulling,
    cancelInFlight,
    consumer,
    broker,
    storage,
    metrics,
    pullingStopped: Promise.all([pulling, published]),
    beforeClosing: () => experiment.end(latch.reason),
  });
  clearInterval(keepAlive);
  stopFollowing();
  pipeline.close();
  // Every restart has ended or was aborted by the shutdown: the executor's connections can go.
  await executor.close().catch((err: unknown) => logger.warn({ err: errorText(err) }, 'Executor close failed'));
  if (statusTimer) clearInterval(statusTimer);
  stopListening();
  process.off('uncaughtException', onFatal);
  process.off('unhandledRejection', onFatal);

  const summary = summarize(counters, {
    reason: latch.reason,
    ms: performance.now() - started,
    inFlight: consumer.inFlight,
    published: published ? await published : undefined,
    broker,
  });
  logger.info(summary, describeSummary(summary));
  // Last, so a final scrape sees the final figures.
  await http?.close();
  logger.info('Successfully shutdown the Mayhem service.');
  return { exitCode: latch.exitCode, summary };
}
