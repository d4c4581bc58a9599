/**
 * The SQLite schema, its migrations, and how message ids are stored.
 *
 * Built to keep its speed as the table grows (issue 11), with random UUIDs as ids:
 *
 * - `message_rows` is a rowid table in arrival order: a new message appends to its last page, and
 *   the writes that follow (claim, ack) land on recent pages, so a message costs about the same at
 *   ten rows or ten million. Each row is written in place, never moved.
 * - `message_ids` maps a message id to its row: the only structure keyed by the random id. SQLite
 *   would update such an index on every insert, dirtying a random page per message (4 KB of WAL per
 *   message at a million rows, and the cost per message doubling from 100k to 1M). Instead the
 *   storage keeps the newest rows' ids in memory and adds them to `message_ids` in batches sorted by
 *   key range, so one page write carries many ids (see sqlite/id-index.ts). `meta.indexed_below`
 *   says which rows are certainly indexed; on open the rest are indexed first.
 * - A canonical (lowercase) UUID is stored as its 16 bytes: half the index of its 36-character
 *   text. Any other id is stored as text; BLOB and TEXT values never compare equal, so the two
 *   kinds cannot collide.
 * - The view `messages` shows every row with its id as text, with the same columns as the
 *   PostgreSQL adapter's `messages` table (plus `id`), for operators and their queries.
 */
import type Database from 'better-sqlite3';
import { MAYHEM_APPLICATION_ID } from './file.js';

/** The schema version this code writes; `PRAGMA user_version` holds the file's. */
export const SCHEMA_VERSION = 7;

const COLUMNS = `
  instance_name    TEXT,
  hostname         TEXT,
  published_at     INTEGER,
  restarted        INTEGER NOT NULL DEFAULT 0,
  restart_claimed  INTEGER NOT NULL DEFAULT 0,
  restart_released INTEGER NOT NULL DEFAULT 0,
  restart_in_doubt INTEGER NOT NULL DEFAULT 0,
  restart_attempts INTEGER NOT NULL DEFAULT 0,
  saved            INTEGER NOT NULL DEFAULT 0,
  acked            INTEGER NOT NULL DEFAULT 0,
  extensions       INTEGER NOT NULL DEFAULT 0,
  deliveries       INTEGER NOT NULL DEFAULT 0,
  dead_lettered    INTEGER NOT NULL DEFAULT 0,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  restarted_at     INTEGER,
  acked_at         INTEGER`;

/** Every column of a message record after the id, in table order (as of v3; v4 adds skip_reason). */
export const RECORD_COLUMNS = COLUMNS.trim()
  .split('\n')
  .map((line) => line.trim().split(/\s+/)[0]!);

/** The text form of a stored id (16 bytes → canonical UUID), in SQL. */
const idText = (col: string): string =>
  `CASE WHEN typeof(${col}) = 'blob' THEN lower(substr(hex(${col}), 1, 8) || '-' || substr(hex(${col}), 9, 4) || '-' || ` +
  `substr(hex(${col}), 13, 4) || '-' || substr(hex(${col}), 17, 4) || '-' || substr(hex(${col}), 21, 12)) ELSE ${col} END`;

const SCHEMA_V3 = `
CREATE TABLE message_rows (
  id               INTEGER PRIMARY KEY,
  message_id       BLOB NOT NULL, -- BLOB affinity: 16 bytes or text, stored as given${COLUMNS}
);
CREATE TABLE message_ids (
  message_id BLOB PRIMARY KEY NOT NULL,
  id         INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
  id          INTEGER PRIMARY KEY,
  message_id  TEXT,
  payload     TEXT NOT NULL,
  reason      TEXT NOT NULL,
  deliveries  INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_message_id ON dead_letters (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at);
CREATE VIEW messages AS SELECT id, ${idText('message_id')} AS message_id, ${RECORD_COLUMNS.join(', ')} FROM message_rows;
INSERT INTO meta (key, value) VALUES ('indexed_below', 1);
`;

// A v1/v2 file: its `messages` table (TEXT primary key, WITHOUT ROWID) becomes rows in arrival
// order and the id index. v1 lacks the restart-intent columns (added by v2).
const FROM_V2 = (hasIntent: boolean): string => `
ALTER TABLE messages RENAME TO messages_v2;
${SCHEMA_V3}
INSERT INTO message_rows (message_id, ${RECORD_COLUMNS.join(', ')})
  SELECT ${keySql('message_id')}, ${RECORD_COLUMNS.map((c) => (!hasIntent && /^restart_(claimed|released|in_doubt)$/.test(c) ? '0' : c)).join(', ')}
  FROM messages_v2 ORDER BY created_at, message_id;
INSERT INTO message_ids (message_id, id) SELECT message_id, id FROM message_rows ORDER BY message_id;
UPDATE meta SET value = (SELECT coalesce(max(id), 0) + 1 FROM message_rows) WHERE key = 'indexed_below';
DROP TABLE messages_v2;
`;

// v4: the safety rails. A skipped restart's reason on its row; when each host was last restarted
// (the per-host interval); the audit trail, one row per decision. The kill switch is meta's 'pause'.
const SCHEMA_V4 = `
ALTER TABLE message_rows ADD COLUMN skip_reason TEXT;
DROP VIEW messages;
CREATE VIEW messages AS SELECT id, ${idText('message_id')} AS message_id, ${RECORD_COLUMNS.join(', ')}, skip_reason FROM message_rows;
CREATE TABLE host_restarts (
  host TEXT PRIMARY KEY NOT NULL,
  at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE audit (
  id         INTEGER PRIMARY KEY,
  at         INTEGER NOT NULL,
  instance   TEXT NOT NULL,
  host       TEXT NOT NULL,
  message_id TEXT NOT NULL,
  executor   TEXT NOT NULL,
  outcome    TEXT NOT NULL,
  reason     TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
`;

// v5: no (host, at) index on the audit trail. Hosts arrive in random order, so each row was a write
// in a random page of a growing index: 10.2k vs 23.3k msg/s in the SQLite pipeline case (200,000
// messages, alternating). `mayhem audit --host` walks the time index instead (retention bounds it).
const SCHEMA_V5 = `DROP INDEX IF EXISTS audit_host_at;`;

// v6: chaos experiments (issue 20). Webhook calls per message, begun and known to have done nothing
// (--http-max-calls survives redelivery); the audit row's request instance and experiment (only
// rows of an experiment are indexed: without one, a decision costs no more than before); each
// instance's run of an experiment; the probes' checks over time.
const SCHEMA_V6 = `
ALTER TABLE message_rows ADD COLUMN http_calls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE message_rows ADD COLUMN http_calls_failed INTEGER NOT NULL DEFAULT 0;
DROP VIEW messages;
CREATE VIEW messages AS SELECT id, ${idText('message_id')} AS message_id, ${RECORD_COLUMNS.join(', ')}, skip_reason, http_calls, http_calls_failed FROM message_rows;
ALTER TABLE audit ADD COLUMN instance_name TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN experiment TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_experiment ON audit (experiment, at) WHERE experiment <> '';
CREATE TABLE experiment_runs (
  id         INTEGER PRIMARY KEY,
  experiment TEXT NOT NULL,
  instance   TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  ended_at   INTEGER,
  end_reason TEXT NOT NULL DEFAULT '',
  settings   TEXT NOT NULL
);
CREATE INDEX experiment_runs_experiment ON experiment_runs (experiment);
CREATE TABLE probe_checks (
  id         INTEGER PRIMARY KEY,
  experiment TEXT NOT NULL,
  instance   TEXT NOT NULL,
  at         INTEGER NOT NULL,
  probe      TEXT NOT NULL,
  phase      TEXT NOT NULL,
  ok         INTEGER NOT NULL,
  latency_ms REAL NOT NULL,
  value      REAL,
  reason     TEXT NOT NULL
);
CREATE INDEX probe_checks_experiment ON probe_checks (experiment, at);
CREATE INDEX probe_checks_at ON probe_checks (at);
`;

// v7: a crash-safe audit (issue 23). The `restarted` and `in-doubt` audit rows are written in the
// same transaction as the record that carries them, and the record says so: a redelivery finds a
// restart done but unaudited (and writes its row, recovered), or its doubt audited (and writes no
// second row). Rows of earlier versions wrote their audit apart from the record and cannot say:
// they read as audited (the default 1; a new row is always written with its own value), so no row
// is repeated for them. ADD COLUMN with a default rewrites nothing.
const SCHEMA_V7 = `
ALTER TABLE message_rows ADD COLUMN restart_audited INTEGER NOT NULL DEFAULT 1;
ALTER TABLE message_rows ADD COLUMN in_doubt_audited INTEGER NOT NULL DEFAULT 1;
DROP VIEW messages;
CREATE VIEW messages AS SELECT id, ${idText('message_id')} AS message_id, ${RECORD_COLUMNS.join(', ')}, skip_reason, http_calls, http_calls_failed,
  restart_audited, in_doubt_audited FROM message_rows;
`;

/** In SQL, for migrated rows: the stored key of a text id (as {@link KEY_SQL} makes it). */
function keySql(col: string): string {
  const pattern = [8, 4, 4, 4, 12].map((n) => '[0-9a-f]'.repeat(n)).join('-');
  return `CASE WHEN ${col} GLOB '${pattern}' THEN unhex(replace(${col}, '-', '')) ELSE ${col} END`;
}

/** A mayhem file from before the application_id stamp: schema v1 or v2 with exactly our tables. */
export const LEGACY_FILES = {
  legacy: (tables: readonly string[], userVersion: number): boolean =>
    (userVersion === 1 || userVersion === 2) && tables.join(',') === 'dead_letters,messages',
};

/**
 * Create or migrate the schema to {@link SCHEMA_VERSION} (tests make older files with `upTo`), in
 * one transaction.
 */
export function migrate(db: Database.Database, upTo = SCHEMA_VERSION): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(`schema version ${version} is newer than this mayhem supports (${SCHEMA_VERSION})`);
  }
  if (version >= upTo && db.pragma('application_id', { simple: true }) === MAYHEM_APPLICATION_ID) return;
  db.transaction(() => {
    if (version === 0) db.exec(SCHEMA_V3);
    else if (version < 3) db.exec(FROM_V2(version >= 2));
    if (version < 4 && upTo >= 4) db.exec(SCHEMA_V4);
    if (version < 5 && upTo >= 5) db.exec(SCHEMA_V5);
    if (version < 6 && upTo >= 6) db.exec(SCHEMA_V6);
    if (version < 7 && upTo >= 7) db.exec(SCHEMA_V7);
    db.pragma(`application_id = ${MAYHEM_APPLICATION_ID}`);
    db.pragma(`user_version = ${Math.max(version, upTo)}`);
  }).immediate();
}

/** Whether an id is a canonical (lowercase, dashed) UUID, stored as its 16 bytes. */
export function isUuid(id: string): boolean {
  if (id.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = id.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false;
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) {
      return false;
    }
  }
  return true;
}

/**
 * In SQL, the stored key of an id bound as three parameters `(isUuid, id, id)`: {@link keyArgs}.
 * The conversion runs in SQLite (unhex skips the dashes), so no Buffer per message.
 */
export const KEY_SQL = `CASE WHEN ? THEN unhex(?, '-') ELSE ? END`;

/** The three parameters {@link KEY_SQL} takes. */
export function keyArgs(id: string): [number, string, string] {
  return [isUuid(id) ? 1 : 0, id, id];
}

/** Key-range buckets of the id index: 256 by a UUID's first byte, and one for text ids. */
export const BUCKETS = 257;

/** The key-range bucket of a message id (ids in one bucket are neighbours in `message_ids`). */
export function bucketOf(id: string): number {
  if (!isUuid(id)) return 256;
  const hi = id.charCodeAt(0);
  const lo = id.charCodeAt(1);
  return ((hi <= 57 ? hi - 48 : hi - 87) << 4) | (lo <= 57 ? lo - 48 : lo - 87);
}
