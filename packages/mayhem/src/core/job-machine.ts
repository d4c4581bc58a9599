/**
 * A message's life as one explicit machine, in the spirit of asyncio's `Task.__step`: every step's
 * result comes back as an event, and `advance(job, event)` is the only code that moves a job's
 * states. It returns what to do next (the effects); the pipeline performs them, and each finished
 * effect comes back as the next event. Facts that ride on an event (the rail's verdict, what the
 * claim found, why it failed) are written on the job by whoever reports it, before it advances.
 *
 *   restart:  waiting-host ─ host-granted ─► checking ─ rails-go ─► claiming ─ claim-free ─► running
 *             running ─ restarted ─► restarted (the ack record carries it) ─ ack record ─► done
 *                     └───────────► recording ─ restart-recorded ─► done
 *             running ─ not-restarted ─► releasing ─ claim-released ─► failed
 *             running ─ restart-unknown ─► failed (in doubt: its claim is the record)
 *             checking ─ a rail's skip or defer ─► skipped;  claiming ─ done, in doubt, leashed ─► skipped
 *             claiming ─ conflict ─► failed;  claiming ─ claim-failed ─► releasing
 *   save:     saving ─ saved ─► saved | ─ save-failed ─► failed
 *   phase:    new ─ pulled ─► working ─ both branches final ─► one of
 *               recording-ack ─► acking | recording-failure ─► nacking | recording-dead-letter ─►
 *               dead-lettering | deferring | cancelling (shutdown) | ended (unsettled)
 *             ─ broker-done ─► ended.  Any state ─ escaped (a bug, a broker refusing) ─► ended.
 *
 * Invariants (test/unit/job-machine.test.ts walks them):
 * - Ack only after both records are durable: `Ack` follows the ack record, which starts only once the
 *   save is `saved` and the restart is `done`, `skipped`, or `restarted` (then that record carries it).
 * - One restart per message: `Restart` is issued once, from `claiming` after a claim that found it
 *   free (or in doubt under `--in-doubt restart`); retries within it are the step's (steps.ts), only
 *   after the executor said it certainly did not restart.
 * - The host is held from the grant until its fate is durable (recorded, released, its claim left in
 *   doubt) or given up at shutdown: `FreeHost` is issued exactly once per grant.
 * - An event a state does not expect is a bug: `advance` throws {@link IllegalTransition}, which the
 *   step runner hands to the central exception handler (`Handling general error`).
 */
import type { Delivery } from './contracts.js';
import type { Verdict } from './rails.js';

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
export type Phase =
  | 'new'
  | 'working'
  | 'recording-ack'
  | 'recording-failure'
  | 'recording-dead-letter'
  | 'acking'
  | 'nacking'
  | 'dead-lettering'
  | 'deferring'
  | 'cancelling'
  | 'ended';

export type Outcome = 'acked' | 'nacked' | 'deferred' | 'dead-lettered' | 'cancelled' | 'unsettled';

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

/** What the machine reads of a job (core/job.ts's `Job`; tests may pass a plain object). */
export interface MachineJob {
  restart: RestartState;
  save: SaveState;
  phase: Phase;
  /** A restart slot (--max-concurrent-restarts) is held: from the rails' go to the executor's end. */
  slot: boolean;
  failure: Failure | undefined;
  outcome: Outcome | undefined;
  readonly signal: AbortSignal;
  readonly delivery: Pick<Delivery, 'deliveryCount'>;
  readonly rules: JobRules;
}

/** The pipeline's settings the machine decides by (one object for every job). */
export interface JobRules {
  /** Rails are configured: the host's grant goes to them before the claim. */
  readonly rails: boolean;
  /** On this delivery a failing message is dead-lettered instead of nacked. */
  readonly maxDeliveries: number;
}

export type JobEvent =
  // the start
  | 'pulled'
  // restart branch
  | 'host-granted'
  | 'host-failed'
  | 'rails-go'
  | 'rails-go-slot'
  | 'rail-skipped'
  | 'rail-deferred'
  | 'rails-failed'
  | 'claim-free'
  | 'claim-in-doubt-rerun'
  | 'claim-leashed'
  | 'claim-done'
  | 'claim-in-doubt'
  | 'claim-conflict'
  | 'claim-failed'
  | 'restarted'
  | 'not-restarted'
  | 'restart-unknown'
  | 'restart-recorded'
  | 'restart-unrecorded'
  | 'claim-released'
  | 'release-given-up'
  // save branch
  | 'saved'
  | 'save-failed'
  // the tail
  | 'record-written'
  | 'record-given-up'
  | 'broker-done'
  | 'broker-failed'
  // a bug, or a broker that refused to settle: the central exception handler's
  | 'escaped';

/**
 * What to do, as bits (no allocation per event): performed in this order, so what the job gives back
 * goes back before anything new starts.
 */
export const Effect = {
  /** Give back the restart slot (the rails' concurrency). */
  FreeSlot: 1 << 0,
  /** Give back the host on the guard. */
  FreeHost: 1 << 1,
  AcquireHost: 1 << 2,
  Save: 1 << 3,
  CheckRails: 1 << 4,
  Claim: 1 << 5,
  /** Run the executor (retried inside the step while it says "not restarted"). */
  Restart: 1 << 6,
  RecordRestart: 1 << 7,
  ReleaseClaim: 1 << 8,
  RecordAck: 1 << 9,
  RecordFailure: 1 << 10,
  RecordDeadLetter: 1 << 11,
  Ack: 1 << 12,
  /** Nack with the growing redelivery backoff. */
  Nack: 1 << 13,
  /** Nack with the rail's delay. */
  NackDeferred: 1 << 14,
  /** Nack at once: shutdown cancelled it. */
  NackCancelled: 1 << 15,
  DeadLetter: 1 << 16,
  /** Leave the delivery to its lease: a restart that ran could not be recorded before shutdown. */
  Leave: 1 << 17,
  /** The job is over: `outcome` (undefined: an error escaped) goes to whoever started it. */
  End: 1 << 18,
} as const;
export type Effects = number;

const EFFECT_NAMES = Object.keys(Effect) as (keyof typeof Effect)[];

/** The effects' names, in the order they are performed (tests, error messages). */
export function effectNames(effects: Effects): string[] {
  return EFFECT_NAMES.filter((name) => (effects & Effect[name]) !== 0);
}

/** An event the job's state does not expect: a bug in the pipeline, never a message's failure. */
export class IllegalTransition extends Error {
  override readonly name = 'IllegalTransition';
  constructor(job: MachineJob, event: JobEvent) {
    super(`illegal transition: ${event} with restart ${job.restart}, save ${job.save}, phase ${job.phase}`);
  }
}

/** The host is held on the guard in these restart states (from the grant until its fate is durable). */
export function holdsHost(job: MachineJob): boolean {
  const r = job.restart;
  return (
    r === 'checking' ||
    r === 'claiming' ||
    r === 'running' ||
    r === 'restarted' ||
    r === 'recording' ||
    r === 'releasing'
  );
}

/** The restart branch is final (`restarted` too: its record rides on the ack). */
export function restartFinal(job: MachineJob): boolean {
  const r = job.restart;
  return r === 'done' || r === 'skipped' || r === 'failed' || r === 'restarted';
}

/** Both branches are final: the tail may settle. (`restarted` is final: its record rides on the ack.) */
export function branchesFinal(job: MachineJob): boolean {
  return job.save !== 'saving' && restartFinal(job);
}

/** Move `job` on `event`; what to do next. Throws {@link IllegalTransition} for an event its state does not expect. */
export function advance(job: MachineJob, event: JobEvent): Effects {
  if (job.phase === 'ended') {
    // An escape after the end (a bug reported twice) changes nothing; anything else is a bug.
    if (event === 'escaped') return 0;
    throw new IllegalTransition(job, event);
  }
  switch (event) {
    case 'pulled':
      if (job.phase !== 'new') break;
      job.phase = 'working';
      return Effect.AcquireHost | Effect.Save;
    case 'saved':
    case 'save-failed':
      if (job.save !== 'saving' || job.phase !== 'working') break;
      job.save = event === 'saved' ? 'saved' : 'failed';
      return tailIfFinal(job, 0);
    case 'record-written':
    case 'record-given-up':
      return recorded(job, event);
    case 'broker-done':
      return told(job);
    case 'broker-failed':
      if (!telling(job)) break;
      return end(job, undefined);
    case 'escaped':
      return end(job, undefined);
    default: {
      if (job.phase !== 'working') break;
      const effects = restartStep(job, event);
      if (effects < 0) break;
      return tailIfFinal(job, effects);
    }
  }
  throw new IllegalTransition(job, event);
}

/** The restart branch's transitions; -1 when `event` is not one its state expects. */
function restartStep(job: MachineJob, event: JobEvent): Effects {
  switch (job.restart) {
    case 'waiting-host':
      if (event === 'host-granted') {
        job.restart = job.rules.rails ? 'checking' : 'claiming';
        return job.rules.rails ? Effect.CheckRails : Effect.Claim;
      }
      if (event === 'host-failed') return moveTo(job, 'failed', 0);
      return -1;
    case 'checking':
      switch (event) {
        case 'rails-go':
        case 'rails-go-slot':
          job.slot = event === 'rails-go-slot';
          job.restart = 'claiming';
          return Effect.Claim;
        case 'rail-skipped':
        case 'rail-deferred':
          return moveTo(job, 'skipped', Effect.FreeHost);
        case 'rails-failed':
          return moveTo(job, 'failed', Effect.FreeHost);
        default:
          return -1;
      }
    case 'claiming':
      switch (event) {
        case 'claim-free':
        case 'claim-in-doubt-rerun':
          job.restart = 'running';
          return Effect.Restart;
        case 'claim-leashed':
        case 'claim-done':
        case 'claim-in-doubt':
          return moveTo(job, 'skipped', Effect.FreeHost);
        case 'claim-conflict':
          return moveTo(job, 'failed', Effect.FreeHost);
        case 'claim-failed':
          // Whether or not the failed claim was written, its release leaves no intent behind.
          return moveTo(job, 'releasing', Effect.ReleaseClaim);
        default:
          return -1;
      }
    case 'running':
      switch (event) {
        case 'restarted':
          // With the save done and nothing failed, the ack comes next: its record carries the restart
          // (one row write, not two); the host stays held until it is written.
          if (job.save === 'saved' && job.failure === undefined) return moveTo(job, 'restarted', 0);
          return moveTo(job, 'recording', Effect.RecordRestart);
        case 'not-restarted':
          return moveTo(job, 'releasing', Effect.ReleaseClaim);
        case 'restart-unknown':
          // In doubt: the claim recorded before the executor ran is its record; a redelivery will not run it.
          return moveTo(job, 'failed', Effect.FreeHost);
        default:
          return -1;
      }
    case 'recording':
      if (event === 'restart-recorded') return moveTo(job, 'done', Effect.FreeHost);
      if (event === 'restart-unrecorded') return moveTo(job, 'failed', Effect.FreeHost);
      return -1;
    case 'releasing':
      // Given up at shutdown, the claim stays: a redelivery finds the restart in doubt (never twice).
      if (event === 'claim-released' || event === 'release-given-up') return moveTo(job, 'failed', Effect.FreeHost);
      return -1;
    default:
      return -1;
  }
}

/** Into `state`, giving back the restart slot if held (the executor is not running any more). */
function moveTo(job: MachineJob, state: RestartState, effects: Effects): Effects {
  job.restart = state;
  if (!job.slot) return effects;
  job.slot = false;
  return effects | Effect.FreeSlot;
}

/** Once both branches are final, the tail: which record to write, or which broker call to make. */
function tailIfFinal(job: MachineJob, effects: Effects): Effects {
  if (!branchesFinal(job)) return effects;
  const failure = job.failure;
  if (failure === undefined) {
    job.phase = 'recording-ack';
    return effects | Effect.RecordAck;
  }
  if (failure.kind === 'unrecorded') return effects | leave(job);
  if (job.signal.aborted) {
    job.phase = 'cancelling';
    return effects | Effect.NackCancelled;
  }
  // A rail said "not now": nothing failed, nothing to record but the audit entry already made.
  if (failure.kind === 'deferred') {
    job.phase = 'deferring';
    return effects | Effect.NackDeferred;
  }
  if (
    failure.kind === 'conflict' ||
    failure.kind === 'rejected' ||
    job.delivery.deliveryCount >= job.rules.maxDeliveries
  ) {
    job.phase = 'recording-dead-letter';
    return effects | Effect.RecordDeadLetter;
  }
  job.phase = 'recording-failure';
  return effects | Effect.RecordFailure;
}

function recorded(job: MachineJob, event: 'record-written' | 'record-given-up'): Effects {
  const written = event === 'record-written';
  switch (job.phase) {
    case 'recording-ack': {
      if (job.restart === 'restarted') {
        // The ack record carried the restart: now it is durable and the host may go; given up, the
        // restart ran unrecorded, so the delivery is left to its lease (a redelivery finds it in doubt).
        if (!written) return leave(job);
        job.restart = 'done';
        job.phase = 'acking';
        return Effect.FreeHost | Effect.Ack;
      }
      if (!written) break;
      job.phase = 'acking';
      return Effect.Ack;
    }
    case 'recording-failure':
      if (!written) break;
      job.phase = 'nacking';
      return Effect.Nack;
    case 'recording-dead-letter':
      if (!written) break;
      job.phase = 'dead-lettering';
      return Effect.DeadLetter;
    default:
      throw new IllegalTransition(job, event);
  }
  // A record given up (only after shutdown cancelled the job): back to the broker at once.
  job.phase = 'cancelling';
  return Effect.NackCancelled;
}

function telling(job: MachineJob): boolean {
  const p = job.phase;
  return p === 'acking' || p === 'nacking' || p === 'dead-lettering' || p === 'deferring' || p === 'cancelling';
}

function told(job: MachineJob): Effects {
  switch (job.phase) {
    case 'acking':
      return end(job, 'acked');
    case 'nacking':
      return end(job, 'nacked');
    case 'dead-lettering':
      return end(job, 'dead-lettered');
    case 'deferring':
      return end(job, 'deferred');
    case 'cancelling':
      return end(job, 'cancelled');
    default:
      throw new IllegalTransition(job, 'broker-done');
  }
}

function leave(job: MachineJob): Effects {
  return Effect.Leave | end(job, 'unsettled');
}

/** The end: what is still held goes back. */
function end(job: MachineJob, outcome: Outcome | undefined): Effects {
  let effects: Effects = Effect.End;
  if (holdsHost(job)) effects |= Effect.FreeHost;
  if (job.slot) {
    job.slot = false;
    effects |= Effect.FreeSlot;
  }
  job.phase = 'ended';
  job.outcome = outcome;
  return effects;
}
