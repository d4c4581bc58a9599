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

/** Per-delivery bookkeeping, written into the record on ack. */
interface Attempt {
  readonly request: RestartRequest;
  readonly host: string;
  readonly delivery: Delivery;
  extensions: number;
  restartAttempts: number;
}

export class MessagePipeline {
  readonly #o: PipelineOptions;
  readonly #d: PipelineDeps;
  // Every in-flight message is extended every extendEveryMs: one timer for all of them.
  readonly #extensions: DeadlineQueue<Attempt, Attempt>;

  constructor(options: PipelineOptions, deps: PipelineDeps) {
    this.#o = options;
    this.#d = deps;
    this.#extensions = new DeadlineQueue(options.extendEveryMs, (a) => this.#extend(a), { now: options.now, ref: true });
  }

  /**
   * Handle one delivery to its end. `signal` aborts on shutdown after the grace period.
   * (An async function on purpose: loopwatch's task dump shows each message as a task waiting here.
   * The steps below are promise chains, so a message in flight holds one suspended frame, not five.)
   */
  async handle(delivery: Delivery, signal: AbortSignal): Promise<Outcome> {
    const a = this.#begin(delivery);
    if (typeof a === 'string') return this.#deadLetterMalformed(delivery, a);
    // Both steps run concurrently; each resolves to its failure (or undefined) and never rejects,
    // so awaiting one after the other waits for both.
    const restarting = this.#restart(a, signal).then(succeeded, failed);
    const saveFailure = await this.#save(a, signal).then(succeeded, failed);
    const restartFailure = await restarting;
    this.#extensions.delete(a);
    if (restartFailure === undefined && saveFailure === undefined) return this.#ack(a);
    if (signal.aborted) return this.#nackCancelled(a);
    return this.#fail(a, (restartFailure ?? saveFailure)?.error);
  }

  /** Parse, log, start extending. A string is the reason a malformed payload is rejected. */
  #begin(delivery: Delivery): Attempt | string {
    const parsed = parseRestartRequest(delivery.data);
    if (!parsed.ok) return parsed.error;
    const { request } = parsed;
    const host = hostnameOf(request);
    const log = this.#d.logger;
    if (log.isLevelEnabled('info')) log.info({ messageId: request.messageId, host, delivery: delivery.deliveryCount }, `Pulled ${request.instanceName}`);
    const attempt: Attempt = { request, host, delivery, extensions: 0, restartAttempts: 0 };
    this.#extensions.add(attempt, attempt);
    return attempt;
  }

  #extend(a: Attempt): void {
    this.#extensions.add(a, a);
    a.extensions += 1;
    this.#d.counters.increment('extended');
    a.delivery.extend().catch((err: unknown) => this.#d.logger.warn({ messageId: a.request.messageId, err: String(err) }, 'Could not extend deadline'));
    if (this.#d.logger.isLevelEnabled('info')) {
      this.#d.logger.info({ messageId: a.request.messageId, extensions: a.extensions }, `Extended deadline by ${Math.round(this.#o.ackDeadlineMs / 1000)} seconds for ${a.request.instanceName}`);
    }
  }

  /** Restart the host unless this message's restart is already recorded; one restart per host at a time. */
  #restart(a: Attempt, signal: AbortSignal): Promise<void> {
    return this.#d.hostGuard.withHost(a.host, signal, () => this.#restartHolding(a, signal));
  }

  #restartHolding(a: Attempt, signal: AbortSignal): Promise<void> {
    const { storage, logger, counters } = this.#d;
    return storage.isRestartDone(a.request.messageId, signal).then((done) => {
      if (done) {
        counters.increment('restart_skipped');
        logger.info({ messageId: a.request.messageId, host: a.host }, `Already restarted ${a.host} for this message; not restarting again`);
        return undefined;
      }
      if (this.#o.dryRun) {
        logger.info({ messageId: a.request.messageId, host: a.host }, `Dry run: would restart ${a.host}`);
        return undefined;
      }
      return this.#restartAndRecord(a, signal);
    });
  }

  #restartAndRecord(a: Attempt, signal: AbortSignal): Promise<void> {
    const { storage, counters, logger } = this.#d;
    const id = a.request.messageId;
    return this.#restartTry(a, signal, 1).then(() => {
      counters.increment('restarted');
      if (logger.isLevelEnabled('info')) logger.info({ messageId: id, host: a.host, attempts: a.restartAttempts }, `Restarted ${a.host}`);
      // Recorded before anything else can ack or nack: a redelivery must find it.
      return this.#retrying(this.#o.saveAttempts, signal, () => storage.markRestarted(id, a.restartAttempts, signal), (err, n) => {
        logger.warn({ messageId: id, attempt: n, err: errorText(err) }, 'Could not record restart; retrying');
        return n < this.#o.saveAttempts;
      });
    });
  }

  /** Restart attempt `n`; a `RestartFailed` is retried after a backoff up to `restartAttempts`. */
  #restartTry(a: Attempt, signal: AbortSignal, n: number): Promise<void> {
    a.restartAttempts = n;
    return this.#d.executor.restart(a.host, signal).catch((err: unknown) => {
      if (isAbort(err, signal)) throw err;
      this.#d.counters.increment('restart_failed');
      if (n >= this.#o.restartAttempts || !(err instanceof RestartFailed)) throw err;
      this.#d.logger.error({ messageId: a.request.messageId, host: a.host, attempt: n }, `Retrying for failure to restart: ${a.host}`);
      this.#d.counters.increment('retries');
      return sleep(backoffDelay(n, this.#o.retryBackoff, this.#o.random), signal).then(() => this.#restartTry(a, signal, n + 1));
    });
  }

  #save(a: Attempt, signal: AbortSignal): Promise<void> {
    const { storage, counters, logger } = this.#d;
    const id = a.request.messageId;
    return this.#retrying(this.#o.saveAttempts, signal, () => storage.saveMessage(a.request, a.delivery.deliveryCount, signal), (err, n) => {
      counters.increment('save_failed');
      const retrying = n < this.#o.saveAttempts;
      if (retrying) logger.warn({ messageId: id, attempt: n, err: errorText(err) }, `Retrying for failure to save ${a.request.instanceName}`);
      return retrying;
    }).then(() => {
      if (logger.isLevelEnabled('info')) logger.info({ messageId: id }, `Saved ${a.request.instanceName} into database`);
    });
  }

  // Not an async function: one less task per message for loopwatch's debug mode to capture.
  #ack(a: Attempt): Promise<Outcome> {
    return a.delivery.ack().then(() => {
      this.#d.counters.increment('acked');
      // The ack is done, so the slot goes to the next message now: recording it is bookkeeping that
      // rides the next group commit (storage.close() flushes it at shutdown). A record that fails to
      // say so is logged; it must not turn into a nack, and the restart-done record already guards
      // against a second restart.
      void this.#d.storage.markAcked({ messageId: a.request.messageId, extensions: a.extensions, attempts: a.restartAttempts })
        .catch((err: unknown) => this.#d.logger.warn({ messageId: a.request.messageId, err: errorText(err) }, 'Acked, but could not record the ack'));
      if (this.#d.logger.isLevelEnabled('info')) this.#d.logger.info({ messageId: a.request.messageId, extensions: a.extensions }, `Done. Acked ${a.request.instanceName}`);
      return 'acked' as const;
    });
  }

  async #nackCancelled(a: Attempt): Promise<Outcome> {
    await a.delivery.nack(0);
    this.#d.counters.increment('nacked');
    this.#d.logger.info({ messageId: a.request.messageId }, `Cancelled; nacked ${a.request.instanceName} back to the broker`);
    return 'cancelled';
  }

  async #fail(a: Attempt, error: unknown): Promise<Outcome> {
    const { storage, counters, logger } = this.#d;
    const id = a.request.messageId;
    const text = errorText(error);
    if (!(error instanceof RestartFailed)) logger.error({ messageId: id, err: text }, `Handling general error: ${text}`);
    if (a.delivery.deliveryCount >= this.#o.maxDeliveries) {
      const reason = `gave up after ${a.delivery.deliveryCount} deliveries: ${text}`;
      await storage.deadLetter({ request: a.request, payload: Buffer.from(a.delivery.data).toString('utf8'), reason, deliveries: a.delivery.deliveryCount });
      await a.delivery.deadLetter(reason);
      counters.increment('dead_lettered');
      logger.error({ messageId: id, deliveries: a.delivery.deliveryCount, reason }, `Dead-lettered ${a.request.instanceName}`);
      return 'dead-lettered';
    }
    const delay = backoffDelay(a.delivery.deliveryCount, this.#o.nackBackoff, this.#o.random);
    // The record is for operators; the nack is what matters, so a failed record does not stop it.
    await storage.markFailed(id, text, a.restartAttempts).catch((err: unknown) => logger.warn({ messageId: id, err: errorText(err) }, 'Could not record failure'));
    await a.delivery.nack(delay);
    counters.increment('nacked');
    logger.warn({ messageId: id, delivery: a.delivery.deliveryCount, redeliverInMs: delay, err: text }, `Nacked ${a.request.instanceName}; redelivery in ${delay} ms`);
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

  /** Run `step` up to `attempts` times; `onError` logs and says whether to try again. */
  // A promise chain, not a loop in an async function: no suspended frame per message on the
  // (usual) first-try success.
  #retrying(attempts: number, signal: AbortSignal, step: (attempt: number) => Promise<void>, onError: (err: unknown, attempt: number) => boolean, n = 1): Promise<void> {
    return step(n).catch((err: unknown) => {
      if (isAbort(err, signal) || !onError(err, n)) throw err;
      this.#d.counters.increment('retries');
      return sleep(backoffDelay(n, this.#o.retryBackoff, this.#o.random), signal).then(() => this.#retrying(attempts, signal, step, onError, n + 1));
    });
  }
}

/** A step's failure, boxed so a rejection with `undefined` still counts as one. */
interface StepFailure {
  readonly error: unknown;
}
const succeeded = (): undefined => undefined;
const failed = (error: unknown): StepFailure => ({ error });

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
