/** The audit table's row as both SQL adapters read it (snake_case), and the entry the rails use. */
import type { AuditEntry } from '../core/rails.js';

/** The columns both adapters read after `at`, in {@link AuditRow}'s order (`at` as each adapter spells it). */
export const AUDIT_COLUMNS = 'instance, host, message_id, executor, outcome, reason, instance_name, experiment';

/** One row of `audit`; `at` in ms since epoch (PostgreSQL's numeric comes back as a string). */
export interface AuditRow {
  readonly at: number | string;
  readonly instance: string;
  readonly host: string;
  readonly message_id: string;
  readonly executor: string;
  readonly outcome: AuditEntry['outcome'];
  readonly reason: string;
  readonly instance_name: string;
  readonly experiment: string;
}

/** SQLite: one audit row, with {@link auditParams} (the control's batches, and rows written with records). */
export const INSERT_AUDIT_SQL =
  'INSERT INTO audit (at, instance, host, message_id, executor, outcome, reason, instance_name, experiment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)';

export function auditParams(e: AuditEntry): [number, string, string, string, string, string, string, string, string] {
  return [
    e.at,
    e.instance,
    e.host,
    e.messageId,
    e.executor,
    e.outcome,
    e.reason,
    e.instanceName ?? '',
    e.experiment ?? '',
  ];
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
    instanceName: r.instance_name,
    experiment: r.experiment,
  };
}

/** Whether an entry is one `--host` asks for: its host, or its request's instance name. */
export function auditMatchesHost(e: AuditEntry, host: string): boolean {
  return e.host === host || e.instanceName === host;
}
