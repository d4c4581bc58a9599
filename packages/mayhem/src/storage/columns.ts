/**
 * The message record's columns, stated once: each {@link RecordPatch} field, its column in both SQL
 * adapters, the rule by which writes merge into it (record-patch.ts's table), and its kind. The
 * PostgreSQL write statement and row are built from this table; the SQLite statements and the fold
 * (both written out: they run per write in the storage worker) are held to it by
 * test/unit/record-columns.test.ts, column by column. A new field is one line here, then the schema's
 * migration, and the test names every place that still lacks it.
 */
import type { RecordPatch } from './record-patch.js';

/** How later writes merge into a column (see record-patch.ts). */
export type MergeRule =
  /** The first non-null stays. */
  | 'first'
  /** Once true, true. */
  | 'once'
  /** The highest. */
  | 'highest'
  /** The latest non-null. */
  | 'latest';

/** What a column holds: text (nullable), a time (ms, nullable), a flag, a count. */
export type ColumnKind = 'text' | 'time' | 'flag' | 'count';

export interface RecordColumn {
  readonly field: Exclude<keyof RecordPatch, 'messageId'>;
  readonly column: string;
  readonly rule: MergeRule;
  readonly kind: ColumnKind;
}

export const RECORD_COLUMNS = [
  { field: 'instanceName', column: 'instance_name', rule: 'first', kind: 'text' },
  { field: 'hostname', column: 'hostname', rule: 'first', kind: 'text' },
  { field: 'publishedAt', column: 'published_at', rule: 'first', kind: 'time' },
  { field: 'skipReason', column: 'skip_reason', rule: 'first', kind: 'text' },
  { field: 'saved', column: 'saved', rule: 'once', kind: 'flag' },
  { field: 'restarted', column: 'restarted', rule: 'once', kind: 'flag' },
  { field: 'acked', column: 'acked', rule: 'once', kind: 'flag' },
  { field: 'deadLettered', column: 'dead_lettered', rule: 'once', kind: 'flag' },
  { field: 'restartInDoubt', column: 'restart_in_doubt', rule: 'once', kind: 'flag' },
  { field: 'restartAudited', column: 'restart_audited', rule: 'once', kind: 'flag' },
  { field: 'inDoubtAudited', column: 'in_doubt_audited', rule: 'once', kind: 'flag' },
  { field: 'restartClaimed', column: 'restart_claimed', rule: 'highest', kind: 'count' },
  { field: 'restartReleased', column: 'restart_released', rule: 'highest', kind: 'count' },
  { field: 'restartAttempts', column: 'restart_attempts', rule: 'highest', kind: 'count' },
  { field: 'extensions', column: 'extensions', rule: 'highest', kind: 'count' },
  { field: 'deliveries', column: 'deliveries', rule: 'highest', kind: 'count' },
  { field: 'httpCalls', column: 'http_calls', rule: 'highest', kind: 'count' },
  { field: 'httpCallsFailed', column: 'http_calls_failed', rule: 'highest', kind: 'count' },
  { field: 'lastError', column: 'last_error', rule: 'latest', kind: 'text' },
] as const satisfies readonly RecordColumn[];

/** Every patch field has its column (a compile error names the one missing). */
type Missing = Exclude<RecordColumn['field'], (typeof RECORD_COLUMNS)[number]['field']>;
export const EVERY_FIELD_HAS_A_COLUMN: [Missing] extends [never] ? true : Missing = true;

/** The neutral value of a kind: what a write that does not know the field sends. */
export function neutralOf(kind: ColumnKind): null | false | 0 {
  return kind === 'flag' ? false : kind === 'count' ? 0 : null;
}
