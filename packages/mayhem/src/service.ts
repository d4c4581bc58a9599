/**
 * The composition root of `mayhem run`: config → adapters → consumer, with signals, the central
 * exception handler, the status line, `--count` and the summary. The only module that knows both
 * the core and the adapters.
 */
import { activeMode, startup } from 'loopwatch';
import type { Logger } from 'pino';
import { MemoryBroker } from './brokers/memory.js';
import { backlogSource, openBroker } from './brokers/open.js';
import type { Broker, Metrics, Storage, UnfinishedReport } from './core/contracts.js';
import { createMayhem } from './core/assemble.js';
import type { Consumer } from './core/consumer.js';
import { Counters } from './core/counters.js';
import type { Outcome } from './core/pipeline.js';
import { shutdown } from './core/shutdown.js';
import { seededRandom } from './core/timing.js';
import type { Config } from './cli/config.js';
import { drainLogger } from './cli/logger.js';
import { onExitSignal } from './cli/signals.js';
import { redactUrl } from './core/redact.js';
import { openExecutor, withRestartTimings, type OpenedExecutor } from './executors/open.js';
import { openHttpEndpoint, type HttpEndpoint } from './metrics/http-server.js';
import { noopMetrics } from './metrics/noop.js';
import { openMetrics } from './metrics/open.js';
import { runSimulatedPublisher } from './publisher/simulated.js';
import { openStorage } from './storage/open.js';
import { LocalFleetControl } from './storage/memory-control.js';
import { Rails, type RailsSettings } from './core/rails.js';
import { HostFilter, RestartWindow } from './core/policy.js';

export interface RunResult {
  readonly exitCode: number;
  readonly summary: Summary;
}

export interface Summary {
  published: number | undefined;
  pulled: number;
  acked: number;
  nacked: number;
  deadLettered: number;
  malformed: number;
  restarted: number;
  restartSkipped: number;
  /** Restarts found in doubt (begun by a delivery that never recorded how it ended) and not run again. */
  restartsInDoubt: number;
  /** Messages whose restart ran but could not be recorded before shutdown: left to their lease. */
  unsettled: number;
  /** Reused messageIds dead-lettered as conflicts. */
  conflicts: number;
  /** Restarts a rail refused for good (acked as skipped), put off (nacked with a delay), or leashed. */
  railSkipped: number;
  deferred: number;
  leashed: number;
  restartFailures: number;
  saveFailures: number;
  retries: number;
  extensions: number;
  seconds: number;
  ackedPerSecond: number;
  /** Messages still being handled at exit (0 unless a nack did not finish in time). */
  inFlight: number;
  /** Memory broker only: messages still in it at exit (ready, nacked back, or leased). */
  leftInBroker: number | undefined;
  reason: string;
}

/** Run the service until a signal, `--count`, or a fatal error. Never calls process.exit itself. */
export async function runService(config: Config, logger: Logger): Promise<RunResult> {
  const random = config.seed !== undefined ? seededRandom(config.seed) : Math.random;
  const started = performance.now();

  // A signal during start-up (queued by the hub since the process began, or arriving while files
  // and connections open) ends it: nothing was pulled yet, so closing what opened is the shutdown.
  let startupSignal: NodeJS.Signals | undefined;
  let interrupt!: () => void;
  const interrupted = new Promise<void>((resolve) => (interrupt = resolve));
  const stopStartupListening = onExitSignal((signal) => {
    if (startupSignal !== undefined) {
      logger.warn(`Received ${signal} again during start-up; exiting now (130)`);
      void drainLogger(logger, 500).then(() => process.exit(130));
      return;
    }
    startupSignal = signal;
    logger.info({ signal }, `Received exit signal ${signal} during start-up...`);
    interrupt();
  });

  // Opening files and connections is start-up: loopwatch does not report its sync calls.
  const opened: { executor?: OpenedExecutor; http?: HttpEndpoint; metrics?: Metrics; storage?: Storage; broker?: Broker } = {};
  const closeOpened = async (): Promise<void> => {
    // What did open, in the shutdown order.
    await opened.broker?.close().catch(() => undefined);
    await opened.storage?.close().catch(() => undefined);
    await opened.metrics?.close().catch(() => undefined);
    await opened.http?.close().catch(() => undefined);
    await opened.executor?.close().catch(() => undefined);
  };
  let opening!: Promise<void>;
  try {
    await Promise.race([opening = startup(async () => {
      // The executor first: a bad setting of it stops the start before anything listens or connects.
      opened.executor = await openExecutor(config, { logger, random });
      if (config.http !== undefined) opened.http = await openHttpEndpoint({ listen: config.http, logger });
      opened.metrics = await openMetrics(config.statsd, logger, opened.http?.metrics);
      opened.storage = await openStorage({ url: config.db, logger, saveFailureRate: config.saveFailureRate, random, maxInFlight: config.maxInFlight, retentionMs: config.retention, deadLetterRetentionMs: config.deadLetterRetention });
      opened.broker = await openBroker({
        url: config.broker, logger, ackDeadlineMs: config.ackDeadline, maxInFlight: config.maxInFlight, maxDeliveries: config.maxDeliveries,
        stream: config.stream, subject: config.subject, durable: config.durable, deadLetterSubject: config.deadLetterSubject, replicas: config.replicas,
        maxBacklog: config.maxBacklog, deadLetterMaxAgeMs: config.deadLetterMaxAge, deadLetterMaxBytes: config.deadLetterMaxBytes,
        auth: { credsFile: config.natsCreds, nkeyFile: config.natsNkey, tokenFile: config.natsTokenFile },
      });
    }), interrupted]);
  } catch (err) {
    // Close what did open, in the shutdown order, then report one line.
    stopStartupListening();
    await closeOpened();
    throw err;
  }
  stopStartupListening();
  if (startupSignal !== undefined) {
    // A connection still opening is not waited for: the process exits next.
    void opening.catch(() => undefined);
    await closeOpened();
    const summary = summarize(new Counters(noopMetrics), 0, performance.now() - started, `received ${startupSignal} during start-up`, undefined, undefined);
    logger.info(summary, describeSummary(summary));
    logger.info('Successfully shutdown the Mayhem service.');
    return { exitCode: 0, summary };
  }
  const { metrics, storage, broker, executor } = opened as Required<typeof opened>;
  const http = opened.http;
  logger.info({ executor: config.executor }, `Restart executor: ${executor.description}`);

  const control = storage.control?.() ?? new LocalFleetControl();
  const rails = new Rails(railsSettings(config), control, random);
  if (rails.settings.leashed) {
    logger.warn({ leashed: config.leashed }, config.leashed === 'auto'
      ? `Leashed: the ${config.executor} executor restarts nothing yet; each restart it would make is logged and recorded as 'leashed'. Pass --leashed false to let it restart hosts`
      : 'Leashed: nothing is restarted; each restart that would run is logged and recorded as \'leashed\'');
  }
  const { counters, pipeline, consumer } = createMayhem(
    { broker, storage, metrics, logger, rails, control, executor: withRestartTimings(executor.executor, metrics) },
    {
      extendEveryMs: config.extendEvery, restartAttempts: config.restartAttempts, saveAttempts: config.saveAttempts,
      maxDeliveries: config.maxDeliveries, retryBackoff: { baseMs: config.retryBackoff, maxMs: config.retryBackoff * 20 },
      nackBackoff: { baseMs: config.nackDelay, maxMs: 60_000 }, dryRun: config.dryRun, inDoubt: config.inDoubt, random,
      instance: config.instanceName, executorName: config.executor, maxInFlight: config.maxInFlight,
      // While loopwatch tracks tasks, every message in flight is one, so task dumps show them.
      messageTasks: activeMode() === 'debug' || config.monitorTasksMs !== undefined,
    },
  );

  const stopPulling = new AbortController();
  const cancelInFlight = new AbortController();
  let reason = 'stopped';
  let exitCode = 0;
  let beginShutdown!: (why: string, code: number) => void;
  const shutdownRequested = new Promise<void>((resolve) => {
    beginShutdown = (why, code) => {
      if (stopPulling.signal.aborted) return;
      reason = why;
      exitCode = code;
      stopPulling.abort();
      resolve();
    };
  });

  // --count: done once N messages are settled (acked or dead-lettered) by this instance.
  let settled = 0;
  consumer.onSettled = (outcome: Outcome) => {
    if (outcome !== 'acked' && outcome !== 'dead-lettered') return;
    settled += 1;
    if (config.count !== undefined && settled >= config.count) beginShutdown(`all ${config.count} messages settled`, 0);
  };

  // Signals: the first starts the shutdown; a second one during it means "now" (exit 130). Signals
  // that arrived during start-up were queued by the hub (cli/signals.ts) and arrive here first.
  // (A Ctrl-C under `npm start` reaches the service once: npm 11 does not forward it again.)
  let first: NodeJS.Signals | undefined;
  let exitingNow = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (exitingNow) return;
    if (first !== undefined || stopPulling.signal.aborted) {
      exitingNow = true;
      logger.warn(`Received ${signal} again during shutdown; exiting now (130)`);
      // Only as long as it takes to write the log out (bounded), so the warning is not lost.
      void drainLogger(logger, 500).then(() => process.exit(130));
      return;
    }
    first = signal;
    logger.info({ signal }, `Received exit signal ${signal}...`);
    beginShutdown(`received ${signal}`, 0);
  };
  const stopListening = onExitSignal(onSignal);
  // Errors outside message handlers: log, then shut down with exit 1.
  const onFatal = (err: unknown): void => {
    logger.fatal({ err: err instanceof Error ? err.stack : String(err) }, `Unexpected error outside message handlers: ${err instanceof Error ? err.message : String(err)}`);
    beginShutdown('unexpected error', 1);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);

  // The simulated publisher feeds the memory broker (the article's `publish`).
  let published: Promise<number> | undefined;
  if (broker instanceof MemoryBroker) {
    const memory = broker;
    published = runSimulatedPublisher((payload, id) => memory.publishSync(payload, id), {
      rate: config.publishRate, count: config.count, random, malformedEvery: config.malformedEvery,
      instances: config.instances?.split(',').map((n) => n.trim()),
      // The broker holds at most --max-backlog: the publisher waits for room, so memory stays flat.
      waitForRoom: (signal) => memory.waitForRoom(signal),
    }, stopPulling.signal);
    logger.info({ rate: config.publishRate || 'max', count: config.count ?? 'unlimited', maxBacklog: memory.maxBacklog }, 'Simulated publisher started on the in-memory broker');
  }
  logger.info({ broker: redactUrl(config.broker), db: redactUrl(config.db), maxInFlight: config.maxInFlight }, 'Mayhem Mandrill is consuming');
  // /readyz: ready while consuming with both dependencies up; not ready from the moment shutdown begins.
  http?.attach({ shuttingDown: stopPulling.signal, storageHealth: pipeline.storageHealth, brokerHealth: pipeline.brokerHealth });
  const backlog = backlogSource(broker);
  if (backlog !== undefined) http?.metrics.setBacklogSource(backlog);
  reportUnfinished(storage, broker instanceof MemoryBroker, logger);

  const statusTimer = startStatus(config, logger, counters, consumer, started);
  // Keeps the process alive while the consumer waits on a promise (a pending pull holds no handle).
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const pulling = consumer.run(stopPulling.signal, cancelInFlight.signal).catch(onFatal);

  await shutdownRequested;
  await shutdown({
    logger, graceMs: config.grace, stopPulling, cancelInFlight, consumer, broker, storage, metrics,
    pullingStopped: Promise.all([pulling, published]),
  });
  clearInterval(keepAlive);
  pipeline.close();
  // Every restart has ended or was aborted by the shutdown: the executor's connections can go.
  await executor.close().catch((err: unknown) => logger.warn({ err: String(err) }, 'Executor close failed'));
  if (statusTimer) clearInterval(statusTimer);
  stopListening();
  process.off('uncaughtException', onFatal);
  process.off('unhandledRejection', onFatal);

  const summary = summarize(counters, consumer.inFlight, performance.now() - started, reason, published ? await published : undefined, broker);
  logger.info(summary, describeSummary(summary));
  // Last, so a final scrape sees the final figures.
  await http?.close();
  logger.info('Successfully shutdown the Mayhem service.');
  return { exitCode, summary };
}

function startStatus(config: Config, logger: Logger, counters: Counters, consumer: Consumer, started: number): NodeJS.Timeout | undefined {
  if (config.statusEvery <= 0 || process.stdout.isTTY !== true) return undefined;
  let lastAcked = 0;
  let last = started;
  const timer = setInterval(() => {
    const t = counters.tally;
    const now = performance.now();
    const rate = ((t.acked - lastAcked) * 1000) / (now - last);
    lastAcked = t.acked;
    last = now;
    const hold = consumer.hold;
    logger.info(
      `Status: pulled ${t.pulled} · acked ${t.acked} · nacked ${t.nacked} · dead-lettered ${t.dead_lettered} · in flight ${consumer.inFlight} · ${rate.toFixed(0)} acked/s${hold !== undefined ? ` · intake paused: ${hold.text}` : ''}`,
    );
  }, config.statusEvery);
  timer.unref();
  return timer;
}

function summarize(counters: Counters, inFlight: number, ms: number, reason: string, published: number | undefined, broker: Broker | undefined): Summary {
  const t = counters.tally;
  const stats = broker instanceof MemoryBroker ? broker.stats() : undefined;
  return {
    published,
    pulled: t.pulled,
    acked: t.acked,
    nacked: t.nacked,
    deadLettered: t.dead_lettered,
    malformed: t.malformed,
    restarted: t.restarted,
    restartSkipped: t.restart_skipped,
    restartsInDoubt: t.restart_in_doubt,
    unsettled: t.unsettled,
    conflicts: t.conflict,
    railSkipped: t.rail_skipped,
    deferred: t.deferred,
    leashed: t.leashed,
    restartFailures: t.restart_failed,
    saveFailures: t.save_failed,
    retries: t.retries,
    extensions: t.extended,
    seconds: Math.round(ms) / 1000,
    ackedPerSecond: Math.round((t.acked * 1000) / Math.max(1, ms)),
    inFlight,
    leftInBroker: stats ? stats.ready + stats.delayed + stats.leased : undefined,
    reason,
  };
}

export function describeSummary(s: Summary): string {
  const parts = [
    `Summary (${s.reason}):`,
    s.published !== undefined ? `published ${s.published},` : '',
    `pulled ${s.pulled} (incl. redeliveries), acked ${s.acked}, nacked ${s.nacked}, dead-lettered ${s.deadLettered} (${s.malformed} malformed${s.conflicts > 0 ? `, ${s.conflicts} reused ids` : ''});`,
    `restarted ${s.restarted} hosts (${s.restartSkipped} skipped as already done${s.restartsInDoubt > 0 ? `, ${s.restartsInDoubt} in doubt not repeated` : ''}), ${s.restartFailures} restart failures, ${s.saveFailures} save failures, ${s.retries} retries, ${s.extensions} deadline extensions;`,
    s.railSkipped + s.deferred + s.leashed > 0 ? `rails: ${s.railSkipped} skipped, ${s.deferred} deferred, ${s.leashed} leashed;` : '',
    `${s.seconds} s, ${s.ackedPerSecond} acked/s, ${s.inFlight} in flight at exit.`,
    s.unsettled > 0 ? `${s.unsettled} restarted hosts could not be recorded before shutdown: their messages were left to the broker's lease, and a redelivery will find them in doubt.` : '',
    s.leftInBroker !== undefined && s.leftInBroker > 0 ? `${s.leftInBroker} messages were left in the in-memory broker, which is not durable: they are gone with this process.` : '',
  ];
  return parts.filter(Boolean).join(' ');
}

/** One line on what earlier runs left unfinished in the database (read off the hot path; start is not delayed). */
function reportUnfinished(storage: Storage, memoryBroker: boolean, logger: Logger): void {
  if (storage.unfinished === undefined) return;
  storage.unfinished().then(
    (r) => {
      if (r.total === 0) logger.debug('Earlier runs left no message unfinished');
      else logger.warn({ unfinished: r }, describeUnfinished(r, memoryBroker));
    },
    (err: unknown) => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'Could not read what earlier runs left unfinished'),
  );
}

export function describeUnfinished(r: UnfinishedReport, memoryBroker: boolean): string {
  const oldest = r.oldestAt !== undefined ? `, the oldest from ${new Date(r.oldestAt).toISOString()}` : '';
  return `Earlier runs left ${r.total} messages unfinished (recorded, neither acked nor dead-lettered; ${r.fromPreviousRun} by the last run${oldest}): ` +
    `${r.restarted} restarted but never acked, ${r.inDoubt} in doubt (restart begun, its end never recorded), ${r.notRestarted} not restarted. ` +
    (memoryBroker
      ? 'The in-memory broker is not durable: they will not be delivered again.'
      : 'The broker redelivers what it never got an ack for.');
}

/** The rails as the settings say (patterns and the window were validated with the config). */
export function railsSettings(config: Config): RailsSettings {
  const list = (v: string | undefined): string[] => (v === undefined ? [] : v.split(',').map((x) => x.trim()).filter(Boolean));
  return {
    hosts: new HostFilter(list(config.allowHosts), list(config.denyHosts)),
    window: config.window === undefined ? undefined : RestartWindow.parse(config.window),
    minIntervalMs: config.minIntervalPerHost,
    maxConcurrent: config.maxConcurrentRestarts,
    onLimit: config.onLimit,
    leashed: config.dryRun || config.leashed === 'true' || (config.leashed === 'auto' && config.executor !== 'mock'),
  };
}
