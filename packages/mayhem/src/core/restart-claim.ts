/**
 * The restart branch's claim: the intent recorded in storage before a restart runs (with the host's
 * restart time stamped, when a per-host interval needs it), and what each answer of the claim leads
 * to: a conflict, a restart already done, one in doubt, leashed, or free to run.
 */
import type { Logger } from 'pino';
import type { ClaimMode, RestartClaim, Storage } from './contracts.js';
import type { Counters } from './counters.js';
import type { Job } from './job.js';
import type { JobEvent } from './job-machine.js';
import type { Rails } from './rails.js';
import type { RestartAudit } from './restart-audit.js';

/** What the claim found, and how it claimed (the leash may change between two claims). */
export interface Claimed {
  readonly found: RestartClaim;
  readonly mode: ClaimMode;
}

// With a per-host interval the host's restart time is stamped with the claim, holding the host, so
// the next instance to take it sees it. (Without one, the claim alone: no extra write.) A leashed
// restart is stamped where the leashed instance keeps its own (the rails' shadow), never the fleet's.
// The leash is read per claim: the fleet's settings may change while the instance runs.
export function claimAndStamp(
  job: Job,
  storage: Storage,
  rails: Rails | undefined,
  claimMode: ClaimMode,
): Promise<Claimed> {
  const mode: ClaimMode = rails?.looks === true ? 'look' : claimMode;
  const claimed = storage.claimRestart(job.request, job.delivery.deliveryCount, mode, job.signal);
  if (rails === undefined || rails.settings.minIntervalMs === 0) return claimed.then((found) => ({ found, mode }));
  return claimed.then(async (found) => {
    if (found === 'free' || (found === 'in-doubt' && mode === 'claim-in-doubt'))
      await rails.stamp(job.host, Date.now(), mode === 'look');
    return { found, mode };
  });
}

export interface ClaimedDeps {
  readonly logger: Logger;
  readonly counters: Counters;
  readonly audit: RestartAudit;
  readonly drive: (job: Job, event: JobEvent) => void;
}

/** What the claim found, told (log, counters, audit) and reported to the machine as its event. */
export function claimed(job: Job, found: RestartClaim, mode: ClaimMode, d: ClaimedDeps): void {
  const { logger, counters, audit, drive } = d;
  job.claim = found;
  const at = { messageId: job.messageId, host: job.host };
  switch (found) {
    case 'conflict': {
      const reason = `messageId ${JSON.stringify(job.messageId)} is already recorded for another instance; not restarting ${job.host}`;
      audit.now(job, 'conflict', reason);
      job.fail({ error: new Error(reason), kind: 'conflict' }, true);
      return drive(job, 'claim-conflict');
    }
    case 'done':
    case 'done-unaudited':
      counters.increment('restart_skipped');
      audit.now(job, 'already-done', 'a redelivery of a message whose restart is recorded');
      // Its `restarted` row was lost (written apart from the record by an older mayhem): written
      // now, with this delivery's record.
      if (found === 'done-unaudited')
        audit.withRecord(
          job,
          'restarted',
          'recovered: the restart is recorded as done, and its audit row was missing (written by a redelivery)',
        );
      logger.info(at, `Already restarted ${job.host} for this message; not restarting again`);
      return drive(job, 'claim-done');
    case 'in-doubt':
    case 'in-doubt-audited':
      if (mode === 'claim-in-doubt') {
        logger.warn(
          at,
          `Restart of ${job.host} is in doubt (an earlier delivery began it and never recorded how it ended); restarting it again as --in-doubt restart says`,
        );
        return drive(job, 'claim-in-doubt-rerun');
      }
      counters.increment('restart_in_doubt');
      // One in-doubt row per message, whatever the deliveries that find it.
      if (found === 'in-doubt')
        audit.withRecord(
          job,
          'in-doubt',
          'found in doubt (an earlier delivery began it and never recorded how it ended); not restarted again',
        );
      logger.warn(
        at,
        `Restart of ${job.host} is in doubt (an earlier delivery began it and never recorded how it ended: its instance probably died mid-restart); not restarting again`,
      );
      return drive(job, 'claim-in-doubt');
    case 'free':
      if (mode === 'look') {
        counters.increment('leashed');
        audit.now(job, 'leashed', 'would restart (leashed: nothing is restarted)');
        logger.info(at, `Leashed: would restart ${job.host}`);
        return drive(job, 'claim-leashed');
      }
      return drive(job, 'claim-free');
  }
}
