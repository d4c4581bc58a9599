/**
 * The small interfaces adapters fill. The core (consumer, pipeline, shutdown) talks only to these;
 * it imports no adapter. Shapes follow what both NATS JetStream and Google Pub/Sub offer, so either
 * fits without a change here.
 */
import type { RestartRequest } from './message.js';

/** One delivery of a message, leased to this consumer until acked, nacked, dead-lettered or expired. */
export interface Delivery {
  /** The raw payload, parsed by the pipeline (a malformed one is dead-lettered, never dropped). */
  readonly data: Uint8Array;
  /** 1 on first delivery, +1 for every redelivery (lease expiry or nack). */
  readonly deliveryCount: number;
  /** Reset the lease to the broker's full ack deadline (Pub/Sub modifyAckDeadline, JetStream `working()`). */
  extend(): Promise<void>;
  /** Settle: the broker will not deliver this message again. Resolves once the broker has taken it. */
  ack(): Promise<void>;
  /** Give the message back for redelivery after `delayMs`. */
  nack(delayMs: number): Promise<void>;
  /** Park the message on the dead-letter destination with a reason; it is not redelivered. */
  deadLetter(reason: string): Promise<void>;
}

/** A pull consumer with leases. Flow control is the caller's: it never asks for more than it can hold. */
export interface Broker {
  /** How long a lease lasts without an extension, in ms. The pipeline extends well inside it. */
  readonly ackDeadlineMs: number;
  /**
   * Wait for up to `max` deliveries. Resolves with at least one, or with `[]` once `signal` aborts.
   * Rejects only on a broker failure worth logging (the consumer backs off and pulls again).
   */
  pull(max: number, signal: AbortSignal): Promise<Delivery[]>;
  /** Stop pulling and release connections. Unsettled leases expire and are redelivered by the broker. */
  close(): Promise<void>;
}

/** Sends restart requests (the article's `publish`). */
export interface Publisher {
  /**
   * Publish one payload. `messageId`, when given, lets brokers that can de-duplicate (JetStream) drop
   * a repeated publish. Raw strings are allowed so malformed payloads can be sent on purpose.
   */
  publish(payload: string, messageId?: string): Promise<void>;
  close(): Promise<void>;
}

/** The outcome of a message as recorded for operators. */
export interface AckRecord {
  readonly messageId: string;
  /** How many times the ack deadline was extended during the delivery that succeeded. */
  readonly extensions: number;
  /** Restart attempts made during that delivery (0 when the restart was already recorded as done). */
  readonly attempts: number;
  /**
   * This delivery restarted the host and the restart is recorded here, with the ack, rather than by
   * an earlier `markRestarted` (the pipeline folds the two when the save was already done: one row
   * write instead of two). The write must then be as durable as `markRestarted`'s.
   */
  readonly restartDone?: boolean;
}

export interface DeadLetter {
  /** The request, when the payload parsed. */
  readonly request?: RestartRequest;
  /** The raw payload as text (lossy for non-UTF-8). */
  readonly payload: string;
  readonly reason: string;
  readonly deliveries: number;
}

/**
 * Message records. Every write is an idempotent upsert keyed by messageId, so retries and
 * redeliveries are safe. Adapters may batch writes (group commit) as long as a resolved promise
 * means the write is durable.
 */
export interface Storage {
  /** Whether the restart of this message was already recorded as done (then it must not run again). */
  isRestartDone(messageId: string, signal?: AbortSignal): Promise<boolean>;
  /** Save the message itself (saved = true, deliveries = deliveryCount). */
  saveMessage(request: RestartRequest, deliveryCount: number, signal?: AbortSignal): Promise<void>;
  /** Durably record that the host restart for this message is done. */
  markRestarted(messageId: string, attempts: number, signal?: AbortSignal): Promise<void>;
  /** Record that the message is done and its ack goes out (written just before the broker ack, so a crash leaves "acked" for a message the broker redelivers, never the reverse). */
  markAcked(record: AckRecord): Promise<void>;
  /** Record a failed delivery (nacked back) with its last error. */
  markFailed(messageId: string, error: string, attempts: number): Promise<void>;
  /** Store a dead letter (and mark the message record dead-lettered when it parsed). */
  deadLetter(entry: DeadLetter): Promise<void>;
  /** A guard that serialises restarts per host across every instance sharing this storage, if it has one. */
  hostGuard?(): HostGuard;
  /** Finish pending writes and close. */
  close(): Promise<void>;
}

/**
 * Serialises restarts of one host: two messages for the same host never restart it at once.
 * Acquire and release rather than a scoped `withHost(fn)`: the pipeline holds a host across several
 * steps of one message without a closure chain per message (see `withHost` in core/host-guard.ts
 * for the scoped form).
 */
export interface HostGuard {
  /**
   * Resolves once this process holds the exclusive right to restart `hostname` (waiters are served
   * in arrival order). Rejects with the signal's reason if `signal` aborts while waiting, or when
   * the guard cannot be taken (e.g. its database is unreachable); then nothing is held.
   */
  acquire(hostname: string, signal: AbortSignal): Promise<void>;
  /** Give back a host taken by a resolved {@link acquire}; exactly once per acquire. */
  release(hostname: string): void;
}

/** Raised by executors when a restart did not happen; the pipeline retries it. */
export class RestartFailed extends Error {
  override readonly name = 'RestartFailed';
}

/** Restarts hosts. Must honour `signal`: on abort, stop and reject with the signal's reason. */
export interface RestartExecutor {
  restart(hostname: string, signal: AbortSignal): Promise<void>;
}

export type CounterName =
  | 'pulled'
  | 'acked'
  | 'nacked'
  | 'restarted'
  | 'restart_skipped'
  | 'restart_failed'
  | 'save_failed'
  | 'retries'
  | 'extended'
  | 'dead_lettered'
  | 'malformed';

/** Where figures go (StatsD, Prometheus, nothing). Calls are fire-and-forget and must not throw. */
export interface Metrics {
  increment(name: CounterName, value?: number): void;
  gauge(name: 'in_flight', value: number): void;
  timing(name: 'handle_duration', ms: number): void;
  /** Flush what is buffered and release the client. */
  close(): Promise<void>;
}
