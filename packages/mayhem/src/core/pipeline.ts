/**
 * One message's life, on one screen:
 *
 *   parse ─┬─ malformed ──────────────────────────────────────────────────► dead-letter
 *          └─ valid ─► [ restart ∥ save ], extending the lease every `extendEveryMs` until settled
 *                restart: hold the host → claim (record the intent; skip if done, in doubt or a dry
 *                         run; a reused id is a conflict) → run the executor (retried) → record it
 *                save:    upsert the message (retried)
 *              ─► settle (core/settle.ts): record, then ack │ nack with backoff │ dead-letter
 *
 * The job's states and invariants are in core/job.ts; how steps run and retry in core/steps.ts.
 * The pipeline never throws for a message-level failure; an error that does escape (a bug, a broker
 * that refuses the ack) is the consumer's central exception handler's to log and nack.
 */
import type { Logger } from 'pino';
import type { ClaimMode, Delivery, HostGuard, RestartClaim, RestartExecutor, Storage } from './contracts.js';
import { RestartFailed, RestartRejected } from './contracts.js';
import type { Counters } from './counters.js';
import { DependencyHealth } from './dependency-health.js';
import { errorText } from './errors.js';
import { Job, type HandleEnd, type Outcome } from './job.js';
import { hostnameOf, parseRestartRequest } from './message.js';
import { DeadlineQueue } from './deadline-queue.js';
import { Settler } from './settle.js';
import { StepRunner, type RetriedStep } from './steps.js';
import { backoffDelay, isAbort, sleep, type BackoffPolicy } from './timing.js';

export type { HandleEnd, Outcome } from './job.js';

export interface PipelineOptions {
  /** Extend the lease this often while a message is in flight. */
  readonly extendEveryMs: number;
  /** How long one extension buys, for the log line (the broker's ack deadline). */
  readonly ackDeadlineMs: number;
  readonly restartAttempts: number;
  /** Tries of the save, and of the claim that precedes a restart. */
  readonly saveAttempts: number;
  /** After this many deliveries a failing message is dead-lettered instead of nacked. */
  readonly maxDeliveries: number;
  /** Backoff between retries of one step within a delivery. */
  readonly retryBackoff: BackoffPolicy;
  /** Backoff before a nacked message is redelivered (grows with its delivery count). */
  readonly nackBackoff: BackoffPolicy;
  /** Log what would be restarted; restart nothing and record no restart. */
  readonly dryRun: boolean;
  /**
   * A restart found in doubt (an earlier delivery began it and never recorded how it ended): `skip`
   * (default: at most once — recorded and acked, never run again) or `restart` (at least once).
   */
  readonly inDoubt?: 'skip' | 'restart';
  /** Backoff of records retried while the database is out (default: retryBackoff's base, up to 5 s). */
  readonly recordBackoff?: BackoffPolicy;
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

// Once shutdown has cancelled a job, a record still unwritten gets this many more tries.
const RECORD_ATTEMPTS_AFTER_CANCEL = 3;

export class MessagePipeline {
  /** The database as the pipeline's own calls see it; the consumer pauses intake while it is down. */
  readonly storageHealth: DependencyHealth;
  /** The broker, from extensions and the consumer's pulls. */
  readonly brokerHealth: DependencyHealth;
  readonly #o: PipelineOptions;
  readonly #d: PipelineDeps;
  readonly #claimMode: ClaimMode;
  readonly #runner: StepRunner;
  readonly #settler: Settler;
  // Every in-flight message is extended every extendEveryMs: one timer for all of them.
  readonly #extensions: DeadlineQueue<Job>;
  #live = 0;

  constructor(options: PipelineOptions, deps: PipelineDeps) {
    this.#o = options;
    this.#d = deps;
    const { logger, counters, storage } = deps;
    const now = options.now;
    this.#claimMode = options.dryRun ? 'look' : options.inDoubt === 'restart' ? 'claim-in-doubt' : 'claim';
    this.storageHealth = new DependencyHealth('Database', logger, { whileDown: 'intake paused, records retried', waiting: () => this.#live, now });
    this.brokerHealth = new DependencyHealth('Broker', logger, { whileDown: 'pulls and settles retried', waiting: () => this.#live, now });
    this.#runner = new StepRunner({
      retryBackoff: options.retryBackoff,
      recordBackoff: options.recordBackoff ?? { baseMs: options.retryBackoff.baseMs, maxMs: Math.max(options.retryBackoff.maxMs, 5000) },
      recordAttemptsAfterCancel: RECORD_ATTEMPTS_AFTER_CANCEL,
      random: options.random,
      counters,
      onBug: (job, error) => this.#end(job, undefined, error),
    });
    this.#settler = new Settler(
      { maxDeliveries: options.maxDeliveries, nackBackoff: options.nackBackoff, random: options.random },
      {
        storage, counters, logger, storageHealth: this.storageHealth, runner: this.#runner,
        restartRecorded: (job) => this.#restartFinal(job, 'done'),
        end: (job, outcome, error) => this.#end(job, outcome, error),
      },
    );
    this.#extensions = new DeadlineQueue(options.extendEveryMs, (job: Job) => this.#extend(job), { now, ref: true });
    const dependency = this.storageHealth;

    // Waiting for the host is not a database call (another message may hold it for long), but the
    // guard failing is (the PostgreSQL guard's lock connection): retried like a save, and while the
    // database is down it waits for it.
    this.#acquiringHost = {
      kind: 'stoppable',
      run: (job) => deps.hostGuard.acquire(job.host, job.signal),
      retry: (job, err, n) => {
        this.storageHealth.failed(err);
        return this.#storageRetry(job, err, n, this.#o.saveAttempts, 'lock the host of');
      },
      succeeded: (job) => {
        job.restart = 'claiming';
        this.#runner.attempt(job, 1, this.#claiming);
      },
      // Granted after the job ended (an escaped error): the host goes straight back.
      afterEnd: (job) => deps.hostGuard.release(job.host),
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed' }, true);
        this.#restartFinal(job, 'failed');
      },
    };

    this.#claiming = {
      kind: 'stoppable',
      dependency,
      run: (job) => storage.claimRestart(job.request, job.delivery.deliveryCount, this.#claimMode, job.signal),
      retry: (job, err, n) => this.#storageRetry(job, err, n, this.#o.saveAttempts, 'claim the restart of'),
      succeeded: (job, found) => this.#claimed(job, found as RestartClaim),
      // Whether or not a failed claim was written, its release makes sure it leaves no intent behind.
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed' }, true);
        this.#release(job);
      },
    };

    /** A `RestartFailed` is retried after a backoff up to `restartAttempts`; any other error is not. */
    this.#restarting = {
      kind: 'stoppable',
      run: (job, n) => {
        job.restartAttempts = n;
        return deps.executor.restart(job.host, job.signal, { messageId: job.messageId, instanceName: job.request.instanceName, attempt: n, deliveryCount: job.delivery.deliveryCount });
      },
      retry: (job, err, n) => {
        counters.increment('restart_failed');
        if (n >= this.#o.restartAttempts || !(err instanceof RestartFailed) || err instanceof RestartRejected) return false;
        logger.error({ messageId: job.messageId, host: job.host, attempt: n }, `Retrying for failure to restart: ${job.host}`);
        return true;
      },
      succeeded: (job) => {
        counters.increment('restarted');
        if (logger.isLevelEnabled('info')) logger.info({ messageId: job.messageId, host: job.host, attempts: job.restartAttempts }, `Restarted ${job.host}`);
        if (job.save === 'saved' && job.failure === undefined) {
          // The ack comes next: its record carries the restart (one row write, not two); the host
          // stays held until it is written.
          job.restart = 'restarted';
          this.#branchEnded(job);
          return;
        }
        job.restart = 'recording';
        this.#runner.attempt(job, 1, this.#recordingRestart);
      },
      failed: (job, err, betweenAttempts) => {
        const kind = isAbort(err, job.signal) ? 'cancelled' : err instanceof RestartRejected ? 'rejected' : 'failed';
        job.fail({ error: err, kind }, true);
        // Not restarted for sure: stopped between attempts, or the executor said so.
        if (betweenAttempts || err instanceof RestartFailed) return this.#release(job);
        logger.error(
          { messageId: job.messageId, host: job.host, err: errorText(err) },
          `Restart of ${job.host} ended without saying whether it happened (${errorText(err)}); leaving it in doubt: a redelivery will not restart it again`,
        );
        this.#restartFinal(job, 'failed');
      },
    };

    // The restart happened: its record is written even during shutdown (a redelivery must find it).
    this.#recordingRestart = {
      kind: 'durable',
      dependency,
      run: (job) => storage.markRestarted(job.messageId, job.restartAttempts),
      retry: (job, err, n) => this.#storageRetry(job, err, n, Infinity, 'record the restart of'),
      succeeded: (job) => this.#restartFinal(job, 'done'),
      failed: (job, err) => {
        job.fail({ error: err, kind: 'unrecorded' }, true);
        this.#restartFinal(job, 'failed');
      },
    };

    this.#releasing = {
      kind: 'durable',
      dependency,
      run: (job) => storage.releaseRestart(job.messageId, job.delivery.deliveryCount, job.restartAttempts),
      retry: (job, err, n) => this.#storageRetry(job, err, n, Infinity, 'release the claim on'),
      succeeded: (job) => this.#restartFinal(job, 'failed'),
      // Given up at shutdown: the claim stays, so a redelivery finds the restart in doubt (never twice).
      failed: (job) => this.#restartFinal(job, 'failed'),
    };

    this.#saving = {
      kind: 'stoppable',
      dependency,
      run: (job) => storage.saveMessage(job.request, job.delivery.deliveryCount, job.signal),
      retry: (job, err, n) => {
        counters.increment('save_failed');
        return this.#storageRetry(job, err, n, this.#o.saveAttempts, 'save');
      },
      succeeded: (job) => {
        if (logger.isLevelEnabled('info')) logger.info({ messageId: job.messageId }, `Saved ${job.request.instanceName} into database`);
        job.save = 'saved';
        this.#branchEnded(job);
      },
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed' }, false);
        job.save = 'failed';
        this.#branchEnded(job);
      },
    };
  }

  /** Messages between {@link start} and their end. */
  get live(): number {
    return this.#live;
  }

  /**
   * Handle one delivery to its end; `onEnd` is called exactly once. `signal` aborts on shutdown
   * after the grace period. Never throws: what escapes arrives as `end.error`.
   */
  start(delivery: Delivery, signal: AbortSignal, onEnd: (end: HandleEnd) => void): void {
    const startedAt = performance.now();
    this.#live += 1;
    let parsed: ReturnType<typeof parseRestartRequest>;
    try {
      parsed = parseRestartRequest(delivery.data);
    } catch (err) {
      // The parser does not throw; if it ever did, the payload is still only a malformed message.
      parsed = { ok: false, error: `could not be parsed (${errorText(err)})` };
    }
    if (!parsed.ok) {
      const ended = (outcome: Outcome | undefined, error: unknown): void => {
        this.#live -= 1;
        onEnd({ delivery, startedAt, outcome, error });
      };
      void this.#deadLetterMalformed(delivery, parsed.error, signal).then((outcome) => ended(outcome, undefined), (error: unknown) => ended(undefined, error));
      return;
    }
    const { request } = parsed;
    const job = new Job(delivery, request, hostnameOf(request), signal, startedAt, onEnd);
    this.#runner.run(job, this.#begin, undefined);
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

  /** Stop the health timers (the service calls it once everything has ended). */
  close(): void {
    this.storageHealth.close();
    this.brokerHealth.close();
    this.#extensions.clear();
  }

  /** Log, start extending, then restart ∥ save. */
  readonly #begin = (job: Job): void => {
    const log = this.#d.logger;
    if (log.isLevelEnabled('info')) log.info({ messageId: job.messageId, host: job.host, delivery: job.delivery.deliveryCount }, `Pulled ${job.request.instanceName}`);
    this.#extensions.add(job);
    this.#runner.attempt(job, 1, this.#acquiringHost);
    this.#runner.attempt(job, 1, this.#saving);
  };

  #extend(job: Job): void {
    this.#extensions.add(job);
    job.extensions += 1;
    this.#d.counters.increment('extended');
    job.delivery.extend().then(this.#extendOk, this.#extendFailed);
    if (this.#d.logger.isLevelEnabled('info')) {
      this.#d.logger.info({ messageId: job.messageId, extensions: job.extensions }, `Extended deadline by ${Math.round(this.#o.ackDeadlineMs / 1000)} seconds for ${job.request.instanceName}`);
    }
  }

  readonly #extendOk = (): void => this.brokerHealth.ok();

  // The broker's health says it once when extensions keep failing; per message it is debug detail.
  readonly #extendFailed = (err: unknown): void => {
    this.brokerHealth.failed(err);
    this.#d.logger.debug({ err: errorText(err) }, 'Could not extend a deadline');
  };

  // ---- restart: hold the host → claim → restart (retried) → record it, or release the claim ----

  readonly #acquiringHost: RetriedStep;
  readonly #claiming: RetriedStep;

  #claimed(job: Job, found: RestartClaim): void {
    const { logger, counters } = this.#d;
    job.claim = found;
    const at = { messageId: job.messageId, host: job.host };
    switch (found) {
      case 'conflict':
        job.fail({ error: new Error(`messageId ${JSON.stringify(job.messageId)} is already recorded for another instance; not restarting ${job.host}`), kind: 'conflict' }, true);
        return this.#restartFinal(job, 'failed');
      case 'done':
        counters.increment('restart_skipped');
        logger.info(at, `Already restarted ${job.host} for this message; not restarting again`);
        return this.#restartFinal(job, 'skipped');
      case 'in-doubt':
        if (this.#claimMode === 'claim-in-doubt') {
          logger.warn(at, `Restart of ${job.host} is in doubt (an earlier delivery began it and never recorded how it ended); restarting it again as --in-doubt restart says`);
          break;
        }
        counters.increment('restart_in_doubt');
        logger.warn(at, `Restart of ${job.host} is in doubt (an earlier delivery began it and never recorded how it ended: its instance probably died mid-restart); not restarting again`);
        return this.#restartFinal(job, 'skipped');
      case 'free':
        if (this.#claimMode === 'look') {
          logger.info(at, `Dry run: would restart ${job.host}`);
          return this.#restartFinal(job, 'skipped');
        }
    }
    job.restart = 'running';
    this.#runner.attempt(job, 1, this.#restarting);
  }

  readonly #restarting: RetriedStep;
  readonly #recordingRestart: RetriedStep;
  readonly #releasing: RetriedStep;

  #release(job: Job): void {
    job.restart = 'releasing';
    this.#runner.attempt(job, 1, this.#releasing);
  }

  /** The restart branch reaches a final state; the host goes back if it was held. */
  #restartFinal(job: Job, state: 'done' | 'skipped' | 'failed'): void {
    if (job.ended) return; // #end gave the host back already
    if (job.holdsHost) this.#d.hostGuard.release(job.host);
    job.restart = state;
    this.#branchEnded(job);
  }

  // ---- save (retried; saves are idempotent upserts) ----

  readonly #saving: RetriedStep;

  #storageRetry(job: Job, err: unknown, attempt: number, attempts: number, what: string): boolean {
    // While the database is down (or failing every call), a save or claim waits for it like a record
    // does: an outage is not this message's failure, and nacking it would only bring it back to it.
    const retrying = attempt < attempts || this.storageHealth.suspect;
    const log = this.#d.logger;
    // A few per-message lines a second; past that, and while the database is down, its health speaks.
    const level = this.storageHealth.callLogLevel();
    if (retrying && log.isLevelEnabled(level)) {
      const text = what === 'save' ? `Retrying for failure to save ${job.request.instanceName}` : `Could not ${what} ${job.request.instanceName}; retrying`;
      log[level]({ messageId: job.messageId, attempt, err: errorText(err) }, text);
    }
    return retrying;
  }

  // ---- both branches final: the tail settles ----

  #branchEnded(job: Job): void {
    if (job.phase === 'working' && job.branchesFinal) this.#settler.settle(job);
  }

  #end(job: Job, outcome: Outcome | undefined, error: unknown): void {
    if (job.ended) return;
    // After an escaped error, steps may still be running: they find the job ended and stop (see
    // core/steps.ts); the host and the extensions are given up now, so nothing waits on it.
    if (job.holdsHost) this.#d.hostGuard.release(job.host);
    job.phase = 'ended';
    this.#extensions.delete(job);
    job.outcome = outcome;
    job.error = error;
    this.#live -= 1;
    job.onEnd(job);
  }

  /** Dead-letter a payload that is not a restart request: record it (retried), then park it. */
  async #deadLetterMalformed(delivery: Delivery, reason: string, signal: AbortSignal): Promise<Outcome> {
    const payload = Buffer.from(delivery.data).toString('utf8');
    const entry = { payload, reason: `malformed: ${reason}`, deliveries: delivery.deliveryCount };
    for (let attempt = 1; ; attempt++) {
      this.storageHealth.started();
      try {
        await this.#d.storage.deadLetter(entry);
        this.storageHealth.ok();
        break;
      } catch (err) {
        this.storageHealth.failed(err);
        if (signal.aborted && attempt > RECORD_ATTEMPTS_AFTER_CANCEL) {
          await delivery.nack(0);
          this.#d.counters.increment('nacked');
          return 'cancelled';
        }
        const level = this.storageHealth.callLogLevel();
        this.#d.logger[level]({ attempt, err: errorText(err) }, 'Could not record a malformed message; retrying');
        await sleep(backoffDelay(attempt, this.#o.recordBackoff ?? this.#o.retryBackoff, this.#o.random));
      }
    }
    await delivery.deadLetter(entry.reason);
    this.#d.counters.increment('malformed');
    this.#d.counters.increment('dead_lettered');
    this.#d.logger.error({ reason, bytes: delivery.data.byteLength }, `Dead-lettered malformed message: ${reason}`);
    return 'dead-lettered';
  }
}
