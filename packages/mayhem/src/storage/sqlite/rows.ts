/**
 * The row writes of one SQLite flush: each message's folded patch becomes one INSERT (a new message
 * appends a row) or one UPDATE by row id (see sqlite/storage.ts for the flush around it).
 */
import type Database from 'better-sqlite3';
import type { RecordColumn } from '../columns.js';
import type { RecordPatch } from '../record-patch.js';
import type { IdIndex } from './id-index.js';
import { isUuid, KEY_SQL } from './schema.js';

// The merge rules of record-patch.ts, in SQL: a flush folds its writes to one message into one
// patch, and this upsert folds that patch into the stored row the same way (a neutral patch value,
// 0 / false / NULL, keeps the stored one). Change one, change the other: the storage contract's
// property test compares them.
const INSERT_ROW = `INSERT INTO message_rows (id, message_id, instance_name, hostname, published_at, restarted, restart_claimed,
  restart_released, restart_in_doubt, restart_attempts, saved, acked, extensions, deliveries, dead_lettered, last_error,
  created_at, updated_at, restarted_at, acked_at, skip_reason, http_calls, http_calls_failed, restart_audited, in_doubt_audited)
  VALUES (?, ${KEY_SQL}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const UPDATE_ROW = `UPDATE message_rows SET
  instance_name    = coalesce(instance_name, ?),
  hostname         = coalesce(hostname, ?),
  published_at     = coalesce(published_at, ?),
  restarted        = max(restarted, ?),
  restart_claimed  = max(restart_claimed, ?),
  restart_released = max(restart_released, ?),
  restart_in_doubt = max(restart_in_doubt, ?),
  restart_attempts = max(restart_attempts, ?),
  saved            = max(saved, ?),
  acked            = max(acked, ?),
  extensions       = max(extensions, ?),
  deliveries       = max(deliveries, ?),
  dead_lettered    = max(dead_lettered, ?),
  last_error       = coalesce(?, last_error),
  updated_at       = ?,
  restarted_at     = coalesce(restarted_at, ?),
  acked_at         = coalesce(acked_at, ?),
  skip_reason      = coalesce(skip_reason, ?),
  http_calls       = max(http_calls, ?),
  http_calls_failed = max(http_calls_failed, ?),
  restart_audited  = max(restart_audited, ?),
  in_doubt_audited = max(in_doubt_audited, ?)
WHERE id = ?`;

// The two row writes nearly every message makes, each with only the columns it sets bound (binding
// was most of a row write's cost): its first (the save and the claim, folded in one flush) and its
// ack (which may carry the restart). Same rules as above for those columns; the rest are the
// neutral values, which the general statements would have kept or written anyway.
const INSERT_FIRST = `INSERT INTO message_rows (id, message_id, instance_name, hostname, published_at, restarted, restart_claimed,
  restart_released, restart_in_doubt, restart_attempts, saved, acked, extensions, deliveries, dead_lettered, last_error,
  created_at, updated_at, restarted_at, acked_at, skip_reason, http_calls, http_calls_failed, restart_audited, in_doubt_audited)
  VALUES (?, ${KEY_SQL}, ?, ?, ?, 0, ?, 0, 0, 0, ?, 0, 0, ?, 0, NULL, ?, ?, NULL, NULL, NULL, 0, 0, 0, 0)`;
const UPDATE_ACK = `UPDATE message_rows SET
  restarted        = max(restarted, ?),
  restart_in_doubt = max(restart_in_doubt, ?),
  restart_attempts = max(restart_attempts, ?),
  acked            = max(acked, ?),
  extensions       = max(extensions, ?),
  updated_at       = ?,
  restarted_at     = coalesce(restarted_at, ?),
  acked_at         = coalesce(acked_at, ?),
  skip_reason      = coalesce(skip_reason, ?),
  restart_audited  = max(restart_audited, ?),
  in_doubt_audited = max(in_doubt_audited, ?)
WHERE id = ?`;

export interface RowWriter {
  readonly insertRow: Database.Statement;
  readonly updateRow: Database.Statement;
  readonly insertFirst: Database.Statement;
  readonly updateAck: Database.Statement;
}

export function prepareRowWriter(db: Database.Database): RowWriter {
  return {
    insertRow: db.prepare(INSERT_ROW),
    updateRow: db.prepare(UPDATE_ROW),
    insertFirst: db.prepare(INSERT_FIRST),
    updateAck: db.prepare(UPDATE_ACK),
  };
}

type Field = RecordColumn['field'];

/**
 * The fields each fast statement binds. A patch fits a statement when every other column of the record's
 * table (storage/columns.ts) holds its neutral value; the checks below are written out (they run twice
 * per message), and test/unit/record-columns.test.ts holds them to that table column by column, so a
 * column added there fails the test until it is either bound here or checked neutral.
 */
export const FIRST_FIELDS: readonly Field[] = [
  'instanceName',
  'hostname',
  'publishedAt',
  'restartClaimed',
  'saved',
  'deliveries',
];
export const ACK_FIELDS: readonly Field[] = [
  'restarted',
  'restartInDoubt',
  'restartAttempts',
  'acked',
  'extensions',
  'skipReason',
  'restartAudited',
  'inDoubtAudited',
];

/** Fields neither a first write nor an ack sets: neutral in both shapes. */
function neutralForBoth(p: RecordPatch): boolean {
  return (
    !p.deadLettered && p.restartReleased === 0 && p.lastError === null && p.httpCalls === 0 && p.httpCallsFailed === 0
  );
}

/** A message's first write as the save and the claim make it: only {@link FIRST_FIELDS} are set. */
export function isFirstShape(p: RecordPatch): boolean {
  return (
    neutralForBoth(p) &&
    !p.restarted &&
    !p.restartInDoubt &&
    p.restartAttempts === 0 &&
    !p.acked &&
    p.extensions === 0 &&
    p.skipReason === null &&
    !p.restartAudited &&
    !p.inDoubtAudited
  );
}

/** An ack's (or markRestarted's) write: only {@link ACK_FIELDS} are set. */
export function isAckShape(p: RecordPatch): boolean {
  return (
    neutralForBoth(p) &&
    p.instanceName === null &&
    p.hostname === null &&
    p.publishedAt === null &&
    !p.saved &&
    p.restartClaimed === 0 &&
    p.deliveries === 0
  );
}

/** Write the flush's patches (one per message, `row` null for a new one); returns the rows written. */
export function writeRows(
  w: RowWriter,
  ids: IdIndex,
  pending: ReadonlyMap<string, { readonly row: number | null | undefined; readonly patch: RecordPatch | undefined }>,
  now: number,
): number {
  let writes = 0;
  for (const [messageId, { row, patch: p }] of pending) {
    if (p === undefined) continue;
    writes++;
    const restartedAt = p.restarted ? now : null;
    const ackedAt = p.acked ? now : null;
    if (row == null && isFirstShape(p)) {
      const uuid = isUuid(messageId) ? 1 : 0;
      w.insertFirst.run(
        ids.allocate(messageId),
        uuid,
        messageId,
        messageId,
        p.instanceName,
        p.hostname,
        p.publishedAt,
        p.restartClaimed,
        +p.saved,
        p.deliveries,
        now,
        now,
      );
    } else if (row == null) {
      const uuid = isUuid(messageId) ? 1 : 0;
      w.insertRow.run(
        ids.allocate(messageId),
        uuid,
        messageId,
        messageId,
        p.instanceName,
        p.hostname,
        p.publishedAt,
        +p.restarted,
        p.restartClaimed,
        p.restartReleased,
        +p.restartInDoubt,
        p.restartAttempts,
        +p.saved,
        +p.acked,
        p.extensions,
        p.deliveries,
        +p.deadLettered,
        p.lastError,
        now,
        now,
        restartedAt,
        ackedAt,
        p.skipReason,
        p.httpCalls,
        p.httpCallsFailed,
        +p.restartAudited,
        +p.inDoubtAudited,
      );
    } else if (isAckShape(p)) {
      if (
        w.updateAck.run(
          +p.restarted,
          +p.restartInDoubt,
          p.restartAttempts,
          +p.acked,
          p.extensions,
          now,
          restartedAt,
          ackedAt,
          p.skipReason,
          +p.restartAudited,
          +p.inDoubtAudited,
          row,
        ).changes !== 1
      )
        throw new Error(`row ${row} of message ${JSON.stringify(messageId)} is missing`);
    } else if (
      w.updateRow.run(
        p.instanceName,
        p.hostname,
        p.publishedAt,
        +p.restarted,
        p.restartClaimed,
        p.restartReleased,
        +p.restartInDoubt,
        p.restartAttempts,
        +p.saved,
        +p.acked,
        p.extensions,
        p.deliveries,
        +p.deadLettered,
        p.lastError,
        now,
        restartedAt,
        ackedAt,
        p.skipReason,
        p.httpCalls,
        p.httpCallsFailed,
        +p.restartAudited,
        +p.inDoubtAudited,
        row,
      ).changes !== 1
    ) {
      throw new Error(`row ${row} of message ${JSON.stringify(messageId)} is missing`);
    }
  }
  return writes;
}
