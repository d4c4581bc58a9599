/**
 * One delivery being handled, and exactly where it is: the pipeline's counterpart of asyncio's `Task`.
 *
 * A job has two branches that run at once and one tail:
 *
 *   restart:  waiting-host → checking → claiming → running ─┬─ restarted ─(the ack record carries it)─► done
 *                  │            │           │         │      └─ recording ─────────────────────────────► done
 *                  │            │           │         └──────── releasing ─────────────────────────────► failed
 *                  │            │           └─ (done / in doubt / leashed / conflict) ──────────────────► skipped
 *                  │            └─ (a rail: skip, or defer) ────────────────────────────────────────────► skipped
 *                  └─────────────────────────────────────────────────────────────────────────────────────► failed
 *   save:     saving ─► saved | failed
 *   phase:    working ─► settling (both branches final) ─► ended
 *
 * Invariants:
 * - Branch states only move forward, along the arrows above.
 * - The job holds its host on the guard exactly while the restart is in `checking`, `claiming`,
 *   `running`, `restarted`, `recording` or `releasing`: from the grant until what happened to the host
 *   is durable. It holds a restart slot (`slot`) from the rails' go until the executor has ended.
 * - A restart that ran is recorded (`recording`, or the ack record when it is `restarted`) before the
 *   delivery is acked, nacked or dead-lettered; a claim that did not restart is released first.
 * - The delivery is settled once, by the tail, after both branches are final; its lease is extended
 *   until then. After `ended` nothing new starts except writing the record of what already happened.
 *
 * One object per message in flight (100k in flight = 100k of these); the steps are continuations
 * that take it, so a waiting message holds this and one pending callback, nothing more.
 */
import type { Delivery, RestartClaim } from './contracts.js';
import type { RestartRequest } from './message.js';
import type { AuditEntry, Verdict } from './rails.js';

export type RestartState =
  | 'waiting-host'
  | 'checking'
  | 'claiming'
  | 'running'
  | 'restarted'
  | 'recording'
  | 'releasing'
  | 'done'
  | 'skipped'
  | 'failed';
export type SaveState = 'saving' | 'saved' | 'failed';
export type Phase = 'working' | 'settling' | 'ended';

export type Outcome = 'acked' | 'nacked' | 'deferred' | 'dead-lettered' | 'cancelled' | 'unsettled';

/** How the handling of one delivery ended, handed to whoever started it. */
export interface HandleEnd {
  readonly delivery: Delivery;
  /** `performance.now()` when handling started. */
  readonly startedAt: number;
  /**
   * How it ended; `undefined` when an error escaped the pipeline (then see `error`). `unsettled`: a
   * restart that ran could not be recorded before shutdown, so the delivery was neither acked nor
   * nacked; its lease expires and the redelivery finds the restart in doubt.
   */
  readonly outcome: Outcome | undefined;
  /** What escaped: a bug, or a broker that refused the ack. The central exception handler's to log and nack. */
  readonly error: unknown;
}

/** Why a job cannot be acked. Boxed, so a rejection with `undefined` still counts as one. */
export interface Failure {
  readonly error: unknown;
  /**
   * `conflict`: the messageId belongs to another request; `rejected`: the executor refused the restart
   * for good. Both are dead-lettered at once, whatever the delivery.
   * `unrecorded`: the restart ran but its record could not be written before shutdown.
   * `deferred`: a rail said "not now" (paused, outside the window, too soon, busy): nacked with its delay.
   */
  readonly kind: 'failed' | 'cancelled' | 'conflict' | 'rejected' | 'unrecorded' | 'deferred';
  /** `deferred` only: the rail's verdict. */
  readonly verdict?: Verdict;
  /**
   * An expected fault (the database failing or locked or full, a restart that timed out), already
   * told by its dependency's own lines: not the central handler's "Handling general error", which is
   * for bugs.
   */
  readonly expected?: boolean;
}

export class Job implements HandleEnd {
  restart: RestartState = 'waiting-host';
  save: SaveState = 'saving';
  phase: Phase = 'working';
  /** What the claim found; `in-doubt` with the restart skipped is recorded on the ack. */
  claim: RestartClaim | undefined = undefined;
  /** Restart attempts made during this delivery (0 when it was skipped). */
  restartAttempts = 0;
  /** Of the executor's tries, those that could not start for want of a resource (not attempts). */
  notStarted = 0;
  extensions = 0;
  /** A restart slot (--max-concurrent-restarts) is held from the rails' go to the executor's end. */
  slot = false;
  /** A rail's skip (denied, too soon, busy): acked, and the reason recorded. */
  skip: Verdict | undefined = undefined;
  /**
   * Audit rows that ride on the job's next record write, in its transaction: the restart's
   * `restarted` row (never durable without the record that the restart is done, nor the reverse),
   * its `in-doubt` row, a recovered one. Cleared once written.
   */
  audit: AuditEntry[] | undefined = undefined;
  /** Record attempts made after shutdown cancelled the job (they are bounded then). */
  attemptsAfterCancel = 0;
  /** The first reason not to ack; a restart's failure replaces a save's (it says more). */
  failure: Failure | undefined = undefined;
  outcome: Outcome | undefined = undefined;
  error: unknown = undefined;

  // eslint-disable-next-line max-params -- made once per message: an options object would be a second allocation.
  constructor(
    readonly delivery: Delivery,
    readonly request: RestartRequest,
    readonly host: string,
    readonly signal: AbortSignal,
    readonly startedAt: number,
    readonly onEnd: (end: HandleEnd) => void,
  ) {}

  get messageId(): string {
    return this.request.messageId;
  }

  get holdsHost(): boolean {
    const r = this.restart;
    return (
      r === 'checking' ||
      r === 'claiming' ||
      r === 'running' ||
      r === 'restarted' ||
      r === 'recording' ||
      r === 'releasing'
    );
  }

  /** Both branches are final: the tail may settle. (`restarted` is final: its record rides on the ack.) */
  get branchesFinal(): boolean {
    const r = this.restart;
    return this.save !== 'saving' && (r === 'done' || r === 'skipped' || r === 'failed' || r === 'restarted');
  }

  get ended(): boolean {
    return this.phase === 'ended';
  }

  fail(failure: Failure, overrides: boolean): void {
    if (overrides || this.failure === undefined) this.failure = failure;
  }
}
