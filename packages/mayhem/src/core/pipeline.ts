/**
 * One message's life, on one screen (its states and legal moves: core/job-machine.ts):
 *
 *   parse ─┬─ malformed ──────────────────────────────────────────────────► dead-letter
 *          └─ valid ─► [ restart ∥ save ], extending the lease every `extendEveryMs` until settled
 *                restart: hold the host → claim (record the intent; skip if done, in doubt or a dry
 *                         run; a reused id is a conflict) → run the executor (retried) → record it
 *                save:    upsert the message (retried)
 *              ─► settle (core/settle.ts): record, then ack │ nack with backoff │ dead-letter
 *
 * Every step reports what happened as an event; `advance(job, event)` (core/job-machine.ts) moves the
 * job and says what to do next, and the pipeline does it (`#drive`). How steps run and retry:
 * core/steps.ts. Each message is also a loopwatch work unit (`loopwatch ps` shows its phase) when a
 * tracker is handed in. The pipeline never throws for a message-level failure; an error that does escape (a bug, a broker
 * that refuses the ack) is the consumer's central exception handler's to log and nack.
 */
import { hostname } from 'node:os';
import type { Delivery, Progress, TrackProgress } from './contracts.js';
import { DependencyHealth } from './dependency-health.js';
import { errorText } from './errors.js';
import { Job, type HandleEnd, type Outcome } from './job.js';
import { advance, Effect, restartFinal, type Effects, type JobEvent, type JobRules } from './job-machine.js';
import { deadLetterPayload, hostnameOf, parseRestartRequest } from './message.js';
import { DeadlineQueue } from './deadline-queue.js';
import type { IntakeHold } from './rails.js';
import { RestartBranch } from './restart-branch.js';
import { Settler } from './settle.js';
import { StepRunner, type RetriedStep } from './steps.js';
import { backoffDelay, isAbort, sleep } from './timing.js';

export type { HandleEnd, Outcome } from './job.js';

export type { PipelineDeps, PipelineOptions } from './pipeline-options.js';
import type { PipelineDeps, PipelineOptions } from './pipeline-options.js';

/** The unit of every message while nothing tracks them. */
const NO_PROGRESS: Progress = Object.freeze({
  live: false,
  phase: () => undefined,
  end: () => undefined,
  fail: () => undefined,
});
const untracked: TrackProgress = () => NO_PROGRESS;

/** A job whose rules each pipeline puts on its own subclass's prototype. */
abstract class PipelineJob extends Job {
  abstract override get rules(): JobRules;
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
  /** `Job` with this pipeline's rules on its prototype. */
  readonly #Job: new (...args: ConstructorParameters<typeof PipelineJob>) => Job;
  readonly #track: TrackProgress;
  #live = 0;

  constructor(options: PipelineOptions, deps: PipelineDeps) {
    this.#o = options;
    this.#d = deps;
    const { logger, counters, storage } = deps;
    const now = options.now;
    const rules: JobRules = { rails: deps.rails !== undefined, maxDeliveries: options.maxDeliveries };
    this.#Job = class extends PipelineJob {
      override get rules(): JobRules {
        return rules;
      }
    };
    this.#track = deps.track ?? untracked;
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
      onBug: (job, error) => this.#escape(job, error),
    });
    this.#settler = new Settler(
      { maxDeliveries: options.maxDeliveries, nackBackoff: options.nackBackoff, random: options.random },
      {
        storage,
        counters,
        logger,
        storageHealth: this.storageHealth,
        runner: this.#runner,
        drive: this.#drive,
        escape: (job, error) => this.#escape(job, error),
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
        drive: this.#drive,
        escape: (job, error) => this.#escape(job, error),
      },
    );

    this.#saving = {
      kind: 'stoppable',
      dependency,
      run: (job, n) => {
        const saving = storage.saveMessage(job.request, job.delivery.deliveryCount, job.signal);
        // One phase per message: a retried save shows once the restart is over (it says more meanwhile).
        if (job.work.live && (n === 1 || restartFinal(job)))
          job.work.phase(n === 1 ? 'saving' : `saving (attempt ${n})`, saving);
        return saving;
      },
      retry: (job, err, n) => {
        counters.increment('save_failed');
        return this.#storageRetry(job, err, n, this.#o.saveAttempts, 'save');
      },
      succeeded: (job) => {
        if (logger.isLevelEnabled('info'))
          logger.info({ messageId: job.messageId }, `Saved ${job.request.instanceName} into database`);
        this.#drive(job, 'saved');
      },
      failed: (job, err) => {
        // The database's fault: its health tells it (once), not the central handler.
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, false);
        this.#drive(job, 'save-failed');
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
      parsed = parseRestartRequest(delivery.data, this.#o.hostTemplate, this.#o.maxMessageBytes);
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
    const host = hostnameOf(request);
    const job = new this.#Job(
      delivery,
      request,
      host,
      signal,
      startedAt,
      onEnd,
      this.#track('message', request.messageId),
    );
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
    this.#drive(job, 'pulled');
  };

  /** An event of `job`: the machine moves it on, and what it says to do next is done here. */
  readonly #drive = (job: Job, event: JobEvent): void => {
    const effects = advance(job, event);
    if (effects !== 0) this.#perform(job, effects);
    // The restart is over and only the save is left to wait on: say so.
    else if (job.work.live && job.save === 'saving' && restartFinal(job)) job.work.phase('saving');
  };

  #perform(job: Job, effects: Effects): void {
    this.#restart.perform(job, effects);
    if ((effects & Effect.Save) !== 0) this.#runner.attempt(job, 1, this.#saving);
    this.#settler.perform(job, effects);
    if ((effects & Effect.End) !== 0) this.#ended(job);
  }

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

  // ---- the end ----

  /**
   * What escaped (a bug, an illegal transition, a broker that refused to settle) ends the job for the
   * central exception handler. Steps may still be running: they find the job ended and stop (see
   * core/steps.ts); the host and the extensions are given up now, so nothing waits on it.
   */
  #escape(job: Job, error: unknown): void {
    if (job.ended) return;
    job.error = error;
    this.#drive(job, 'escaped');
  }

  #ended(job: Job): void {
    this.#extensions.delete(job);
    this.#live -= 1;
    this.#settler.ended(job);
    if (job.outcome === undefined) job.work.fail(job.error);
    else job.work.end();
    job.onEnd(job);
  }

  /** Dead-letter a payload that is not a restart request: record it (retried), then park it. */
  async #deadLetterMalformed(delivery: Delivery, reason: string, signal: AbortSignal): Promise<Outcome> {
    const payload = deadLetterPayload(delivery.data, this.#o.maxMessageBytes);
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
