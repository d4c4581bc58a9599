/** The PostgreSQL adapter's two batched statements (postgres/storage.ts sends them). */

// The merge rules of record-patch.ts, in SQL: a batch's writes to one message are folded into one
// patch (runWrites), and ON CONFLICT folds it into the stored row the same way. Change one, change
// the other: the storage contract's property test compares them.
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
INSERT INTO messages AS m (
  message_id, instance_name, hostname, published_at, saved, deliveries, restarted, restart_attempts,
  restarted_at, acked, extensions, acked_at, dead_lettered, last_error, restart_claimed, restart_released, restart_in_doubt, skip_reason,
  http_calls, http_calls_failed, restart_audited, in_doubt_audited)
SELECT t.message_id, t.instance_name, t.hostname, to_timestamp(t.published_at / 1000.0), coalesce(t.saved, false),
  coalesce(t.deliveries, 0), coalesce(t.restarted, false), coalesce(t.restart_attempts, 0), CASE WHEN t.restarted THEN now() END,
  coalesce(t.acked, false), coalesce(t.extensions, 0), CASE WHEN t.acked THEN now() END, coalesce(t.dead_lettered, false),
  t.last_error, coalesce(t.restart_claimed, 0), coalesce(t.restart_released, 0), coalesce(t.restart_in_doubt, false), t.skip_reason,
  coalesce(t.http_calls, 0), coalesce(t.http_calls_failed, 0), coalesce(t.restart_audited, false), coalesce(t.in_doubt_audited, false)
FROM json_to_recordset($1::json) AS t(message_id text, instance_name text, hostname text, published_at float8, saved boolean,
  deliveries int, restarted boolean, restart_attempts int, acked boolean, extensions int, dead_lettered boolean, last_error text,
  restart_claimed int, restart_released int, restart_in_doubt boolean, skip_reason text, http_calls int, http_calls_failed int,
  restart_audited boolean, in_doubt_audited boolean)
WHERE (SELECT CASE WHEN $3::bool THEN set_config('synchronous_commit', 'off', true) ELSE 'on' END) IS NOT NULL
ORDER BY t.message_id
ON CONFLICT (message_id) DO UPDATE SET
  instance_name    = coalesce(m.instance_name, EXCLUDED.instance_name),
  hostname         = coalesce(m.hostname, EXCLUDED.hostname),
  published_at     = coalesce(m.published_at, EXCLUDED.published_at),
  restart_claimed  = greatest(m.restart_claimed, EXCLUDED.restart_claimed),
  restart_released = greatest(m.restart_released, EXCLUDED.restart_released),
  restart_in_doubt = m.restart_in_doubt OR EXCLUDED.restart_in_doubt,
  skip_reason      = coalesce(m.skip_reason, EXCLUDED.skip_reason),
  saved            = m.saved OR EXCLUDED.saved,
  deliveries       = greatest(m.deliveries, EXCLUDED.deliveries),
  restarted        = m.restarted OR EXCLUDED.restarted,
  restart_attempts = greatest(m.restart_attempts, EXCLUDED.restart_attempts),
  restarted_at     = CASE WHEN m.restarted THEN m.restarted_at ELSE EXCLUDED.restarted_at END,
  acked            = m.acked OR EXCLUDED.acked,
  extensions       = greatest(m.extensions, EXCLUDED.extensions),
  acked_at         = CASE WHEN m.acked THEN m.acked_at ELSE EXCLUDED.acked_at END,
  dead_lettered    = m.dead_lettered OR EXCLUDED.dead_lettered,
  last_error       = coalesce(EXCLUDED.last_error, m.last_error),
  http_calls       = greatest(m.http_calls, EXCLUDED.http_calls),
  http_calls_failed = greatest(m.http_calls_failed, EXCLUDED.http_calls_failed),
  restart_audited  = m.restart_audited OR EXCLUDED.restart_audited,
  in_doubt_audited = m.in_doubt_audited OR EXCLUDED.in_doubt_audited,
  updated_at       = now()`;

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
