/**
 * One delivery being handled, and exactly where it is: the pipeline's counterpart of asyncio's `Task`.
 * Its states, the legal moves between them and the invariants are in core/job-machine.ts; this is
 * the data the machine moves and the steps read.
 *
 * One object per message in flight (100k in flight = 100k of these); the steps are continuations
 * that take it, so a waiting message holds this and one pending callback, nothing more.
 */
import type { Delivery, Progress, RestartClaim } from './contracts.js';
import type { Failure, JobRules, MachineJob, Outcome, Phase, RestartState, SaveState } from './job-machine.js';
import type { RestartRequest } from './message.js';
import type { AuditEntry, Verdict } from './rails.js';

export type { Failure, Outcome, Phase, RestartState, SaveState } from './job-machine.js';

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

/**
 * Abstract for one reason: `rules` is the pipeline's, the same for every job, so each pipeline makes
 * a subclass whose prototype holds them (no field per message; 100k in flight = 100k of these).
 */
export abstract class Job implements HandleEnd, MachineJob {
  abstract readonly rules: JobRules;
  restart: RestartState = 'waiting-host';
  save: SaveState = 'saving';
  phase: Phase = 'new';
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
    /** Its phase for a debugger (`loopwatch ps`); the shared no-op while none watches. */
    readonly work: Progress,
  ) {}

  get messageId(): string {
    return this.request.messageId;
  }

  get ended(): boolean {
    return this.phase === 'ended';
  }

  fail(failure: Failure, overrides: boolean): void {
    if (overrides || this.failure === undefined) this.failure = failure;
  }
}
