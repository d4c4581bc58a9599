/**
 * The tail of a message's life, once both branches are final: record what happened, then tell the
 * broker — ack; nack with a growing delay; dead-letter; or nack at once when shutdown cancelled it.
 * Which of them, and what follows each, is core/job-machine.ts's to decide; this performs them.
 *
 * Every record is durable before the broker hears of it (the lease is extended meanwhile, however
 * long the database is out). Only shutdown bounds that wait: a record still unwritten then is given
 * up, and the delivery is nacked back — or, when the record carries a restart that ran, left to its
 * lease (`unsettled`): a redelivery will find that restart in doubt rather than run it again.
 */
import type { Logger } from 'pino';
import { isInDoubt, type DeadLetter, type Storage } from './contracts.js';
import type { Counters } from './counters.js';
import type { DependencyHealth } from './dependency-health.js';
import { errorText } from './errors.js';
import type { Job } from './job.js';
import { Effect, type Effects } from './job-machine.js';
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
  /** Report what happened: the machine moves the job on (core/job-machine.ts). */
  readonly drive: (job: Job, event: 'record-written' | 'record-given-up' | 'broker-done') => void;
  /** A broker that refused to settle: end the job with it, for the central exception handler. */
  readonly escape: (job: Job, error: unknown) => void;
}

export class Settler {
  readonly #o: SettleOptions;
  readonly #d: SettleDeps;
  readonly #recordingAck: RetriedStep;
  readonly #recordingFailure: RetriedStep;
  readonly #recordingDeadLetter: RetriedStep;

  constructor(options: SettleOptions, deps: SettleDeps) {
    this.#o = options;
    this.#d = deps;
    // The audit rows that rode on the record are durable with it.
    const written = (job: Job): void => {
      job.audit = undefined;
      deps.drive(job, 'record-written');
    };
    const givenUp = (job: Job): void => deps.drive(job, 'record-given-up');
    // The steps are built once, here (they need deps), and shared by every job. A record is given up
    // only after shutdown cancelled the job.
    this.#recordingAck = {
      kind: 'durable',
      dependency: deps.storageHealth,
      run: (job) => {
        const recording = this.#d.storage.markAcked({
          messageId: job.messageId,
          extensions: job.extensions,
          attempts: job.restartAttempts,
          restartDone: job.restart === 'restarted',
          restartInDoubt: isInDoubt(job.claim) && job.restart === 'skipped',
          skipReason: job.skip?.reason,
          audit: job.audit,
        });
        if (job.work.live) job.work.phase('recording the ack', recording);
        return recording;
      },
      retry: (job, err, n) => this.#recordRetry(job, err, n, 'the ack'),
      succeeded: written,
      failed: givenUp,
    };
    this.#recordingFailure = {
      kind: 'durable',
      dependency: deps.storageHealth,
      run: (job) => {
        const recording = this.#d.storage.markFailed(
          job.messageId,
          errorText(job.failure?.error),
          job.restartAttempts,
          job.audit,
        );
        if (job.work.live) job.work.phase('recording the failure', recording);
        return recording;
      },
      retry: (job, err, n) => this.#recordRetry(job, err, n, 'the failure'),
      succeeded: written,
      failed: givenUp,
    };
    this.#recordingDeadLetter = {
      kind: 'durable',
      dependency: deps.storageHealth,
      run: (job) => {
        const recording = this.#d.storage.deadLetter(this.#deadLetterOf(job));
        if (job.work.live) job.work.phase('recording the dead letter', recording);
        return recording;
      },
      retry: (job, err, n) => this.#recordRetry(job, err, n, 'the dead letter'),
      succeeded: written,
      failed: givenUp,
    };
  }

  /** Perform the tail's effects. */
  perform(job: Job, effects: Effects): void {
    const { runner } = this.#d;
    if ((effects & (Effect.RecordFailure | Effect.RecordDeadLetter)) !== 0) this.#generalError(job);
    if ((effects & Effect.RecordAck) !== 0) runner.attempt(job, 1, this.#recordingAck);
    if ((effects & Effect.RecordFailure) !== 0) runner.attempt(job, 1, this.#recordingFailure);
    if ((effects & Effect.RecordDeadLetter) !== 0) runner.attempt(job, 1, this.#recordingDeadLetter);
    if ((effects & Effect.Ack) !== 0) this.#tell(job, job.delivery.ack(), 'acking');
    if ((effects & Effect.Nack) !== 0) {
      const delay = backoffDelay(job.delivery.deliveryCount, this.#o.nackBackoff, this.#o.random);
      const nacking = job.delivery.nack(delay);
      if (job.work.live) job.work.phase(`nacking: redelivery in ${delay} ms`, nacking);
      // A closure on this path only (a failure's): the delay is for the log line once the broker took it.
      this.#d.runner.when(job, nacking, (j) => this.#nacked(j, delay), this.#d.escape);
    }
    if ((effects & Effect.NackDeferred) !== 0) {
      const verdict = job.failure?.verdict;
      this.#tell(job, job.delivery.nack(verdict?.delayMs ?? 0), `deferred: ${verdict?.reason ?? 'not now'}`);
    }
    if ((effects & Effect.NackCancelled) !== 0) this.#tell(job, job.delivery.nack(0), 'cancelled: nacking');
    if ((effects & Effect.DeadLetter) !== 0)
      this.#tell(job, job.delivery.deadLetter(this.#reason(job)), 'dead-lettering');
    if ((effects & Effect.Leave) !== 0) this.#leave(job);
  }

  /** What the ended job's outcome says to log and count (the pipeline calls it at the end). */
  ended(job: Job): void {
    switch (job.outcome) {
      case 'acked':
        return this.#acked(job);
      case 'dead-lettered':
        return this.#deadLettered(job);
      case 'cancelled':
        return this.#cancelled(job);
      default:
    }
  }

  #tell(job: Job, telling: Promise<void>, phase: string): void {
    if (job.work.live) job.work.phase(phase, telling);
    this.#d.runner.when(job, telling, this.#told, this.#d.escape);
  }

  readonly #told = (job: Job): void => this.#d.drive(job, 'broker-done');

  #generalError(job: Job): void {
    const failure = job.failure;
    // Kept for bugs: an expected fault (the database, a restart that timed out) was told where it happened.
    if (failure === undefined || failure.expected === true || failure.kind === 'conflict') return;
    const text = errorText(failure.error);
    this.#d.logger.error({ messageId: job.messageId, err: text }, `Handling general error: ${text}`);
  }

  #acked(job: Job): void {
    this.#d.counters.increment('acked');
    const log = this.#d.logger;
    if (log.isLevelEnabled('info'))
      log.info({ messageId: job.messageId, extensions: job.extensions }, `Done. Acked ${job.request.instanceName}`);
  }

  #nacked(job: Job, delay: number): void {
    this.#d.counters.increment('nacked');
    const text = errorText(job.failure?.error);
    this.#d.logger.warn(
      { messageId: job.messageId, delivery: job.delivery.deliveryCount, redeliverInMs: delay, err: text },
      `Nacked ${job.request.instanceName}; redelivery in ${delay} ms`,
    );
    this.#d.drive(job, 'broker-done');
  }

  #deadLettered(job: Job): void {
    const { counters, logger } = this.#d;
    counters.increment('dead_lettered');
    if (job.failure?.kind === 'conflict') counters.increment('conflict');
    logger.error(
      { messageId: job.messageId, deliveries: job.delivery.deliveryCount, reason: this.#reason(job) },
      `Dead-lettered ${job.request.instanceName}`,
    );
  }

  #cancelled(job: Job): void {
    this.#d.counters.increment('nacked');
    this.#d.logger.info(
      { messageId: job.messageId },
      `Cancelled; nacked ${job.request.instanceName} back to the broker`,
    );
  }

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

  #leave(job: Job): void {
    this.#d.counters.increment('unsettled');
    this.#d.logger.error(
      { messageId: job.messageId, host: job.host },
      `Restarted ${job.host} but could not record it before shutdown; not acking: the broker redelivers the message after its lease, and the redelivery finds the restart in doubt instead of restarting again`,
    );
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
