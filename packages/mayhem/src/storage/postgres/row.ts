/** A message record's patch as the PostgreSQL write statement takes it: one JSON element, strings made storable. */
import type { AuditEntry } from '../../core/rails.js';
import type { RecordPatch } from '../record-patch.js';
import { neutralOf, RECORD_COLUMNS, type RecordColumn } from '../columns.js';

/**
 * A folded patch as one element of the write statement's JSON array: the column names (storage/columns.ts),
 * and only the values that change something (the statement reads a missing one as neutral).
 */
export type MessageRow = { message_id: string } & {
  [C in (typeof RECORD_COLUMNS)[number] as C['column']]?: RecordPatch[C['field']];
};

const COLS: readonly RecordColumn[] = RECORD_COLUMNS;

/** A folded patch as the write statement takes it (strings made storable). */
export function messageRow(p: RecordPatch): MessageRow {
  const row: Record<string, unknown> = { message_id: text(p.messageId) };
  for (const c of COLS) {
    const v = p[c.field];
    if (v === neutralOf(c.kind)) continue;
    row[c.column] = typeof v === 'string' ? text(v) : v;
  }
  return row as MessageRow;
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
