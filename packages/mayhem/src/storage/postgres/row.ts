/** A message record's patch as the PostgreSQL write statement takes it: one JSON element, strings made storable. */
import type { AuditEntry } from '../../core/rails.js';
import type { RecordPatch } from '../record-patch.js';

/**
 * A folded patch as one element of the write statement's JSON array: the column names, and only
 * the values that change something (the statement reads a missing one as neutral).
 */
export interface MessageRow {
  message_id: string;
  instance_name?: string;
  hostname?: string;
  published_at?: number; // ms
  saved?: true;
  deliveries?: number;
  restarted?: true;
  restart_attempts?: number;
  restart_claimed?: number;
  acked?: true;
  extensions?: number;
  dead_lettered?: true;
  last_error?: string;
  restart_released?: number;
  restart_in_doubt?: true;
  skip_reason?: string;
  http_calls?: number;
  http_calls_failed?: number;
  restart_audited?: true;
  in_doubt_audited?: true;
}

/** A folded patch as the write statement takes it (strings made storable). */
export function messageRow(p: RecordPatch): MessageRow {
  const row: MessageRow = { message_id: text(p.messageId) };
  if (p.instanceName !== null) row.instance_name = text(p.instanceName);
  if (p.hostname !== null) row.hostname = text(p.hostname);
  if (p.publishedAt !== null) row.published_at = p.publishedAt;
  if (p.saved) row.saved = true;
  if (p.deliveries > 0) row.deliveries = p.deliveries;
  if (p.restarted) row.restarted = true;
  if (p.restartAttempts > 0) row.restart_attempts = p.restartAttempts;
  if (p.restartClaimed > 0) row.restart_claimed = p.restartClaimed;
  if (p.acked) row.acked = true;
  if (p.extensions > 0) row.extensions = p.extensions;
  if (p.deadLettered) row.dead_lettered = true;
  if (p.lastError !== null) row.last_error = text(p.lastError);
  if (p.restartReleased > 0) row.restart_released = p.restartReleased;
  if (p.restartInDoubt) row.restart_in_doubt = true;
  if (p.skipReason !== null) row.skip_reason = text(p.skipReason);
  if (p.httpCalls > 0) row.http_calls = p.httpCalls;
  if (p.httpCallsFailed > 0) row.http_calls_failed = p.httpCallsFailed;
  if (p.restartAudited) row.restart_audited = true;
  if (p.inDoubtAudited) row.in_doubt_audited = true;
  return row;
}

/** An audit row as the write statement's fourth JSON array takes it. */
export interface AuditRowIn {
  at: number;
  instance: string;
  host: string;
  message_id: string;
  executor: string;
  outcome: string;
  reason: string;
  instance_name: string;
  experiment: string;
}

/** An audit entry as the write statement takes it (strings made storable). */
export function auditRowIn(e: AuditEntry): AuditRowIn {
  return {
    at: e.at,
    instance: text(e.instance),
    host: text(e.host),
    message_id: text(e.messageId),
    executor: text(e.executor),
    outcome: e.outcome,
    reason: text(e.reason),
    instance_name: text(e.instanceName ?? ''),
    experiment: text(e.experiment ?? ''),
  };
}

// PostgreSQL text cannot hold NUL, and its JSON parser rejects lone surrogates: replace both so one
// odd payload cannot fail a whole batch.
const UNSTORABLE_SOURCE = '\\u0000|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]';
// Cheap first test (no lookaround): only strings that contain NUL or any surrogate get the full one.
// eslint-disable-next-line no-control-regex
const MAYBE_UNSTORABLE = /[\u0000\uD800-\uDFFF]/;
const ALL_UNSTORABLE = new RegExp(UNSTORABLE_SOURCE, 'g');

export function text(s: string): string {
  return MAYBE_UNSTORABLE.test(s) ? s.replace(ALL_UNSTORABLE, '\uFFFD') : s;
}
