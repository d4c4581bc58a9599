/**
 * The restart branch of a job: hold the host → the rails decide (skip, defer, or go) → claim the
 * restart in storage (skip if done, in doubt, leashed; a reused id is a conflict) → run the
 * executor (retried) → record the restart, or release the claim when it certainly did not happen.
 * Each decision goes to the audit trail. The steps here perform the machine's effects and report
 * what happened as events; which state follows is core/job-machine.ts's to decide.
 */
import type { Logger } from 'pino';
import type { CallLedger, ClaimMode, HostGuard, RestartExecutor, Storage } from './contracts.js';
import type { Counters } from './counters.js';
import type { DependencyHealth } from './dependency-health.js';
import { errorText } from './errors.js';
import { FaultEpisode } from './fault-episode.js';
import { describeResourceFault } from './resource-fault.js';
import type { Job } from './job.js';
import { RestartAudit } from './restart-audit.js';
import { claimAndStamp, claimed, type Claimed, type ClaimedDeps } from './restart-claim.js';
import { cancelled, type RestartOutcome } from './restart-outcome.js';
import { Effect, type Effects, type JobEvent } from './job-machine.js';
import type { FleetControl, Rails, Verdict } from './rails.js';
import type { RetriedStep, StepRunner } from './steps.js';
import { isAbort } from './timing.js';

export interface RestartBranchOptions {
  readonly restartAttempts: number;
  /** Tries of the claim and of the host lock (as of a save). */
  readonly saveAttempts: number;
  /** How to claim while the rails do not leash (`look` for good: a dry run). */
  readonly claimMode: ClaimMode;
  /** Who decides, for the audit trail. */
  readonly instance: string;
  readonly executorName: string;
  /** The experiment every audit row belongs to (`--experiment`), for the rows written with records. */
  readonly experiment?: string | undefined;
}

export interface RestartBranchDeps {
  readonly storage: Storage;
  readonly executor: RestartExecutor;
  readonly hostGuard: HostGuard;
  readonly counters: Counters;
  readonly logger: Logger;
  readonly storageHealth: DependencyHealth;
  readonly runner: StepRunner;
  readonly rails: Rails | undefined;
  readonly control: FleetControl | undefined;
  /** A storage call's retry: logs and says whether to try again (the pipeline's one rule for it). */
  readonly storageRetry: (job: Job, err: unknown, attempt: number, attempts: number, what: string) => boolean;
  /** Report what happened: the machine moves the job on (core/job-machine.ts). */
  readonly drive: (job: Job, event: JobEvent) => void;
  /** A bug (an executor that rejected): end the job for the central exception handler. */
  readonly escape: (job: Job, error: unknown) => void;
}

export class RestartBranch {
  readonly #d: RestartBranchDeps;
  readonly #acquiringHost: RetriedStep;
  readonly #checkingRails: RetriedStep;
  readonly #claiming: RetriedStep;
  readonly #restarting: RetriedStep;
  readonly #recordingRestart: RetriedStep;
  readonly #releasing: RetriedStep;
  // Webhook calls per message, kept with its record (--http-max-calls): one object for every job.
  readonly #calls: CallLedger;
  // Restarts that could not start for want of a resource: told once per episode, not per message.
  readonly #notStarted: FaultEpisode;
  // Each decision's row (core/restart-audit.ts).
  readonly #audit: RestartAudit;
  readonly #restartAttempts: number;

  constructor(options: RestartBranchOptions, deps: RestartBranchDeps) {
    this.#d = deps;
    this.#restartAttempts = options.restartAttempts;
    const { storage, logger, counters, storageHealth: dependency } = deps;
    this.#audit = new RestartAudit(deps.control, deps.control !== undefined && storage.control !== undefined, options);
    this.#notStarted = new FaultEpisode(`Restart executor (${options.executorName})`, logger, {
      meanwhile: 'the restarts that could not start are retried with backoff (nothing ran: not in doubt)',
    });
    this.#calls = {
      read: (messageId) => storage.readCalls(messageId),
      record: (messageId, count) => storage.recordCalls(messageId, count),
    };
    // The steps are built once and shared by every job; each is a continuation that takes the job.
    const claimedDeps: ClaimedDeps = { logger, counters, audit: this.#audit, drive: deps.drive };

    // Waiting for the host is not a database call (another message may hold it for long), but the
    // guard failing is (the PostgreSQL guard's lock connection): retried like a save, and while the
    // database is down it waits for it.
    this.#acquiringHost = {
      kind: 'stoppable',
      run: (job) => {
        const waiting = deps.hostGuard.acquire(job.host, job.signal);
        if (job.work.live) job.work.phase(`waiting for host ${job.host}`, waiting);
        return waiting;
      },
      retry: (job, err, n) => {
        dependency.failed(err);
        return deps.storageRetry(job, err, n, options.saveAttempts, 'lock the host of');
      },
      succeeded: (job) => deps.drive(job, 'host-granted'),
      // Granted after the job ended (an escaped error): the host goes straight back.
      afterEnd: (job) => deps.hostGuard.release(job.host),
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, true);
        deps.drive(job, 'host-failed');
      },
    };

    // Most rails need no database call (a deny list, a window): a decision is no sign of its health.
    // Those that do (the interval, fleet-wide slots) count their failures.
    this.#checkingRails = {
      kind: 'stoppable',
      run: (job) => {
        const deciding = deps.rails!.decide(job.host, Date.now());
        if (job.work.live) job.work.phase(`checking the rails for ${job.host}`, deciding);
        return deciding;
      },
      retry: (job, err, n) => {
        dependency.failed(err);
        return deps.storageRetry(job, err, n, options.saveAttempts, 'check the rails for');
      },
      succeeded: (job, verdict) => this.#railsDecided(job, verdict as Verdict | undefined),
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, true);
        deps.drive(job, 'rails-failed');
      },
    };

    this.#claiming = {
      kind: 'stoppable',
      dependency,
      run: (job) => {
        const claiming = claimAndStamp(job, storage, deps.rails, options.claimMode);
        if (job.work.live) job.work.phase(`claiming the restart of ${job.host}`, claiming);
        return claiming;
      },
      retry: (job, err, n) => deps.storageRetry(job, err, n, options.saveAttempts, 'claim the restart of'),
      succeeded: (job, c) => claimed(job, (c as Claimed).found, (c as Claimed).mode, claimedDeps),
      // Whether or not a failed claim was written, its release makes sure it leaves no intent behind.
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, true);
        deps.drive(job, 'claim-failed');
      },
    };

    /**
     * The executor resolves with what happened (a {@link RestartOutcome}); `again` retries it after a
     * backoff while it certainly did not happen, and `succeeded` takes whatever it ended with.
     */
    this.#restarting = {
      kind: 'stoppable',
      run: (job, n) => {
        job.restartAttempts = n - job.notStarted;
        const restarting = deps.executor.restart(job.host, job.signal, {
          messageId: job.messageId,
          instanceName: job.request.instanceName,
          attempt: n,
          deliveryCount: job.delivery.deliveryCount,
          calls: this.#calls,
        });
        if (job.work.live) job.work.phase(`restarting ${job.host} (attempt ${n})`, restarting);
        return restarting;
      },
      again: (job, outcome, n) => this.#tryAgain(job, outcome as RestartOutcome, n),
      // Outcomes are values: an executor that rejects (or throws) has a bug. Never retried, never taken
      // for an outcome: the central handler gets it, and the claim, left without an end, is in doubt.
      retry: () => false,
      succeeded: (job, outcome) => this.#restartEnded(job, outcome as RestartOutcome),
      // Stopped between two attempts (shutdown woke the backoff): no attempt was running, so nothing happened.
      failed: (job, err, betweenAttempts) =>
        betweenAttempts ? this.#restartEnded(job, cancelled(errorText(err))) : deps.escape(job, err),
    };

    // The restart happened: its record is written even during shutdown (a redelivery must find it).
    this.#recordingRestart = {
      kind: 'durable',
      dependency,
      run: (job) => {
        const recording = storage.markRestarted(job.messageId, job.restartAttempts, undefined, job.audit);
        if (job.work.live) job.work.phase(`recording the restart of ${job.host}`, recording);
        return recording;
      },
      retry: (job, err, n) => deps.storageRetry(job, err, n, Infinity, 'record the restart of'),
      succeeded: (job) => {
        job.audit = undefined;
        deps.drive(job, 'restart-recorded');
      },
      failed: (job, err) => {
        job.fail({ error: err, kind: 'unrecorded' }, true);
        deps.drive(job, 'restart-unrecorded');
      },
    };

    this.#releasing = {
      kind: 'durable',
      dependency,
      run: (job) => {
        const releasing = storage.releaseRestart(job.messageId, job.delivery.deliveryCount, job.restartAttempts);
        if (job.work.live) job.work.phase(`releasing the claim on ${job.host}`, releasing);
        return releasing;
      },
      retry: (job, err, n) => deps.storageRetry(job, err, n, Infinity, 'release the claim on'),
      succeeded: (job) => deps.drive(job, 'claim-released'),
      // Given up at shutdown: the claim stays, so a redelivery finds the restart in doubt (never twice).
      failed: (job) => deps.drive(job, 'release-given-up'),
    };
  }

  /** Perform the branch's effects (in the order of their bits: what is given back goes first). */
  perform(job: Job, effects: Effects): void {
    const { runner } = this.#d;
    if ((effects & Effect.FreeSlot) !== 0) this.#d.rails?.releaseSlot();
    if ((effects & Effect.FreeHost) !== 0) this.#d.hostGuard.release(job.host);
    if ((effects & Effect.AcquireHost) !== 0) runner.attempt(job, 1, this.#acquiringHost);
    if ((effects & Effect.CheckRails) !== 0) runner.attempt(job, 1, this.#checkingRails);
    if ((effects & Effect.Claim) !== 0) runner.attempt(job, 1, this.#claiming);
    if ((effects & Effect.Restart) !== 0) runner.attempt(job, 1, this.#restarting);
    if ((effects & Effect.RecordRestart) !== 0) runner.attempt(job, 1, this.#recordingRestart);
    if ((effects & Effect.ReleaseClaim) !== 0) runner.attempt(job, 1, this.#releasing);
  }

  /**
   * After attempt `n` ended with `outcome`: try again? Only what certainly did not happen is, up to
   * `restartAttempts`; what could not start for want of a resource is waited out (not an attempt).
   */
  #tryAgain(job: Job, outcome: RestartOutcome, n: number): boolean {
    const { counters, logger, rails } = this.#d;
    switch (outcome.kind) {
      case 'restarted':
      case 'cancelled':
        return false;
      case 'unknown':
        // Cut short by shutdown is a cancellation, not a failure of the restart.
        if (!outcome.cancelled) counters.increment('restart_failed');
        return false;
      case 'rejected':
        counters.increment('restart_failed');
        return false;
      case 'not-restarted':
        break;
    }
    const resource = outcome.resource;
    if (resource !== undefined) {
      // The machine is short of descriptors or memory: nothing ran, nothing about this message is
      // wrong. Waited out with backoff (not one of its attempts), and told once per episode.
      job.notStarted += 1;
      this.#notStarted.failed(describeResourceFault(resource));
    } else {
      counters.increment('restart_failed');
      if (n - job.notStarted >= this.#restartAttempts) return false;
    }
    // The kill switch stops retries too: what has not started does not start.
    if (rails?.paused === true) {
      job.fail(
        {
          error: new Error('restarts paused (mayhem pause) between two attempts'),
          kind: 'deferred',
          verdict: PAUSED_BETWEEN,
        },
        true,
      );
      return false;
    }
    if (resource !== undefined) {
      if (logger.isLevelEnabled('debug'))
        logger.debug(
          { messageId: job.messageId, host: job.host, err: outcome.reason },
          `Restart of ${job.host} could not start; retrying`,
        );
    } else
      logger.error(
        { messageId: job.messageId, host: job.host, attempt: n },
        `Retrying for failure to restart: ${job.host}`,
      );
    // Not restarting during the pause: `loopwatch ps` must not show the ended attempt as still waiting.
    if (job.work.live) job.work.phase(`pausing before attempt ${n + 1} on ${job.host}`);
    return true;
  }

  /** What the restart did, one case per row of the README's table "What an executor tells the pipeline". */
  #restartEnded(job: Job, outcome: RestartOutcome): void {
    const { logger, counters, drive } = this.#d;
    switch (outcome.kind) {
      case 'restarted':
        counters.increment('restarted');
        // Written with the record that the restart is done (below, or the ack's), in its transaction.
        this.#audit.withRecord(
          job,
          'restarted',
          job.restartAttempts > 1 ? `after ${job.restartAttempts} attempts` : '',
        );
        if (logger.isLevelEnabled('info'))
          logger.info(
            { messageId: job.messageId, host: job.host, attempts: job.restartAttempts },
            `Restarted ${job.host}`,
          );
        return drive(job, 'restarted');
      case 'not-restarted':
      case 'rejected':
      case 'cancelled': {
        // Certainly not restarted: its claim is released. A pause between two attempts defers it.
        const deferred = job.failure?.kind === 'deferred' ? job.failure.verdict : undefined;
        const kind = outcome.kind === 'not-restarted' ? 'failed' : outcome.kind;
        if (deferred !== undefined) this.#audit.now(job, deferred.outcome, deferred.reason);
        else {
          // Told by the lines above (and the record's reason): no "general error", which is for bugs.
          job.fail({ error: outcome.reason, kind, expected: true }, true);
          if (kind !== 'cancelled') this.#audit.now(job, kind, outcome.reason);
        }
        return drive(job, 'not-restarted');
      }
      case 'unknown':
        // Told below, in one line (a bug never gets here: it went to the central handler).
        job.fail({ error: outcome.reason, kind: outcome.cancelled ? 'cancelled' : 'failed', expected: true }, true);
        // One in-doubt row per message: rides on this delivery's failure record; a redelivery that
        // finds it written adds none.
        if (job.claim !== 'in-doubt-audited')
          this.#audit.withRecord(job, 'in-doubt', `ended without saying whether it happened: ${outcome.reason}`);
        logger.error(
          { messageId: job.messageId, host: job.host, err: outcome.reason },
          `Restart of ${job.host} ended without saying whether it happened (${outcome.reason}); leaving it in doubt: a redelivery will not restart it again`,
        );
        return drive(job, 'restart-unknown');
    }
  }

  #railsDecided(job: Job, verdict: Verdict | undefined): void {
    if (verdict === undefined) {
      // The rails took a restart slot when --max-concurrent-restarts is set.
      return this.#d.drive(job, this.#d.rails!.settings.maxConcurrent > 0 ? 'rails-go-slot' : 'rails-go');
    }
    const { logger, counters } = this.#d;
    this.#audit.now(job, verdict.outcome, verdict.reason);
    const at = { messageId: job.messageId, host: job.host, outcome: verdict.outcome, reason: verdict.reason };
    if (verdict.action === 'skip') {
      counters.increment('rail_skipped');
      job.skip = verdict;
      logger.warn(at, `Not restarting ${job.host}: ${verdict.reason}; acking it as skipped`);
      return this.#d.drive(job, 'rail-skipped');
    }
    counters.increment('deferred', 1, verdict.outcome.replace(/^deferred-/, ''));
    if (logger.isLevelEnabled('info'))
      logger.info(
        at,
        `Not restarting ${job.host} now: ${verdict.reason}; redelivery in ${Math.round(verdict.delayMs / 1000)} s`,
      );
    job.fail({ error: new Error(verdict.reason), kind: 'deferred', verdict }, true);
    this.#d.drive(job, 'rail-deferred');
  }

  /** Close the fault episode still open (its last line) and its timer. */
  close(): void {
    this.#notStarted.close();
  }
}

const PAUSED_BETWEEN: Verdict = {
  action: 'defer',
  outcome: 'deferred-paused',
  reason: 'restarts paused between two attempts',
  delayMs: 5_000,
};
