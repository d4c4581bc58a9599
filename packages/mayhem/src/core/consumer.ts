/**
 * Pulls under flow control and hands each delivery to the pipeline without waiting for it, so one
 * slow message never holds up the next. At most `maxInFlight` deliveries are being handled; pulling
 * waits while full, so memory stays bounded however fast messages arrive.
 *
 * The central exception handler lives here (`onHandlerError`, by default {@link nackOnHandlerError}):
 * every delivery's end comes back through one callback (`#ended`); an end without an outcome is an
 * error that escaped the pipeline — a bug (a step that threw, an illegal move of the job machine) or a
 * broker that refused to settle — and goes to the handler, which logs it once ("Handling general
 * error"), nacks, and dead-letters on delivery `maxDeliveries`. Expected faults (a database down, a
 * restart in doubt) never reach it: their dependency's health lines tell them. Errors outside any
 * message (an unhandled rejection) are the service's (service.ts: logged, then shutdown with exit 1).
 */
import { setMaxListeners } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Broker, DeadLetter, Delivery } from './contracts.js';
import type { Counters } from './counters.js';
import type { HandleEnd, MessagePipeline, Outcome } from './pipeline.js';
import type { IntakeHold } from './rails.js';
import { parseRestartRequest } from './message.js';
import { errorText } from './errors.js';
import { DONE } from './settled.js';
import { sleep } from './timing.js';

// While the database is down and nothing is in flight, let one message through this often.
const PROBE_EVERY_MS = 2000;
// While the rails hold intake, look again this often.
const HOLD_CHECK_MS = 500;

export interface ConsumerOptions {
  readonly maxInFlight: number;
  /** Upper bound on one pull (also bounded by free room). */
  readonly pullBatch: number;
  /**
   * Handle each message as its own async call ({@link MessagePipeline.handle}), so loopwatch's task
   * dumps list every message in flight and where it waits. A debugging aid: it costs about 0.5 KB
   * per message in flight, so it is on only while loopwatch tracks tasks.
   */
  readonly messageTasks?: boolean;
}

/**
 * The twin of asyncio's `loop.set_exception_handler`: where errors escaping a message handler go.
 * The delivery stays in flight until the returned promise settles (so shutdown waits for its nack).
 */
export type HandlerErrorHandler = (error: unknown, delivery: Delivery) => Promise<void>;

/** What a consumer pulls from, hands to, tells, and how much it holds at once. */
export interface ConsumerParts extends ConsumerOptions {
  readonly broker: Broker;
  readonly pipeline: MessagePipeline;
  readonly counters: Counters;
  readonly logger: Logger;
  /** The central exception handler (default: {@link nackOnHandlerError}). */
  readonly onHandlerError?: HandlerErrorHandler;
}

export class Consumer {
  readonly #broker: Broker;
  readonly #pipeline: MessagePipeline;
  readonly #options: ConsumerOptions;
  readonly #counters: Counters;
  readonly #logger: Logger;
  readonly #onHandlerError: HandlerErrorHandler;
  #inFlight = 0;
  #hold: IntakeHold | undefined;
  #onRoom: (() => void) | undefined;
  #onDrained: (() => void) | undefined;
  /** Called once per settled delivery (for `--count` and summaries). */
  onSettled: ((outcome: Outcome) => void) | undefined;

  constructor(parts: ConsumerParts) {
    this.#broker = parts.broker;
    this.#pipeline = parts.pipeline;
    this.#options = { maxInFlight: parts.maxInFlight, pullBatch: parts.pullBatch, messageTasks: parts.messageTasks };
    this.#counters = parts.counters;
    this.#logger = parts.logger;
    this.#onHandlerError = parts.onHandlerError ?? nackOnHandlerError(parts.logger, parts.counters);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Why intake is held by the rails now (for the status line), if it is. */
  get hold(): IntakeHold | undefined {
    return this.#hold;
  }

  /**
   * Pull until `stop` aborts. Handlers get `cancel`, which shutdown aborts after the grace period.
   * Resolves once pulling has stopped; in-flight handlers go on (see {@link drained}).
   */
  async run(stop: AbortSignal, cancel: AbortSignal): Promise<void> {
    // Every in-flight message may listen on `cancel` (its sleeps, the executor, storage, the host
    // guard): up to a few per message is the design, not a leak, so Node's warning at 10 is raised.
    setMaxListeners(this.#options.maxInFlight * 4 + 16, cancel);
    const { storageHealth, brokerHealth } = this.#pipeline;
    // Also while the loop waits in a pull (nothing to do): a pause or a closed window is said at once.
    const holdWatch = setInterval(() => this.#checkHold(), HOLD_CHECK_MS);
    holdWatch.unref();
    stop.addEventListener('abort', () => clearInterval(holdWatch), { once: true });
    let failures = 0;
    while (!stop.aborted) {
      let room = this.#options.maxInFlight - this.#inFlight;
      if (room <= 0) {
        await this.#waitForRoom(stop);
        continue;
      }
      // The rails hold intake while restarts are paused or outside their window: pulling now would
      // only defer (nack) what is pulled. Checked twice a second, so a resume is seen within 0.5 s.
      if (this.#checkHold() !== undefined) {
        await sleep(HOLD_CHECK_MS, stop).catch(() => undefined);
        continue;
      }
      // Circuit breaker: while the database is down, pull nothing it could not record. The messages
      // in flight keep trying their records and tell us when it is back; with none in flight, one
      // message at a time goes through as the probe.
      if (storageHealth.down) {
        await storageHealth.whenUp(PROBE_EVERY_MS, stop);
        if (stop.aborted) break;
        if (storageHealth.down) {
          if (this.#inFlight > 0) continue;
          room = 1;
        }
      }
      let batch: Delivery[];
      try {
        batch = await this.#broker.pull(Math.min(room, this.#options.pullBatch), stop);
        failures = 0;
        brokerHealth.ok();
      } catch (err) {
        if (stop.aborted) break;
        failures += 1;
        const delay = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
        // The broker's health says it once (and when it is back); each failed pull is debug detail.
        brokerHealth.failed(err);
        this.#logger.debug({ err: errorText(err), retryInMs: delay }, 'Pull failed; retrying');
        await sleep(delay, stop).catch(() => undefined);
        continue;
      }
      // Leased deliveries are handled even if `stop` fired meanwhile: they must end acked or nacked.
      for (const delivery of batch) this.#start(delivery, cancel);
      // Return to the event loop between batches: a chain of awaits on settled promises never
      // would, and timers (extensions, retries) and I/O must get their turn under a burst.
      await nextTurn();
    }
  }

  /** The rails' hold now; a change is logged once (paused, then resumed). */
  #checkHold(): IntakeHold | undefined {
    const hold = this.#pipeline.holdIntake();
    if (hold !== undefined && hold.kind !== this.#hold?.kind)
      this.#logger.warn({ hold: hold.kind }, `Intake paused: ${hold.text}`);
    if (hold === undefined && this.#hold !== undefined) this.#logger.info({ hold: this.#hold.kind }, 'Intake resumed');
    this.#hold = hold;
    return hold;
  }

  /** Resolves when nothing is in flight. */
  drained(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#onDrained;
      this.#onDrained = () => {
        previous?.();
        resolve();
      };
    });
  }

  #start(delivery: Delivery, cancel: AbortSignal): void {
    this.#inFlight += 1;
    this.#counters.increment('pulled');
    this.#counters.inFlight(this.#inFlight);
    if (this.#options.messageTasks === true) this.#startTask(delivery, cancel);
    else this.#pipeline.start(delivery, cancel, this.#ended);
  }

  #startTask(delivery: Delivery, cancel: AbortSignal): void {
    const startedAt = performance.now();
    void this.#pipeline.handle(delivery, cancel).then(
      (outcome) => this.#ended({ delivery, startedAt, outcome, error: undefined }),
      (error: unknown) => this.#ended({ delivery, startedAt, outcome: undefined, error }),
    );
  }

  // One callback for every delivery: nothing per message is allocated to hear how it ended. No
  // outcome: it escaped the pipeline, and the central handler settles it (see the top of this file).
  readonly #ended = (end: HandleEnd): void => {
    if (end.outcome !== undefined) {
      this.#finish(end.startedAt, end.outcome);
      return;
    }
    void this.#onHandlerError(end.error, end.delivery).then(
      () => this.#finish(end.startedAt, undefined),
      () => this.#finish(end.startedAt, undefined),
    );
  };

  #finish(started: number, outcome: Outcome | undefined): void {
    this.#inFlight -= 1;
    this.#counters.inFlight(this.#inFlight);
    this.#counters.handled(performance.now() - started);
    if (outcome !== undefined) this.onSettled?.(outcome);
    const room = this.#onRoom;
    this.#onRoom = undefined;
    room?.();
    if (this.#inFlight === 0) {
      const drained = this.#onDrained;
      this.#onDrained = undefined;
      drained?.();
    }
  }

  #waitForRoom(stop: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        stop.removeEventListener('abort', done);
        resolve();
      };
      this.#onRoom = done;
      stop.addEventListener('abort', done, { once: true });
    });
  }
}

export interface HandlerErrorOptions {
  /** Redelivery delay of a nacked message by its delivery count (grows, so an error that keeps happening does not spin). */
  readonly nackDelayMs?: (deliveryCount: number) => number;
  /**
   * On this delivery a message whose handling keeps failing is dead-lettered instead of nacked, so
   * a message that crashes its handler parks itself rather than being redelivered forever.
   * Undefined: never.
   */
  readonly maxDeliveries?: number;
  /** Records the dead letter (storage). If it fails, that is logged and the broker dead-letter still goes out. */
  readonly recordDeadLetter?: (entry: DeadLetter) => Promise<void>;
}

/**
 * The default central handler: log the error with the message id, then nack the delivery so the
 * broker redelivers it (after `nackDelayMs(deliveryCount)`); on delivery `maxDeliveries`
 * dead-letter it instead. Nothing is lost even when a handler has a bug, and one message that
 * breaks its handler every time cannot stop the service: this handler never throws and its
 * promise never rejects, whatever the error or the delivery does.
 */
export function nackOnHandlerError(
  logger: Logger,
  counters: Counters,
  options: HandlerErrorOptions | ((deliveryCount: number) => number) = {},
): HandlerErrorHandler {
  const o: HandlerErrorOptions = typeof options === 'function' ? { nackDelayMs: options } : options;
  return (error, delivery) => {
    try {
      return settleAfterError(logger, counters, o, error, delivery).catch(() => undefined);
    } catch {
      return DONE;
    }
  };
}

async function settleAfterError(
  logger: Logger,
  counters: Counters,
  o: HandlerErrorOptions,
  error: unknown,
  delivery: Delivery,
): Promise<void> {
  const text = errorText(error);
  // The message id, when the payload has one: for the log line only, never a reason to fail here.
  const parsed = safely(() => parseRestartRequest(delivery.data), undefined);
  const messageId = parsed?.ok === true ? parsed.request.messageId : undefined;
  const deliveries = safely(() => delivery.deliveryCount, 0);
  safely(
    () => logger.error({ messageId, delivery: deliveries, err: text }, `Handling general error: ${text}`),
    undefined,
  );
  if (o.maxDeliveries !== undefined && deliveries >= o.maxDeliveries) {
    const reason = `gave up after ${deliveries} deliveries: ${text}`;
    const recorded = await attempt(() =>
      o.recordDeadLetter?.({
        request: parsed?.ok === true ? parsed.request : undefined,
        payload: Buffer.from(delivery.data).toString('utf8'),
        reason,
        deliveries,
      }),
    );
    if (recorded !== true)
      safely(
        () =>
          logger.error(
            { messageId, err: errorText(recorded) },
            'Could not record the dead letter; dead-lettering at the broker anyway',
          ),
        undefined,
      );
    const parked = await attempt(() => delivery.deadLetter(reason));
    if (parked === true) {
      counters.increment('dead_lettered');
      safely(
        () =>
          logger.error(
            { messageId, deliveries, reason },
            `Dead-lettered a message whose handling failed ${deliveries} times`,
          ),
        undefined,
      );
      return;
    }
    safely(() => logger.error({ messageId, err: errorText(parked) }, 'Dead-letter failed; nacking instead'), undefined);
  }
  const delay = safely(() => o.nackDelayMs?.(deliveries) ?? 0, 0);
  const nacked = await attempt(() => delivery.nack(delay));
  if (nacked === true) counters.increment('nacked');
  else
    safely(
      () =>
        logger.error(
          { messageId, err: errorText(nacked) },
          'Nack failed too; the lease will expire and the broker will redeliver',
        ),
      undefined,
    );
}

/** Run `fn`; what it throws gives `fallback`. */
function safely<T>(fn: () => T, fallback: T): T {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

/** `true` once `fn`'s promise resolved; otherwise what it threw or rejected with (never throws). */
async function attempt(fn: () => Promise<unknown> | undefined): Promise<unknown> {
  try {
    await fn();
    return true;
  } catch (err) {
    return err === true ? new Error('true') : err;
  }
}
