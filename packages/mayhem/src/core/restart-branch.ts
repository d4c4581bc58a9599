/**
 * The restart branch of a job: hold the host → the rails decide (skip, defer, or go) → claim the
 * restart in storage (skip if done, in doubt, leashed; a reused id is a conflict) → run the
 * executor (retried) → record the restart, or release the claim when it certainly did not happen.
 * Each decision goes to the audit trail. States and invariants: core/job.ts.
 */
import type { Logger } from 'pino';
import type { CallLedger, ClaimMode, HostGuard, RestartClaim, RestartExecutor, Storage } from './contracts.js';
import { OutcomeUnknown, RestartFailed, RestartNotStarted, RestartRejected } from './contracts.js';
import type { Counters } from './counters.js';
import type { DependencyHealth } from './dependency-health.js';
import { errorText } from './errors.js';
import { FaultEpisode } from './fault-episode.js';
import { describeResourceFault } from './resource-fault.js';
import type { Job } from './job.js';
import type { AuditEntry, AuditOutcome, FleetControl, Rails, Verdict } from './rails.js';
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
  /** The branch reached a final state: the pipeline settles when the save has too. */
  readonly branchEnded: (job: Job) => void;
}

export class RestartBranch {
  readonly #o: RestartBranchOptions;
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
  // The `restarted` and `in-doubt` rows are written with the records (crash-safe) where the storage
  // keeps the audit trail itself; else they go to the control like every other row.
  readonly #auditWithRecords: boolean;

  constructor(options: RestartBranchOptions, deps: RestartBranchDeps) {
    this.#o = options;
    this.#d = deps;
    const { storage, logger, counters, storageHealth: dependency, runner } = deps;
    this.#auditWithRecords = deps.control !== undefined && storage.control !== undefined;
    this.#notStarted = new FaultEpisode(`Restart executor (${options.executorName})`, logger, {
      meanwhile: 'the restarts that could not start are retried with backoff (nothing ran: not in doubt)',
    });
    this.#calls = {
      read: (messageId) => storage.readCalls(messageId),
      record: (messageId, count) => storage.recordCalls(messageId, count),
    };
    // The steps are built once and shared by every job; each is a continuation that takes the job.

    // Waiting for the host is not a database call (another message may hold it for long), but the
    // guard failing is (the PostgreSQL guard's lock connection): retried like a save, and while the
    // database is down it waits for it.
    this.#acquiringHost = {
      kind: 'stoppable',
      run: (job) => deps.hostGuard.acquire(job.host, job.signal),
      retry: (job, err, n) => {
        dependency.failed(err);
        return deps.storageRetry(job, err, n, options.saveAttempts, 'lock the host of');
      },
      succeeded: (job) => {
        if (deps.rails === undefined) return this.#claim(job);
        job.restart = 'checking';
        runner.attempt(job, 1, this.#checkingRails);
      },
      // Granted after the job ended (an escaped error): the host goes straight back.
      afterEnd: (job) => deps.hostGuard.release(job.host),
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, true);
        this.final(job, 'failed');
      },
    };

    // Most rails need no database call (a deny list, a window): a decision is no sign of its health.
    // Those that do (the interval, fleet-wide slots) count their failures.
    this.#checkingRails = {
      kind: 'stoppable',
      run: (job) => deps.rails!.decide(job.host, Date.now()),
      retry: (job, err, n) => {
        dependency.failed(err);
        return deps.storageRetry(job, err, n, options.saveAttempts, 'check the rails for');
      },
      succeeded: (job, verdict) => this.#railsDecided(job, verdict as Verdict | undefined),
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, true);
        this.final(job, 'failed');
      },
    };

    this.#claiming = {
      kind: 'stoppable',
      dependency,
      run: (job) => this.#claimAndStamp(job),
      retry: (job, err, n) => deps.storageRetry(job, err, n, options.saveAttempts, 'claim the restart of'),
      succeeded: (job, claimed) => this.#claimed(job, (claimed as Claimed).found, (claimed as Claimed).mode),
      // Whether or not a failed claim was written, its release makes sure it leaves no intent behind.
      failed: (job, err) => {
        job.fail({ error: err, kind: isAbort(err, job.signal) ? 'cancelled' : 'failed', expected: true }, true);
        this.#release(job);
      },
    };

    /** A `RestartFailed` is retried after a backoff up to `restartAttempts`; any other error is not. */
    this.#restarting = {
      kind: 'stoppable',
      run: (job, n) => {
        job.restartAttempts = n - job.notStarted;
        return deps.executor.restart(job.host, job.signal, {
          messageId: job.messageId,
          instanceName: job.request.instanceName,
          attempt: n,
          deliveryCount: job.delivery.deliveryCount,
          calls: this.#calls,
        });
      },
      retry: (job, err, n) => {
        // The machine is short of descriptors or memory: nothing ran, nothing about this message is
        // wrong. Waited out with backoff (not one of its attempts), and told once per episode.
        const notStarted = err instanceof RestartNotStarted;
        if (notStarted) {
          job.notStarted += 1;
          this.#notStarted.failed(describeResourceFault(err.code));
        } else {
          counters.increment('restart_failed');
          if (
            n - job.notStarted >= options.restartAttempts ||
            !(err instanceof RestartFailed) ||
            err instanceof RestartRejected
          )
            return false;
        }
        // The kill switch stops retries too: what has not started does not start.
        if (deps.rails?.paused === true) {
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
        if (notStarted) {
          if (logger.isLevelEnabled('debug'))
            logger.debug(
              { messageId: job.messageId, host: job.host, err: errorText(err) },
              `Restart of ${job.host} could not start; retrying`,
            );
          return true;
        }
        logger.error(
          { messageId: job.messageId, host: job.host, attempt: n },
          `Retrying for failure to restart: ${job.host}`,
        );
        return true;
      },
      succeeded: (job) => {
        counters.increment('restarted');
        // Written with the record that the restart is done (below, or the ack's), in its transaction.
        this.#auditDurably(job, 'restarted', job.restartAttempts > 1 ? `after ${job.restartAttempts} attempts` : '');
        if (logger.isLevelEnabled('info'))
          logger.info(
            { messageId: job.messageId, host: job.host, attempts: job.restartAttempts },
            `Restarted ${job.host}`,
          );
        this.#slotFree(job);
        if (job.save === 'saved' && job.failure === undefined) {
          // The ack comes next: its record carries the restart (one row write, not two); the host
          // stays held until it is written.
          job.restart = 'restarted';
          deps.branchEnded(job);
          return;
        }
        job.restart = 'recording';
        runner.attempt(job, 1, this.#recordingRestart);
      },
      failed: (job, err, betweenAttempts) => {
        this.#slotFree(job);
        const deferred = job.failure?.kind === 'deferred' ? job.failure.verdict : undefined;
        const kind = isAbort(err, job.signal) ? 'cancelled' : err instanceof RestartRejected ? 'rejected' : 'failed';
        // A restart that timed out (its outcome unknown) is told below; any other error is a bug.
        if (deferred === undefined) job.fail({ error: err, kind, expected: err instanceof OutcomeUnknown }, true);
        // Not restarted for sure: stopped between attempts, or the executor said so.
        if (betweenAttempts || err instanceof RestartFailed) {
          if (deferred !== undefined) this.#audit(job, deferred.outcome, deferred.reason);
          else if (kind !== 'cancelled') this.#audit(job, kind, errorText(err));
          return this.#release(job);
        }
        // One in-doubt row per message: rides on this delivery's failure record; a redelivery that
        // finds it written adds none.
        if (job.claim !== 'in-doubt-audited')
          this.#auditDurably(job, 'in-doubt', `ended without saying whether it happened: ${errorText(err)}`);
        logger.error(
          { messageId: job.messageId, host: job.host, err: errorText(err) },
          `Restart of ${job.host} ended without saying whether it happened (${errorText(err)}); leaving it in doubt: a redelivery will not restart it again`,
        );
        this.final(job, 'failed');
      },
    };

    // The restart happened: its record is written even during shutdown (a redelivery must find it).
    this.#recordingRestart = {
      kind: 'durable',
      dependency,
      run: (job) => storage.markRestarted(job.messageId, job.restartAttempts, undefined, job.audit),
      retry: (job, err, n) => deps.storageRetry(job, err, n, Infinity, 'record the restart of'),
      succeeded: (job) => {
        job.audit = undefined;
        this.final(job, 'done');
      },
      failed: (job, err) => {
        job.fail({ error: err, kind: 'unrecorded' }, true);
        this.final(job, 'failed');
      },
    };

    this.#releasing = {
      kind: 'durable',
      dependency,
      run: (job) => storage.releaseRestart(job.messageId, job.delivery.deliveryCount, job.restartAttempts),
      retry: (job, err, n) => deps.storageRetry(job, err, n, Infinity, 'release the claim on'),
      succeeded: (job) => this.final(job, 'failed'),
      // Given up at shutdown: the claim stays, so a redelivery finds the restart in doubt (never twice).
      failed: (job) => this.final(job, 'failed'),
    };
  }

  /** Close the fault episode still open (its last line) and its timer. */
  close(): void {
    this.#notStarted.close();
  }

  /** Start the branch: take the host (the rest follows). */
  begin(job: Job): void {
    this.#d.runner.attempt(job, 1, this.#acquiringHost);
  }

  /**
   * The branch reaches a final state; the host (and a restart slot) go back if held. `done` from the
   * pipeline once the ack record that carried the restart is written.
   */
  final(job: Job, state: 'done' | 'skipped' | 'failed'): void {
    if (job.ended) return; // the pipeline's end gave the host back already
    this.#slotFree(job);
    if (job.holdsHost) this.#d.hostGuard.release(job.host);
    job.restart = state;
    this.#d.branchEnded(job);
  }

  /** Give back what the job holds when it ends early (an escaped error). */
  abandon(job: Job): void {
    this.#slotFree(job);
    if (job.holdsHost) this.#d.hostGuard.release(job.host);
  }

  #railsDecided(job: Job, verdict: Verdict | undefined): void {
    if (verdict === undefined) {
      job.slot = this.#d.rails!.settings.maxConcurrent > 0;
      return this.#claim(job);
    }
    const { logger, counters } = this.#d;
    this.#audit(job, verdict.outcome, verdict.reason);
    const at = { messageId: job.messageId, host: job.host, outcome: verdict.outcome, reason: verdict.reason };
    if (verdict.action === 'skip') {
      counters.increment('rail_skipped');
      job.skip = verdict;
      logger.warn(at, `Not restarting ${job.host}: ${verdict.reason}; acking it as skipped`);
      return this.final(job, 'skipped');
    }
    counters.increment('deferred', 1, verdict.outcome.replace(/^deferred-/, ''));
    if (logger.isLevelEnabled('info'))
      logger.info(
        at,
        `Not restarting ${job.host} now: ${verdict.reason}; redelivery in ${Math.round(verdict.delayMs / 1000)} s`,
      );
    job.fail({ error: new Error(verdict.reason), kind: 'deferred', verdict }, true);
    this.final(job, 'skipped');
  }

  #claim(job: Job): void {
    job.restart = 'claiming';
    this.#d.runner.attempt(job, 1, this.#claiming);
  }

  // With a per-host interval the host's restart time is stamped with the claim, holding the host, so
  // the next instance to take it sees it. (Without one, the claim alone: no extra write.) A leashed
  // restart is stamped where the leashed instance keeps its own (the rails' shadow), never the fleet's.
  // The leash is read per claim: the fleet's settings may change while the instance runs.
  #claimAndStamp(job: Job): Promise<Claimed> {
    const rails = this.#d.rails;
    const mode: ClaimMode = rails?.looks === true ? 'look' : this.#o.claimMode;
    const claimed = this.#d.storage.claimRestart(job.request, job.delivery.deliveryCount, mode, job.signal);
    if (rails === undefined || rails.settings.minIntervalMs === 0) return claimed.then((found) => ({ found, mode }));
    return claimed.then(async (found) => {
      if (found === 'free' || (found === 'in-doubt' && mode === 'claim-in-doubt'))
        await rails.stamp(job.host, Date.now(), mode === 'look');
      return { found, mode };
    });
  }

  #claimed(job: Job, found: RestartClaim, mode: ClaimMode): void {
    const { logger, counters } = this.#d;
    job.claim = found;
    const at = { messageId: job.messageId, host: job.host };
    switch (found) {
      case 'conflict': {
        const reason = `messageId ${JSON.stringify(job.messageId)} is already recorded for another instance; not restarting ${job.host}`;
        this.#audit(job, 'conflict', reason);
        job.fail({ error: new Error(reason), kind: 'conflict' }, true);
        return this.final(job, 'failed');
      }
      case 'done':
      case 'done-unaudited':
        counters.increment('restart_skipped');
        this.#audit(job, 'already-done', 'a redelivery of a message whose restart is recorded');
        // Its `restarted` row was lost (written apart from the record by an older mayhem): written
        // now, with this delivery's record.
        if (found === 'done-unaudited')
          this.#auditDurably(
            job,
            'restarted',
            'recovered: the restart is recorded as done, and its audit row was missing (written by a redelivery)',
          );
        logger.info(at, `Already restarted ${job.host} for this message; not restarting again`);
        return this.final(job, 'skipped');
      case 'in-doubt':
      case 'in-doubt-audited':
        if (mode === 'claim-in-doubt') {
          logger.warn(
            at,
            `Restart of ${job.host} is in doubt (an earlier delivery began it and never recorded how it ended); restarting it again as --in-doubt restart says`,
          );
          break;
        }
        counters.increment('restart_in_doubt');
        // One in-doubt row per message, whatever the deliveries that find it.
        if (found === 'in-doubt')
          this.#auditDurably(
            job,
            'in-doubt',
            'found in doubt (an earlier delivery began it and never recorded how it ended); not restarted again',
          );
        logger.warn(
          at,
          `Restart of ${job.host} is in doubt (an earlier delivery began it and never recorded how it ended: its instance probably died mid-restart); not restarting again`,
        );
        return this.final(job, 'skipped');
      case 'free':
        if (mode === 'look') {
          counters.increment('leashed');
          this.#audit(job, 'leashed', 'would restart (leashed: nothing is restarted)');
          logger.info(at, `Leashed: would restart ${job.host}`);
          return this.final(job, 'skipped');
        }
    }
    job.restart = 'running';
    this.#d.runner.attempt(job, 1, this.#restarting);
  }

  #release(job: Job): void {
    job.restart = 'releasing';
    this.#d.runner.attempt(job, 1, this.#releasing);
  }

  #slotFree(job: Job): void {
    if (!job.slot) return;
    job.slot = false;
    this.#d.rails?.releaseSlot();
  }

  #audit(job: Job, outcome: AuditOutcome, reason: string): void {
    this.#d.control?.audit(this.#entry(job, outcome, reason));
  }

  /** A row written with the job's next record, in its transaction (see Job.audit). */
  #auditDurably(job: Job, outcome: AuditOutcome, reason: string): void {
    if (!this.#auditWithRecords) return this.#audit(job, outcome, reason);
    const entry = { ...this.#entry(job, outcome, reason), experiment: this.#o.experiment ?? '' };
    (job.audit ??= []).push(entry);
  }

  #entry(job: Job, outcome: AuditOutcome, reason: string): AuditEntry {
    return {
      at: Date.now(),
      instance: this.#o.instance,
      host: job.host,
      instanceName: job.request.instanceName,
      messageId: job.messageId,
      executor: this.#o.executorName,
      outcome,
      reason,
    };
  }
}

/** What the claim found, and how it claimed (the leash may change between two claims). */
interface Claimed {
  readonly found: RestartClaim;
  readonly mode: ClaimMode;
}

const PAUSED_BETWEEN: Verdict = {
  action: 'defer',
  outcome: 'deferred-paused',
  reason: 'restarts paused between two attempts',
  delayMs: 5_000,
};
