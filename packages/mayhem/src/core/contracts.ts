/**
 * The small interfaces adapters fill. The core (consumer, pipeline, shutdown) talks only to these;
 * it imports no adapter. Shapes follow what both NATS JetStream and Google Pub/Sub offer, so either
 * fits without a change here.
 */
import type { RestartRequest } from './message.js';
import type { ExperimentStore } from './experiment.js';
import type { AuditEntry, FleetControl } from './rails.js';
import type { RestartOutcome } from './restart-outcome.js';

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
  /**
   * A capability, present only on a broker that lives in this process (the memory broker): the
   * service feeds it with its simulated publisher, and its messages die with the process. The
   * composition root asks for it instead of testing the broker's class.
   */
  localPublisher?(): LocalPublisher;
}

/** Publishing into a broker in this process, and what it holds (see {@link Broker.localPublisher}). */
export interface LocalPublisher {
  /** Messages it holds at most (Infinity: unbounded); publishing waits for room. */
  readonly maxBacklog: number;
  publishSync(payload: string, messageId?: string): void;
  /** Resolves once there is room (undefined: there is room now); rejects when `signal` aborts. */
  waitForRoom(signal?: AbortSignal): Promise<void> | undefined;
  /** What it holds now: ready, waiting out a nack delay, leased. */
  stats(): { readonly ready: number; readonly delayed: number; readonly leased: number };
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

/**
 * What storage knew of a message's restart when a delivery came to restart its host (read under the
 * host guard, so no other delivery for that host changes it meanwhile):
 * - `free`: nothing recorded. With {@link ClaimMode} `claim` the delivery's intent is now recorded.
 * - `done`: the restart is recorded as done; it must not run again.
 * - `done-unaudited`: the same, but its `restarted` audit row is missing (a record written by a
 *   mayhem older than schema v7, whose audit rows were written apart): the delivery writes it, recovered.
 * - `in-doubt`: an earlier delivery recorded its intent and never how the restart ended — its process
 *   probably died mid-restart, so the host may or may not have been restarted.
 * - `in-doubt-audited`: the same, and its one `in-doubt` audit row is written already.
 * - `conflict`: the messageId is recorded for another instance (an id reused for a different host).
 */
export type RestartClaim = 'free' | 'done' | 'done-unaudited' | 'in-doubt' | 'in-doubt-audited' | 'conflict';

/** `in-doubt`, its row audited or not. */
export function isInDoubt(found: RestartClaim | undefined): boolean {
  return found === 'in-doubt' || found === 'in-doubt-audited';
}

/**
 * `look`: only read (a dry run records nothing). `claim`: record this delivery's intent when the
 * restart is `free`. `claim-in-doubt`: also when it is `in-doubt` (at-least-once: restart again).
 */
export type ClaimMode = 'look' | 'claim' | 'claim-in-doubt';

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
  /** The restart was found in doubt and not run again (recorded, so operators can check that host). */
  readonly restartInDoubt?: boolean;
  /** A rail refused the restart for good (denied, too soon, busy with --on-limit skip): why. */
  readonly skipReason?: string;
  /** Audit rows written with this record, in the same transaction (see {@link Storage.markRestarted}). */
  readonly audit?: readonly AuditEntry[] | undefined;
}

export interface DeadLetter {
  /**
   * The request, when the payload parsed and the dead letter is about that message's own record
   * (absent for malformed payloads and for a reused messageId, whose record belongs to another request).
   */
  readonly request?: RestartRequest;
  /** The raw payload as text (lossy for non-UTF-8). */
  readonly payload: string;
  readonly reason: string;
  readonly deliveries: number;
  /** Audit rows written with this dead letter, in the same transaction. */
  readonly audit?: readonly AuditEntry[] | undefined;
}

/**
 * Message records. Every write is an idempotent upsert keyed by messageId, so retries and
 * redeliveries are safe. Adapters may batch writes (group commit) as long as a resolved promise
 * means the write is durable.
 */
export interface Storage {
  /**
   * Read what is recorded of this message's restart and, as `mode` says, durably record that
   * delivery `deliveryCount` is about to restart the host (its intent) — in one operation, before
   * the executor runs, so that a process killed mid-restart leaves a trace a redelivery finds.
   * Returns the state found (see {@link RestartClaim}); writes nothing on `done` or `conflict`.
   */
  claimRestart(
    request: RestartRequest,
    deliveryCount: number,
    mode: ClaimMode,
    signal?: AbortSignal,
  ): Promise<RestartClaim>;
  /**
   * Save the message itself (saved = true, deliveries = deliveryCount). Never overwrites the
   * instance a messageId was first recorded for (a reused id is a conflict, found by the claim).
   */
  saveMessage(request: RestartRequest, deliveryCount: number, signal?: AbortSignal): Promise<void>;
  /**
   * Durably record that the host restart for this message is done. `audit`: rows of the audit trail
   * written in the same transaction (the `restarted` row): never the one without the other, so a
   * crash cannot leave a restart done without its row. A record that carries a `restarted` row marks
   * the restart audited, one with an `in-doubt` row marks its doubt audited (read by the claim:
   * `done-unaudited`, `in-doubt-audited`); the same holds for every write that takes `audit`.
   */
  markRestarted(
    messageId: string,
    attempts: number,
    signal?: AbortSignal,
    audit?: readonly AuditEntry[],
  ): Promise<void>;
  /**
   * Durably record that the restart claimed by delivery `deliveryCount` did not happen (the executor
   * said so), so a redelivery may try again instead of finding it in doubt.
   */
  releaseRestart(messageId: string, deliveryCount: number, attempts: number): Promise<void>;
  /** Record that the message is done and its ack goes out (written just before the broker ack, so a crash leaves "acked" for a message the broker redelivers, never the reverse). */
  markAcked(record: AckRecord): Promise<void>;
  /** The webhook calls recorded for this message so far, by every delivery (`--http-max-calls`). */
  readCalls(messageId: string): Promise<CallCount>;
  /** Durably record the webhook calls of this message (each count only grows: the highest stays). */
  recordCalls(messageId: string, count: CallCount): Promise<void>;
  /** Record a failed delivery (nacked back) with its last error. */
  markFailed(messageId: string, error: string, attempts: number, audit?: readonly AuditEntry[]): Promise<void>;
  /** Store a dead letter (and mark the message record dead-lettered when it parsed). */
  deadLetter(entry: DeadLetter): Promise<void>;
  /** A guard that serialises restarts per host across every instance sharing this storage, if it has one. */
  hostGuard?(): HostGuard;
  /**
   * What earlier runs left unfinished, for storage one process owns (the embedded SQLite file);
   * read in small steps off the hot path. Absent where other instances may be mid-work.
   */
  unfinished?(): Promise<UnfinishedReport>;
  /** The rails' fleet state (kill switch, per-host restart times, slots, audit trail), kept here. */
  control?(): FleetControl;
  /** The experiments' journal (runs, probe checks), kept beside the audit trail. */
  experiments?(): ExperimentStore;
  /** Finish pending writes and close. */
  close(): Promise<void>;
}

/**
 * Webhook calls of one message across its attempts and deliveries: `calls` begun (recorded before
 * each goes out, so a crash cannot lose one), `failed` of those known to have done nothing (never
 * sent, or answered "not restarted"). `calls - failed` may have restarted the host.
 */
export interface CallCount {
  readonly calls: number;
  readonly failed: number;
}

/**
 * What an executor that calls a remote service is given to keep its calls per message bounded
 * across deliveries (see `--http-max-calls`): the message's counts, kept with its record.
 */
export interface CallLedger {
  read(messageId: string): Promise<CallCount>;
  record(messageId: string, count: CallCount): Promise<void>;
}

/** Records left by earlier runs saved or claimed, but neither acked nor dead-lettered. */
export interface UnfinishedReport {
  readonly total: number;
  /** Of those, left by the run just before this one. */
  readonly fromPreviousRun: number;
  /** Restart recorded as done, ack never recorded (the process died before it). */
  readonly restarted: number;
  /** Restart claimed and its end never recorded: the process died mid-restart. */
  readonly inDoubt: number;
  /** Neither: not restarted (saved only, or the restart did not happen). */
  readonly notRestarted: number;
  /** When the oldest of them was first recorded (ms since epoch). */
  readonly oldestAt: number | undefined;
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

/**
 * Restarts hosts. `restart()` resolves with what happened, a {@link RestartOutcome} (one row of the
 * README's table "What an executor tells the pipeline", each with its reason):
 * - `restarted`;
 * - `not-restarted`: certainly not, try again (retried with backoff; with `resource` when the machine
 *   was short of descriptors, memory or processes: waited out, not counted as an attempt);
 * - `rejected`: refused for good (dead-lettered at once);
 * - `cancelled`: `signal` aborted before anything took effect (nacked, not in doubt);
 * - `unknown`: it may have happened (a timeout, a lost connection): left in doubt, never run again.
 * Must honour `signal`: on abort, stop and resolve `cancelled`, or `unknown` with `cancelled: true`
 * once the restart may have taken effect. It rejects (or throws) only on a bug: the pipeline then
 * ends the message for the central exception handler, and the restart's claim, left without an
 * end, makes a redelivery find it in doubt (never run blindly again).
 */
export interface RestartExecutor {
  restart(hostname: string, signal: AbortSignal, context?: RestartContext): Promise<RestartOutcome>;
}

/**
 * What the pipeline tells an executor about the restart it asks for. `messageId` is the same for every
 * attempt and every redelivery of one message: executors that talk to a remote service send it as an
 * idempotency key, so a retry after a timeout cannot restart the host a second time.
 */
export interface RestartContext {
  readonly messageId: string;
  readonly instanceName: string;
  /** 1-based attempt within this delivery. */
  readonly attempt: number;
  /** The delivery's count (1 on first delivery). */
  readonly deliveryCount: number;
  /** The message's webhook calls, kept with its record (absent: the executor keeps no count). */
  readonly calls?: CallLedger;
}

/**
 * Where one message is, for a debugger: loopwatch's `trackWork` unit (`loopwatch ps`, `top`, `where`),
 * handed in by the composition root, so the core imports no debugger. While none watches, the one
 * shared no-op unit: `live` is false and nothing else is done (build no phase text then).
 */
export interface Progress {
  readonly live: boolean;
  /** Its phase now (`restarting web-3 (attempt 2)`), and the promise it waits on, if any. */
  phase(text: string, waitingOn?: PromiseLike<unknown>): void;
  end(): void;
  fail(error: unknown): void;
}

/** Starts a {@link Progress} for one unit of work of `kind` (`message`) named by `key` (its id). */
export type TrackProgress = (kind: string, key: string) => Progress;

export type CounterName =
  | 'pulled'
  | 'acked'
  | 'nacked'
  | 'restarted'
  | 'restart_skipped'
  | 'restart_in_doubt'
  | 'restart_failed'
  | 'save_failed'
  | 'retries'
  | 'extended'
  | 'dead_lettered'
  | 'malformed'
  | 'conflict'
  | 'unsettled'
  | 'rail_skipped'
  | 'deferred'
  | 'leashed';

export type TimingName = 'handle_duration' | 'restart_duration';

/** Where figures go (StatsD, Prometheus, nothing). Calls are fire-and-forget and must not throw. */
export interface Metrics {
  /** `label`: for `deferred`, the reason (paused, outside-window, too-soon, busy). */
  increment(name: CounterName, value?: number, label?: string): void;
  gauge(name: 'in_flight', value: number): void;
  /**
   * A duration: `handle_duration` per message, `restart_duration` per executor call with its outcome
   * (`restarted`, `failed` for `not-restarted`, `rejected`, `cancelled` or `unknown`; see {@link RestartExecutor}).
   */
  timing(name: TimingName, ms: number, outcome?: string): void;
  /** Flush what is buffered and release the client. */
  close(): Promise<void>;
}
