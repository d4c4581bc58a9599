/** The PostgreSQL adapter's two batched statements (postgres/storage.ts sends them). */
import { neutralOf, RECORD_COLUMNS, type ColumnKind, type MergeRule, type RecordColumn } from '../columns.js';

// The merge rules of record-patch.ts, in SQL, built from the column table (storage/columns.ts): a
// batch's writes to one message are folded into one patch (runWrites), and ON CONFLICT folds it into
// the stored row by the same rules. The storage contract's property test compares them.
const SQL_TYPE: Record<ColumnKind, string> = { text: 'text', time: 'float8', flag: 'boolean', count: 'int' };
const fromJson = (c: RecordColumn): string =>
  c.kind === 'time'
    ? `to_timestamp(t.${c.column} / 1000.0)`
    : c.kind === 'text'
      ? `t.${c.column}`
      : `coalesce(t.${c.column}, ${String(neutralOf(c.kind))})`;
const MERGE: Record<MergeRule, (col: string) => string> = {
  first: (col) => `coalesce(m.${col}, EXCLUDED.${col})`,
  once: (col) => `m.${col} OR EXCLUDED.${col}`,
  highest: (col) => `greatest(m.${col}, EXCLUDED.${col})`,
  latest: (col) => `coalesce(EXCLUDED.${col}, m.${col})`,
};
const COLS: readonly RecordColumn[] = RECORD_COLUMNS;

export const WRITE_SQL = `
WITH dl AS (
  INSERT INTO dead_letters (message_id, payload, reason, deliveries)
  SELECT message_id, payload, reason, deliveries
  FROM json_to_recordset($2::json) AS d(message_id text, payload text, reason text, deliveries int)
  ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO UPDATE SET
    payload = EXCLUDED.payload, reason = EXCLUDED.reason,
    deliveries = greatest(dead_letters.deliveries, EXCLUDED.deliveries)
), au AS (
  INSERT INTO audit (at, instance, host, message_id, executor, outcome, reason, instance_name, experiment)
  SELECT to_timestamp(a.at / 1000.0), a.instance, a.host, a.message_id, a.executor, a.outcome, a.reason, a.instance_name, a.experiment
  FROM json_to_recordset($4::json) AS a(at float8, instance text, host text, message_id text, executor text, outcome text,
    reason text, instance_name text, experiment text)
)
INSERT INTO messages AS m (message_id, ${COLS.map((c) => c.column).join(', ')}, restarted_at, acked_at)
SELECT t.message_id, ${COLS.map(fromJson).join(', ')},
  CASE WHEN t.restarted THEN now() END, CASE WHEN t.acked THEN now() END
FROM json_to_recordset($1::json) AS t(message_id text, ${COLS.map((c) => `${c.column} ${SQL_TYPE[c.kind]}`).join(', ')})
WHERE (SELECT CASE WHEN $3::bool THEN set_config('synchronous_commit', 'off', true) ELSE 'on' END) IS NOT NULL
ORDER BY t.message_id
ON CONFLICT (message_id) DO UPDATE SET
  ${COLS.map((c) => `${c.column} = ${MERGE[c.rule](c.column)}`).join(',\n  ')},
  restarted_at = CASE WHEN m.restarted THEN m.restarted_at ELSE EXCLUDED.restarted_at END,
  acked_at = CASE WHEN m.acked THEN m.acked_at ELSE EXCLUDED.acked_at END,
  updated_at = now()`;

// Reads the restart state of each claimed message (as MessageRecord/restartStateOf define it) and, in
// the same statement, records the intent of the claims that may restart. One round trip per batch.
export const CLAIM_SQL = `
WITH input AS (
  SELECT * FROM json_to_recordset($1::json)
    AS t(message_id text, instance_name text, hostname text, published_at float8, delivery int, mode text)
), found AS (
  SELECT input.*,
    CASE WHEN msg.message_id IS NULL THEN 'free'
         WHEN msg.instance_name IS NOT NULL AND msg.instance_name <> input.instance_name THEN 'conflict'
         WHEN msg.restarted AND msg.restart_audited THEN 'done'
         WHEN msg.restarted THEN 'done-unaudited'
         WHEN msg.restart_claimed > msg.restart_released AND msg.in_doubt_audited THEN 'in-doubt-audited'
         WHEN msg.restart_claimed > msg.restart_released THEN 'in-doubt'
         ELSE 'free' END AS state
  FROM input LEFT JOIN messages msg ON msg.message_id = input.message_id
), claimed AS (
  INSERT INTO messages AS m (message_id, instance_name, hostname, published_at, restart_claimed)
  SELECT message_id, instance_name, hostname, to_timestamp(published_at / 1000.0), delivery FROM found
  WHERE (state = 'free' AND mode <> 'look') OR (state IN ('in-doubt', 'in-doubt-audited') AND mode = 'claim-in-doubt')
  ORDER BY message_id
  ON CONFLICT (message_id) DO UPDATE SET
    instance_name   = coalesce(m.instance_name, EXCLUDED.instance_name),
    hostname        = coalesce(m.hostname, EXCLUDED.hostname),
    published_at    = coalesce(m.published_at, EXCLUDED.published_at),
    restart_claimed = greatest(m.restart_claimed, EXCLUDED.restart_claimed),
    updated_at      = now()
)
SELECT message_id, state FROM found`;
