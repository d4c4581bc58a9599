/**
 * One message's life, on one screen:
 *
 *   parse ─┬─ malformed ────────────────────────────────────────────► dead-letter
 *          └─ valid ─► [ restart (per-host guard, skip if done, retry) ∥ save (retry) ]
 *                       while extending the lease every `extendEveryMs`
 *                      ├─ both ok ──────────────────────────────────► ack, record acked
 *                      ├─ cancelled (shutdown) ─────────────────────► nack now
 *                      ├─ failed, deliveries < maxDeliveries ───────► nack with backoff
 *                      └─ failed, deliveries ≥ maxDeliveries ───────► dead-letter
 *
 * The pipeline never throws for a message-level failure; an error that does escape (a bug, a
 * broker that refuses the ack) is the consumer's central exception handler's to log and nack.
 */
import type { Logger } from 'pino';
import type { Delivery, HostGuard, RestartExecutor, Storage } from './contracts.js';
import { RestartFailed } from './contracts.js';
import type { Counters } from './counters.js';
import { hostnameOf, parseRestartRequest, type RestartRequest } from './message.js';
import { DeadlineQueue } from './deadline-queue.js';
import { backoffDelay, isAbort, sleep, type BackoffPolicy } from './timing.js';

export interface PipelineOptions {
  /** Extend the lease this often while work is in flight. */
  readonly extendEveryMs: number;
  /** How long one extension buys, for the log line (the broker's ack deadline). */
  readonly ackDeadlineMs: number;
  readonly restartAttempts: number;
  readonly saveAttempts: number;
  /** After this many deliveries a failing message is dead-lettered instead of nacked. */
  readonly maxDeliveries: number;
  /** Backoff between retries of one step within a delivery. */
  readonly retryBackoff: BackoffPolicy;
  /** Backoff before a nacked message is redelivered (grows with its delivery count). */
  readonly nackBackoff: BackoffPolicy;
  /** Log what would be restarted; restart nothing and record no restart. */
  readonly dryRun: boolean;
  readonly random: () => number;
  /** Monotonic clock in ms (tests pass a fake one). */
  readonly now?: () => number;
}

export interface PipelineDeps {
  readonly storage: Storage;
  readonly executor: RestartExecutor;
  readonly hostGuard: HostGuard;
  readonly counters: Counters;
  readonly logger: Logger;
}

export type Outcome = 'acked' | 'nacked' | 'dead-lettered' | 'cancelled';

/** How the handling of one delivery ended, handed to whoever started it. */
export interface HandleEnd {
  readonly delivery: Delivery;
  /** `performance.now()` when handling started. */
  readonly startedAt: number;
  /** How it ended; `undefined` when an error escaped the pipeline (then see `error`). */
  readonly outcome: Outcome | undefined;
  /** What escaped: a bug, or a broker that refused the ack. The central exception handler's to log and nack. */
  readonly error: unknown;
}

/** A step's failure, boxed so a rejection with `undefined` still counts as one. */
interface StepFailure {
  readonly error: unknown;
}

/**
 * One delivery being handled: everything its steps need, in one object. The steps below are
 * continuations that take the job, so a message in flight holds this object and one pending
 * callback, not a chain of promises and closures per step (100k in flight = 100k of these).
 */
class Job implements HandleEnd {
  /** Restart attempts made during this delivery (0 when the restart was already recorded as done). */
  restartAttempts = 0;
  extensions = 0;
  /** Steps still running: restart and save. */
  running = 2;
  /** Whether this job holds its host on the guard (so exactly one release). */
  holdsHost = false;
  /** Restarted, and the record of it rides on the ack record (the host stays held until that is written). */
  restartUnrecorded = false;
  /** The restart step's failure wins over the save step's (it says more about what went wrong). */
  failure: StepFailure | undefined = undefined;
  ended = false;
  outcome: Outcome | undefined = undefined;
  error: unknown = undefined;

  constructor(
    readonly delivery: Delivery,
    readonly request: RestartRequest,
    readonly host: string,
    readonly signal: AbortSignal,
    readonly startedAt: number,
    readonly onEnd: (end: HandleEnd) => void,
  ) {}
}

/** One retried operation of a job: run attempt `n`, decide on a failure, go on. */
interface RetriedStep {
  readonly run: (job: Job, attempt: number) => Promise<void>;
  /** Called per failed attempt (not for a cancellation): counts, logs, says whether to try again. */
  readonly retry: (job: Job, error: unknown, attempt: number) => boolean;
  readonly succeeded: (job: Job) => void;
  readonly failed: (job: Job, error: unknown) => void;
  /**
   * Whether shutdown (the job's signal) and the end of the job stop it. Only the record of a restart
   * that already happened is not: dropping it would let a redelivery restart the host again.
   */
  readonly stoppable: boolean;
}

export class MessagePipeline {
  readonly #o: PipelineOptions;
  readonly #d: PipelineDeps;
  // Every in-flight message is extended every extendEveryMs: one timer for all of them.
  readonly #extensions: DeadlineQueue<Job>;

  constructor(options: PipelineOptions, deps: PipelineDeps) {
    this.#o = options;
    this.#d = deps;
    this.#extensions = new DeadlineQueue(options.extendEveryMs, (job: Job) => this.#extend(job), { now: options.now, ref: true });
  }

  /**
   * Handle one delivery to its end; `onEnd` is called exactly once. `signal` aborts on shutdown
   * after the grace period. Never throws: what escapes arrives as `end.error`.
   */
  start(delivery: Delivery, signal: AbortSignal, onEnd: (end: HandleEnd) => void): void {
    const startedAt = performance.now();
    let job: Job;
    try {
      const parsed = parseRestartRequest(delivery.data);
      if (!parsed.ok) {
        void this.#deadLetterMalformed(delivery, parsed.error).then(
          (outcome) => onEnd({ delivery, startedAt, outcome, error: undefined }),
          (error: unknown) => onEnd({ delivery, startedAt, outcome: undefined, error }),
        );
        return;
      }
      const { request } = parsed;
      job = new Job(delivery, request, hostnameOf(request), signal, startedAt, onEnd);
    } catch (error) {
      onEnd({ delivery, startedAt, outcome: undefined, error });
      return;
    }
    this.#guarded(job, this.#begin, undefined);
  }

  /**
   * {@link start} as a promise: resolves with the outcome, rejects with what escaped. An async
   * function on purpose: under loopwatch each call is a task, so a task dump lists the message.
   */
  async handle(delivery: Delivery, signal: AbortSignal): Promise<Outcome> {
    const end = await new Promise<HandleEnd>((resolve) => this.start(delivery, signal, resolve));
    // Exactly what escaped, as the central exception handler would get it.
    if (end.outcome === undefined) throw end.error;
    return end.outcome;
  }

  /** Log, start extending, then restart ∥ save. */
  readonly #begin = (job: Job): void => {
    const log = this.#d.logger;
    if (log.isLevelEnabled('info')) log.info({ messageId: job.request.messageId, host: job.host, delivery: job.delivery.deliveryCount }, `Pulled ${job.request.instanceName}`);
    this.#extensions.add(job);
    this.#when(job, this.#d.hostGuard.acquire(job.host, job.signal), this.#hostHeld, this.#restartFailed);
    this.#attempt(job, 1, this.#saving);
  };

  #extend(job: Job): void {
    this.#extensions.add(job);
    job.extensions += 1;
    this.#d.counters.increment('extended');
    job.delivery.extend().catch((err: unknown) => this.#d.logger.warn({ messageId: job.request.messageId, err: String(err) }, 'Could not extend deadline'));
    if (this.#d.logger.isLevelEnabled('info')) {
      this.#d.logger.info({ messageId: job.request.messageId, extensions: job.extensions }, `Extended deadline by ${Math.round(this.#o.ackDeadlineMs / 1000)} seconds for ${job.request.instanceName}`);
    }
  }

  // ---- restart: hold the host → skip if already done → restart (retried) → record it (retried) ----

  readonly #hostHeld = (job: Job): void => {
    job.holdsHost = true;
    // Ended meanwhile (an escaped error): the host goes straight back.
    if (job.ended) return this.#releaseHost(job);
    this.#when(job, this.#d.storage.isRestartDone(job.request.messageId, job.signal), this.#restartLookedUp, this.#restartFailed);
  };

  readonly #restartLookedUp = (job: Job, done: boolean): void => {
    if (job.ended) return;
    const { logger, counters } = this.#d;
    if (done) {
      counters.increment('restart_skipped');
      logger.info({ messageId: job.request.messageId, host: job.host }, `Already restarted ${job.host} for this message; not restarting again`);
      this.#restartEnded(job);
    } else if (this.#o.dryRun) {
      logger.info({ messageId: job.request.messageId, host: job.host }, `Dry run: would restart ${job.host}`);
      this.#restartEnded(job);
    } else {
      this.#attempt(job, 1, this.#restarting);
    }
  };

  /** A `RestartFailed` is retried after a backoff up to `restartAttempts`; any other error is not. */
  readonly #restarting: RetriedStep = {
    run: (job, n) => {
      job.restartAttempts = n;
      return this.#d.executor.restart(job.host, job.signal);
    },
    retry: (job, err, n) => {
      this.#d.counters.increment('restart_failed');
      if (n >= this.#o.restartAttempts || !(err instanceof RestartFailed)) return false;
      this.#d.logger.error({ messageId: job.request.messageId, host: job.host, attempt: n }, `Retrying for failure to restart: ${job.host}`);
      return true;
    },
    succeeded: (job) => {
      this.#d.counters.increment('restarted');
      if (this.#d.logger.isLevelEnabled('info')) this.#d.logger.info({ messageId: job.request.messageId, host: job.host, attempts: job.restartAttempts }, `Restarted ${job.host}`);
      if (!job.ended && job.running === 1 && job.failure === undefined) {
        // The save is done, so the ack comes next: its record carries the restart (one row write,
        // not two). The host stays held until it is written, as it would be for markRestarted.
        job.restartUnrecorded = true;
        this.#stepEnded(job);
        return;
      }
      // Recorded before anything else can ack or nack: a redelivery must find it.
      this.#attempt(job, 1, this.#recordingRestart);
    },
    failed: (job, err) => this.#restartFailed(job, err),
    stoppable: true,
  };

  readonly #recordingRestart: RetriedStep = {
    // No signal: the restart happened, so its record is written even during shutdown.
    run: (job) => this.#d.storage.markRestarted(job.request.messageId, job.restartAttempts),
    retry: (job, err, n) => {
      this.#d.logger.warn({ messageId: job.request.messageId, attempt: n, err: errorText(err) }, 'Could not record restart; retrying');
      return n < this.#o.saveAttempts;
    },
    succeeded: (job) => this.#restartEnded(job),
    failed: (job, err) => this.#restartFailed(job, err),
    stoppable: false,
  };

  readonly #restartFailed = (job: Job, error: unknown): void => {
    job.failure = { error };
    this.#restartEnded(job);
  };

  #restartEnded(job: Job): void {
    this.#releaseHost(job);
    this.#stepEnded(job);
  }

  #releaseHost(job: Job): void {
    if (!job.holdsHost) return;
    job.holdsHost = false;
    this.#d.hostGuard.release(job.host);
  }

  // ---- save (retried; saves are idempotent upserts) ----

  readonly #saving: RetriedStep = {
    run: (job) => this.#d.storage.saveMessage(job.request, job.delivery.deliveryCount, job.signal),
    retry: (job, err, n) => {
      this.#d.counters.increment('save_failed');
      const retrying = n < this.#o.saveAttempts;
      if (retrying) this.#d.logger.warn({ messageId: job.request.messageId, attempt: n, err: errorText(err) }, `Retrying for failure to save ${job.request.instanceName}`);
      return retrying;
    },
    succeeded: (job) => {
      if (this.#d.logger.isLevelEnabled('info')) this.#d.logger.info({ messageId: job.request.messageId }, `Saved ${job.request.instanceName} into database`);
      this.#stepEnded(job);
    },
    failed: (job, error) => {
      job.failure ??= { error };
      this.#stepEnded(job);
    },
    stoppable: true,
  };

  // ---- both steps ended: ack, nack or dead-letter ----

  #stepEnded(job: Job): void {
    if (--job.running > 0 || job.ended) return;
    this.#extensions.delete(job);
    const failure = job.failure;
    if (failure === undefined) return this.#ack(job);
    const settling = job.signal.aborted ? this.#nackCancelled(job) : this.#fail(job, failure.error);
    void settling.then((outcome) => this.#end(job, outcome, undefined), (error: unknown) => this.#end(job, undefined, error));
  }

  #end(job: Job, outcome: Outcome | undefined, error: unknown): void {
    if (job.ended) return;
    job.ended = true;
    // After an escaped error, steps may still be running: they find `ended` and stop; the host and
    // the extensions are given up now, so nothing waits on a message that is gone.
    this.#extensions.delete(job);
    this.#releaseHost(job);
    job.outcome = outcome;
    job.error = error;
    job.onEnd(job);
  }

  // ---- plumbing: continuations that take the job, so nothing per step is allocated but the wait ----

  /** Run `step` from attempt `n`; on failure back off and try again while its policy says so. */
  #attempt(job: Job, n: number, step: RetriedStep): void {
    if (job.ended && step.stoppable) return;
    let running: Promise<void>;
    try {
      running = step.run(job, n);
    } catch (err) {
      // An adapter that throws instead of rejecting fails the attempt all the same.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      running = Promise.reject(err);
    }
    void running.then(
      () => this.#guarded(job, step.succeeded, undefined),
      (err: unknown) => this.#guarded(job, () => this.#attemptFailed(job, n, step, err), undefined),
    );
  }

  #attemptFailed(job: Job, n: number, step: RetriedStep, err: unknown): void {
    if (job.ended && step.stoppable) return;
    if ((step.stoppable && isAbort(err, job.signal)) || !step.retry(job, err, n)) {
      step.failed(job, err);
      return;
    }
    this.#d.counters.increment('retries');
    void sleep(backoffDelay(n, this.#o.retryBackoff, this.#o.random), step.stoppable ? job.signal : undefined).then(
      () => this.#attempt(job, n + 1, step),
      (aborted: unknown) => this.#guarded(job, step.failed, aborted),
    );
  }

  /** When `waiting` settles, go on with `next` or `failed`. */
  #when<T>(job: Job, waiting: Promise<T>, next: (job: Job, value: T) => void, failed: (job: Job, error: unknown) => void): void {
    void waiting.then(
      (value) => this.#guarded(job, next, value),
      (error: unknown) => this.#guarded(job, failed, error),
    );
  }

  /**
   * Run one continuation; what it throws (a bug) escapes to the central exception handler. It runs
   * even after the job ended: continuations that must clean up (give a host back) do so, the rest
   * check `job.ended` and start nothing new.
   */
  #guarded<T>(job: Job, fn: (job: Job, value: T) => void, value: T): void {
    try {
      fn(job, value);
    } catch (error) {
      this.#end(job, undefined, error);
    }
  }

  /**
   * Record the ack, then send it. In this order a process killed in between leaves a record that
   * says acked for a message the broker will redeliver (the redelivery finds the restart done and
   * acks again): the record catches up. The other order could leave a message the broker dropped
   * with a record that says "not acked" forever. A record that cannot be written is logged and the
   * ack goes out anyway: the work is done, and the restart-done record guards against a second restart.
   */
  #ack(job: Job): void {
    const record = { messageId: job.request.messageId, extensions: job.extensions, attempts: job.restartAttempts, restartDone: job.restartUnrecorded };
    this.#when(job, this.#d.storage.markAcked(record), this.#ackRecorded, this.#ackNotRecorded);
  }

  readonly #ackNotRecorded = (job: Job, err: unknown): void => {
    this.#d.logger.warn({ messageId: job.request.messageId, err: errorText(err) }, 'Could not record the ack; acking anyway');
    this.#ackRecorded(job);
  };

  readonly #ackRecorded = (job: Job): void => {
    // Held only when the restart record rode on the ack record: now it is written (or given up).
    this.#releaseHost(job);
    this.#when(job, job.delivery.ack(), this.#acked, this.#escape);
  };

  readonly #acked = (job: Job): void => {
    this.#d.counters.increment('acked');
    if (this.#d.logger.isLevelEnabled('info')) this.#d.logger.info({ messageId: job.request.messageId, extensions: job.extensions }, `Done. Acked ${job.request.instanceName}`);
    this.#end(job, 'acked', undefined);
  };

  /** A broker that refused the ack: the central exception handler's to log and nack. */
  readonly #escape = (job: Job, error: unknown): void => this.#end(job, undefined, error);

  async #nackCancelled(job: Job): Promise<Outcome> {
    await job.delivery.nack(0);
    this.#d.counters.increment('nacked');
    this.#d.logger.info({ messageId: job.request.messageId }, `Cancelled; nacked ${job.request.instanceName} back to the broker`);
    return 'cancelled';
  }

  async #fail(job: Job, error: unknown): Promise<Outcome> {
    const { storage, counters, logger } = this.#d;
    const id = job.request.messageId;
    const text = errorText(error);
    if (!(error instanceof RestartFailed)) logger.error({ messageId: id, err: text }, `Handling general error: ${text}`);
    if (job.delivery.deliveryCount >= this.#o.maxDeliveries) {
      const reason = `gave up after ${job.delivery.deliveryCount} deliveries: ${text}`;
      await storage.deadLetter({ request: job.request, payload: Buffer.from(job.delivery.data).toString('utf8'), reason, deliveries: job.delivery.deliveryCount });
      await job.delivery.deadLetter(reason);
      counters.increment('dead_lettered');
      logger.error({ messageId: id, deliveries: job.delivery.deliveryCount, reason }, `Dead-lettered ${job.request.instanceName}`);
      return 'dead-lettered';
    }
    const delay = backoffDelay(job.delivery.deliveryCount, this.#o.nackBackoff, this.#o.random);
    // The record is for operators; the nack is what matters, so a failed record does not stop it.
    await storage.markFailed(id, text, job.restartAttempts).catch((err: unknown) => logger.warn({ messageId: id, err: errorText(err) }, 'Could not record failure'));
    await job.delivery.nack(delay);
    counters.increment('nacked');
    logger.warn({ messageId: id, delivery: job.delivery.deliveryCount, redeliverInMs: delay, err: text }, `Nacked ${job.request.instanceName}; redelivery in ${delay} ms`);
    return 'nacked';
  }

  async #deadLetterMalformed(delivery: Delivery, reason: string): Promise<Outcome> {
    const payload = Buffer.from(delivery.data).toString('utf8');
    await this.#d.storage.deadLetter({ payload, reason: `malformed: ${reason}`, deliveries: delivery.deliveryCount });
    await delivery.deadLetter(`malformed: ${reason}`);
    this.#d.counters.increment('malformed');
    this.#d.counters.increment('dead_lettered');
    this.#d.logger.error({ reason, bytes: delivery.data.byteLength }, `Dead-lettered malformed message: ${reason}`);
    return 'dead-lettered';
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
