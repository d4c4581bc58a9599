/**
 * The restart branch's audit rows, one per decision about a restart. Most go to the fleet's control
 * at once (it batches them); a restart's `restarted` and `in-doubt` rows ride on the job's next
 * record instead, in its transaction, where the storage keeps the audit trail itself: never a record
 * that says "done" without its row (crash-safe), else they go to the control like every other row.
 */
import type { AuditEntry, AuditOutcome, FleetControl } from './fleet-control.js';
import type { Job } from './job.js';

/** Who decides, stamped on every row. */
export interface AuditSigner {
  readonly instance: string;
  readonly executorName: string;
  /** The experiment every row belongs to (`--experiment`), for the rows written with records. */
  readonly experiment?: string | undefined;
}

export class RestartAudit {
  readonly #control: FleetControl | undefined;
  readonly #withRecords: boolean;
  readonly #who: AuditSigner;

  constructor(control: FleetControl | undefined, withRecords: boolean, who: AuditSigner) {
    this.#control = control;
    this.#withRecords = withRecords;
    this.#who = who;
  }

  /** A row now, through the control. */
  now(job: Job, outcome: AuditOutcome, reason: string): void {
    this.#control?.audit(this.#entry(job, outcome, reason));
  }

  /** A row written with the job's next record, in its transaction (see Job.audit). */
  withRecord(job: Job, outcome: AuditOutcome, reason: string): void {
    if (!this.#withRecords) return this.now(job, outcome, reason);
    const entry = { ...this.#entry(job, outcome, reason), experiment: this.#who.experiment ?? '' };
    (job.audit ??= []).push(entry);
  }

  #entry(job: Job, outcome: AuditOutcome, reason: string): AuditEntry {
    return {
      at: Date.now(),
      instance: this.#who.instance,
      host: job.host,
      instanceName: job.request.instanceName,
      messageId: job.messageId,
      executor: this.#who.executorName,
      outcome,
      reason,
    };
  }
}
