/**
 * What `mayhem run` tells about itself: the status line while it runs, the summary when it ends,
 * and the one line on what earlier runs left unfinished.
 */
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import type { Broker, Storage, UnfinishedReport } from './core/contracts.js';
import type { Consumer } from './core/consumer.js';
import type { Counters } from './core/counters.js';
import { errorText } from './core/errors.js';

/** The run's figures at exit: logged with the summary line and returned by `runService`. */
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

/** The status line every `--status-every` on a terminal: what was done since the last one. */
export function startStatus(
  config: Config,
  logger: Logger,
  run: { counters: Counters; consumer: Consumer; started: number },
): NodeJS.Timeout | undefined {
  if (config.statusEvery <= 0 || process.stdout.isTTY !== true) return undefined;
  const { counters, consumer, started } = run;
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

/** How a run ended: what {@link summarize} adds to the counters. */
export interface RunEnd {
  /** Why the run ended, as the summary says it. */
  readonly reason: string;
  /** How long it ran, ms. */
  readonly ms: number;
  readonly inFlight: number;
  /** What the simulated publisher published (memory broker only). */
  readonly published?: number | undefined;
  /** The broker, for what a memory broker still holds. */
  readonly broker?: Broker | undefined;
}

/** The run's figures at exit, from the counters (and the memory broker's leftovers). */
export function summarize(counters: Counters, end: RunEnd): Summary {
  const { inFlight, ms, reason, published, broker } = end;
  const t = counters.tally;
  const stats = broker?.localPublisher?.().stats();
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

/** The summary as the one line the log ends with. */
export function describeSummary(s: Summary): string {
  const parts = [
    `Summary (${s.reason}):`,
    s.published !== undefined ? `published ${s.published},` : '',
    `pulled ${s.pulled} (incl. redeliveries), acked ${s.acked}, nacked ${s.nacked}, dead-lettered ${s.deadLettered} (${s.malformed} malformed${s.conflicts > 0 ? `, ${s.conflicts} reused ids` : ''});`,
    `restarted ${s.restarted} hosts (${s.restartSkipped} skipped as already done${s.restartsInDoubt > 0 ? `, ${s.restartsInDoubt} in doubt not repeated` : ''}), ${s.restartFailures} restart failures, ${s.saveFailures} save failures, ${s.retries} retries, ${s.extensions} deadline extensions;`,
    s.railSkipped + s.deferred + s.leashed > 0
      ? `rails: ${s.railSkipped} skipped, ${s.deferred} deferred, ${s.leashed} leashed;`
      : '',
    `${s.seconds} s, ${s.ackedPerSecond} acked/s, ${s.inFlight} in flight at exit.`,
    s.unsettled > 0
      ? `${s.unsettled} restarted hosts could not be recorded before shutdown: their messages were left to the broker's lease, and a redelivery will find them in doubt.`
      : '',
    s.leftInBroker !== undefined && s.leftInBroker > 0
      ? `${s.leftInBroker} messages were left in the in-memory broker, which is not durable: they are gone with this process.`
      : '',
  ];
  return parts.filter(Boolean).join(' ');
}

/** One line on what earlier runs left unfinished in the database (read off the hot path; start is not delayed). */
export function reportUnfinished(storage: Storage, memoryBroker: boolean, logger: Logger): void {
  if (storage.unfinished === undefined) return;
  storage.unfinished().then(
    (r) => {
      if (r.total === 0) logger.debug('Earlier runs left no message unfinished');
      else logger.warn({ unfinished: r }, describeUnfinished(r, memoryBroker));
    },
    (err: unknown) => logger.warn({ err: errorText(err) }, 'Could not read what earlier runs left unfinished'),
  );
}

export function describeUnfinished(r: UnfinishedReport, memoryBroker: boolean): string {
  const oldest = r.oldestAt !== undefined ? `, the oldest from ${new Date(r.oldestAt).toISOString()}` : '';
  return (
    `Earlier runs left ${r.total} messages unfinished (recorded, neither acked nor dead-lettered; ${r.fromPreviousRun} by the last run${oldest}): ` +
    `${r.restarted} restarted but never acked, ${r.inDoubt} in doubt (restart begun, its end never recorded), ${r.notRestarted} not restarted. ` +
    (memoryBroker
      ? 'The in-memory broker is not durable: they will not be delivered again.'
      : 'The broker redelivers what it never got an ack for.')
  );
}
