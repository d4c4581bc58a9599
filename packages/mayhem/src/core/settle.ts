/**
 * The tail of a message's life, once both branches are final: record what happened, then tell the
 * broker — ack; nack with a growing delay; dead-letter; or nack at once when shutdown cancelled it.
 *
 * Every record is durable before the broker hears of it (the lease is extended meanwhile, however
 * long the database is out). Only shutdown bounds that wait: a record still unwritten then is given
 * up, and the delivery is nacked back — or, when the record carries a restart that ran, left to its
 * lease (`unsettled`): a redelivery will find that restart in doubt rather than run it again.
 */
import type { Logger } from 'pino';
import { isInDoubt, RestartFailed, type DeadLetter, type Storage } from './contracts.js';
import type { Counters } from './counters.js';
import type { DependencyHealth } from './dependency-health.js';
import { errorText } from './errors.js';
import type { Job, Outcome } from './job.js';
import type { RetriedStep, StepRunner } from './steps.js';
import { backoffDelay, type BackoffPolicy } from './timing.js';

export interface SettleOptions {
  /** On this delivery a failing message is dead-lettered instead of nacked. */
  readonly maxDeliveries: number;
  /** Backoff before a nacked message is redelivered (grows with its delivery count). */
  readonly nackBackoff: BackoffPolicy;
  readonly random: () => number;
}

export interface SettleDeps {
  readonly storage: Storage;
  readonly storageHealth: DependencyHealth;
  readonly runner: StepRunner;
  readonly counters: Counters;
  readonly logger: Logger;
  /** The restart that rode on the ack record is now recorded: the host may go. */
  readonly restartRecorded: (job: Job) => void;
  /** The job is over (exactly once; `outcome` undefined when an error escaped). */
  readonly end: (job: Job, outcome: Outcome | undefined, error: unknown) => void;
}

export class Settler {
  readonly #o: SettleOptions;
  readonly #d: SettleDeps;

  constructor(options: SettleOptions, deps: SettleDeps) {
    this.#o = options;
    this.#d = deps;
    // The steps are built once, here (they need deps), and shared by every job.
    this.#recordingAck = {
      kind: 'durable',
      dependency: deps.storageHealth,
      run: (job) =>
        this.#d.storage.markAcked({
          messageId: job.messageId,
          extensions: job.extensions,
          attempts: job.restartAttempts,
          restartDone: job.restart === 'restarted',
          restartInDoubt: isInDoubt(job.claim) && job.restart === 'skipped',
          skipReason: job.skip?.reason,
          audit: job.audit,
        }),
      retry: (job, err, n) => this.#recordRetry(job, err, n, 'the ack'),
      succeeded: (job) => {
        job.audit = undefined;
        if (job.restart === 'restarted') this.#d.restartRecorded(job);
        this.#d.runner.when(job, job.delivery.ack(), this.#acked, this.#escape);
      },
      // Given up only after shutdown cancelled the job.
      failed: (job) => (job.restart === 'restarted' ? this.#leave(job) : this.#nackCancelled(job)),
    };
    this.#recordingFailure = {
      kind: 'durable',
      dependency: deps.storageHealth,
      run: (job) =>
        this.#d.storage.markFailed(job.messageId, errorText(job.failure?.error), job.restartAttempts, job.audit),
      retry: (job, err, n) => this.#recordRetry(job, err, n, 'the failure'),
      succeeded: (job) => {
        job.audit = undefined;
        const delay = backoffDelay(job.delivery.deliveryCount, this.#o.nackBackoff, this.#o.random);
        this.#d.runner.when(job, job.delivery.nack(delay), (j) => this.#nacked(j, delay), this.#escape);
      },
      failed: (job) => this.#nackCancelled(job),
    };
    this.#recordingDeadLetter = {
      kind: 'durable',
      dependency: deps.storageHealth,
      run: (job) => this.#d.storage.deadLetter(this.#deadLetterOf(job)),
      retry: (job, err, n) => this.#recordRetry(job, err, n, 'the dead letter'),
      succeeded: (job) => {
        this.#d.runner.when(job, job.delivery.deadLetter(this.#reason(job)), this.#deadLettered, this.#escape);
      },
      failed: (job) => this.#nackCancelled(job),
    };
  }

  /** Both branches of `job` are final: settle it. */
  settle(job: Job): void {
    job.phase = 'settling';
    const failure = job.failure;
    if (failure === undefined) return this.#d.runner.attempt(job, 1, this.#recordingAck);
    if (failure.kind === 'unrecorded') return this.#leave(job);
    if (job.signal.aborted) return this.#nackCancelled(job);
    // A rail said "not now": nothing failed, nothing to record but the audit entry already made.
    if (failure.kind === 'deferred') return this.#defer(job, failure.verdict?.delayMs ?? 0);
    const { logger } = this.#d;
    // Kept for bugs: an expected fault (the database, a restart that timed out) was told where it happened.
    if (failure.expected !== true && !(failure.error instanceof RestartFailed) && failure.kind !== 'conflict') {
      const text = errorText(failure.error);
      logger.error({ messageId: job.messageId, err: text }, `Handling general error: ${text}`);
    }
    if (
      failure.kind === 'conflict' ||
      failure.kind === 'rejected' ||
      job.delivery.deliveryCount >= this.#o.maxDeliveries
    ) {
      return this.#d.runner.attempt(job, 1, this.#recordingDeadLetter);
    }
    this.#d.runner.attempt(job, 1, this.#recordingFailure);
  }

  /** A broker that refused to settle: the central exception handler's to log and nack. */
  readonly #escape = (job: Job, error: unknown): void => this.#d.end(job, undefined, error);

  // ---- ack: record (with the restart when it rode along), then ack ----

  readonly #recordingAck: RetriedStep;

  readonly #acked = (job: Job): void => {
    this.#d.counters.increment('acked');
    const log = this.#d.logger;
    if (log.isLevelEnabled('info'))
      log.info({ messageId: job.messageId, extensions: job.extensions }, `Done. Acked ${job.request.instanceName}`);
    this.#d.end(job, 'acked', undefined);
  };

  // ---- failed: record the failure, then nack with a delay ----

  readonly #recordingFailure: RetriedStep;

  #nacked(job: Job, delay: number): void {
    this.#d.counters.increment('nacked');
    const text = errorText(job.failure?.error);
    this.#d.logger.warn(
      { messageId: job.messageId, delivery: job.delivery.deliveryCount, redeliverInMs: delay, err: text },
      `Nacked ${job.request.instanceName}; redelivery in ${delay} ms`,
    );
    this.#d.end(job, 'nacked', undefined);
  }

  // ---- dead-letter: record it, then park it at the broker ----

  readonly #recordingDeadLetter: RetriedStep;

  readonly #deadLettered = (job: Job): void => {
    const { counters, logger } = this.#d;
    counters.increment('dead_lettered');
    if (job.failure?.kind === 'conflict') counters.increment('conflict');
    logger.error(
      { messageId: job.messageId, deliveries: job.delivery.deliveryCount, reason: this.#reason(job) },
      `Dead-lettered ${job.request.instanceName}`,
    );
    this.#d.end(job, 'dead-lettered', undefined);
  };

  #deadLetterOf(job: Job): DeadLetter {
    const payload = Buffer.from(job.delivery.data).toString('utf8');
    // A reused messageId's record belongs to the request that used it first: leave that record alone.
    const request = job.failure?.kind === 'conflict' ? undefined : job.request;
    // A conflict's rows are about another request's record: they stay with this job (none are durable then).
    const audit = request === undefined ? undefined : job.audit;
    return { request, payload, reason: this.#reason(job), deliveries: job.delivery.deliveryCount, audit };
  }

  #reason(job: Job): string {
    const text = errorText(job.failure?.error);
    if (job.failure?.kind === 'conflict') return `conflict: ${text}`;
    if (job.failure?.kind === 'rejected') return `rejected: ${text}`;
    return `gave up after ${job.delivery.deliveryCount} deliveries: ${text}`;
  }

  // ---- deferred by a rail: back to the broker with the rail's delay ----

  #defer(job: Job, delayMs: number): void {
    this.#d.runner.when(job, job.delivery.nack(delayMs), (j) => this.#d.end(j, 'deferred', undefined), this.#escape);
  }

  // ---- cancelled by shutdown, or left to the lease ----

  #nackCancelled(job: Job): void {
    this.#d.runner.when(
      job,
      job.delivery.nack(0),
      (j) => {
        this.#d.counters.increment('nacked');
        this.#d.logger.info(
          { messageId: j.messageId },
          `Cancelled; nacked ${j.request.instanceName} back to the broker`,
        );
        this.#d.end(j, 'cancelled', undefined);
      },
      this.#escape,
    );
  }

  #leave(job: Job): void {
    this.#d.counters.increment('unsettled');
    this.#d.logger.error(
      { messageId: job.messageId, host: job.host },
      `Restarted ${job.host} but could not record it before shutdown; not acking: the broker redelivers the message after its lease, and the redelivery finds the restart in doubt instead of restarting again`,
    );
    this.#d.end(job, 'unsettled', undefined);
  }

  #recordRetry(job: Job, err: unknown, attempt: number, what: string): boolean {
    const log = this.#d.logger;
    const level = this.#d.storageHealth.callLogLevel();
    if (log.isLevelEnabled(level))
      log[level](
        { messageId: job.messageId, attempt, err: errorText(err) },
        `Could not record ${what} of ${job.request.instanceName}; retrying`,
      );
    return true;
  }
}
