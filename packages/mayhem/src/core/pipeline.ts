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
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Delivery, HostGuard, RestartExecutor, Storage } from './contracts.js';
import type { Counters } from './counters.js';
import { DependencyHealth } from './dependency-health.js';
import { errorText } from './errors.js';
import { Job, type HandleEnd, type Outcome } from './job.js';
import type { HostTemplate } from './hostname.js';
import { hostnameOf, parseRestartRequest } from './message.js';
import { DeadlineQueue } from './deadline-queue.js';
import type { FleetControl, IntakeHold, Rails } from './rails.js';
import { RestartBranch } from './restart-branch.js';
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
  /** Leashed (also `dryRun`): log and record what would be restarted; restart nothing. */
  readonly dryRun: boolean;
  /**
   * A restart found in doubt (an earlier delivery began it and never recorded how it ended): `skip`
   * (default: at most once — recorded and acked, never run again) or `restart` (at least once).
   */
  readonly inDoubt?: 'skip' | 'restart';
  /** Backoff of records retried while the database is out (default: retryBackoff's base, up to 5 s). */
  readonly recordBackoff?: BackoffPolicy;
  readonly random: () => number;
  /** This instance's name in the audit trail (default host:pid). */
  readonly instance?: string;
  /** The executor's name in the audit trail (default mock). */
  readonly executorName?: string;
  /** `--experiment`: stamped on the audit rows written with records (the control stamps the rest). */
  readonly experiment?: string | undefined;
  /** Monotonic clock in ms (tests pass a fake one). */
  readonly now?: () => number;
  /** `--host-template`: the host of a request that carries none (default `{instance}.example.net`). */
  readonly hostTemplate?: HostTemplate;
}

export interface PipelineDeps {
  readonly storage: Storage;
  readonly executor: RestartExecutor;
  readonly hostGuard: HostGuard;
  readonly counters: Counters;
  readonly logger: Logger;
  /** Safety rails decided before any executor runs (absent: every restart may run). */
  readonly rails?: Rails;
  /** Where decisions are audited (and the rails' fleet state lives). */
  readonly control?: FleetControl;
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
  readonly #runner: StepRunner;
  readonly #restart: RestartBranch;
  readonly #settler: Settler;
  // Every in-flight message is extended every extendEveryMs: one timer for all of them.
  readonly #extensions: DeadlineQueue<Job>;
  #live = 0;

  constructor(options: PipelineOptions, deps: PipelineDeps) {
    this.#o = options;
    this.#d = deps;
    const { logger, counters, storage } = deps;
    const now = options.now;
    this.storageHealth = new DependencyHealth('Database', logger, {
      whileDown: 'intake paused, records retried',
      waiting: () => this.#live,
      now,
    });
    this.brokerHealth = new DependencyHealth('Broker', logger, {
      whileDown: 'pulls and settles retried',
      waiting: () => this.#live,
      now,
    });
    this.#runner = new StepRunner({
      retryBackoff: options.retryBackoff,
      recordBackoff: options.recordBackoff ?? {
        baseMs: options.retryBackoff.baseMs,
        maxMs: Math.max(options.retryBackoff.maxMs, 5000),
      },
      recordAttemptsAfterCancel: RECORD_ATTEMPTS_AFTER_CANCEL,
      random: options.random,
      counters,
      onBug: (job, error) => this.#end(job, undefined, error),
    });
    this.#settler = new Settler(
      { maxDeliveries: options.maxDeliveries, nackBackoff: options.nackBackoff, random: options.random },
      {
        storage,
        counters,
        logger,
        storageHealth: this.storageHealth,
        runner: this.#runner,
        restartRecorded: (job) => this.#restart.final(job, 'done'),
        end: (job, outcome, error) => this.#end(job, outcome, error),
      },
    );
    this.#extensions = new DeadlineQueue(options.extendEveryMs, (job: Job) => this.#extend(job), { now, ref: true });
    const dependency = this.storageHealth;
    // The rails' leash is read per claim (it may change while running); a dry run is leashed for good.
    this.#restart = new RestartBranch(
      {
        restartAttempts: options.restartAttempts,
        saveAttempts: options.saveAttempts,
        claimMode: options.dryRun ? 'look' : options.inDoubt === 'restart' ? 'claim-in-doubt' : 'claim',
        instance: options.instance ?? `${hostname()}:${process.pid}`,
        executorName: options.executorName ?? 'mock',
        experiment: options.experiment,
      },
      {
        storage,
        executor: deps.executor,
        hostGuard: deps.hostGuard,
        counters,
        logger,
        storageHealth: this.storageHealth,
        runner: this.#runner,
        rails: deps.rails,
        control: deps.control,
        storageRetry: (job, err, n, attempts, what) => this.#storageRetry(job, err, n, attempts, what),
        branchEnded: (job) => this.#branchEnded(job),
      },
    );

    this.#saving = {
      kind: 'stoppable',
      dependency,
      run: (job) => storage.saveMessage(job.request, job.delivery.deliveryCount, job.signal),
      retry: (job, err, n) => {
        counters.increment('save_failed');
        return this.#storageRetry(job, err, n, this.#o.saveAttempts, 'save');
      },
      succeeded: (job) => {
        if (logger.isLevelEnabled('info'))
          logger.info({ messageId: job.messageId }, `Saved ${job.request.instanceName} into database`);
        job.save = 'saved';
        this.#branchEnded(job);
      },
      failed: (job, err) => {
        // The database's fault: its health tells it (once), not the central handler.
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, false);
        job.save = 'failed';
        this.#branchEnded(job);
      },
    };
  }

  /** Why intake should pause now (restarts paused fleet-wide, outside the window), or undefined. */
  holdIntake(): IntakeHold | undefined {
    return this.#d.rails?.holdIntake(Date.now());
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
      parsed = parseRestartRequest(delivery.data, this.#o.hostTemplate);
    } catch (err) {
      // The parser does not throw; if it ever did, the payload is still only a malformed message.
      parsed = { ok: false, error: `could not be parsed (${errorText(err)})` };
    }
    if (!parsed.ok) {
      const ended = (outcome: Outcome | undefined, error: unknown): void => {
        this.#live -= 1;
        onEnd({ delivery, startedAt, outcome, error });
      };
      void this.#deadLetterMalformed(delivery, parsed.error, signal).then(
        (outcome) => ended(outcome, undefined),
        (error: unknown) => ended(undefined, error),
      );
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
    this.#restart.close();
    this.#extensions.clear();
  }

  /** Log, start extending, then restart ∥ save. */
  readonly #begin = (job: Job): void => {
    const log = this.#d.logger;
    if (log.isLevelEnabled('info'))
      log.info(
        { messageId: job.messageId, host: job.host, delivery: job.delivery.deliveryCount },
        `Pulled ${job.request.instanceName}`,
      );
    this.#extensions.add(job);
    this.#restart.begin(job);
    this.#runner.attempt(job, 1, this.#saving);
  };

  #extend(job: Job): void {
    this.#extensions.add(job);
    job.extensions += 1;
    this.#d.counters.increment('extended');
    job.delivery.extend().then(this.#extendOk, this.#extendFailed);
    if (this.#d.logger.isLevelEnabled('info')) {
      this.#d.logger.info(
        { messageId: job.messageId, extensions: job.extensions },
        `Extended deadline by ${Math.round(this.#o.ackDeadlineMs / 1000)} seconds for ${job.request.instanceName}`,
      );
    }
  }

  readonly #extendOk = (): void => this.brokerHealth.ok();

  // The broker's health says it once when extensions keep failing; per message it is debug detail.
  readonly #extendFailed = (err: unknown): void => {
    this.brokerHealth.failed(err);
    this.#d.logger.debug({ err: errorText(err) }, 'Could not extend a deadline');
  };

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
      const text =
        what === 'save'
          ? `Retrying for failure to save ${job.request.instanceName}`
          : `Could not ${what} ${job.request.instanceName}; retrying`;
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
    this.#restart.abandon(job);
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
