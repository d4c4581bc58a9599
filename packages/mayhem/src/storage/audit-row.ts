/** The audit table's row as both SQL adapters read it (snake_case), and the entry the rails use. */
import type { AuditEntry } from '../core/rails.js';

/** One row of `audit`; `at` in ms since epoch (PostgreSQL's numeric comes back as a string). */
export interface AuditRow {
  readonly at: number | string;
  readonly instance: string;
  readonly host: string;
  readonly message_id: string;
  readonly executor: string;
  readonly outcome: AuditEntry['outcome'];
  readonly reason: string;
}

export function auditEntryOf(r: AuditRow): AuditEntry {
  return {
    at: Number(r.at),
    instance: r.instance,
    host: r.host,
    messageId: r.message_id,
    executor: r.executor,
    outcome: r.outcome,
    reason: r.reason,
  };
}
