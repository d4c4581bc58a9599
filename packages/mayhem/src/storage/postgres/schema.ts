/**
 * The PostgreSQL schema and its migrations. Table and column names match the SQLite storage so
 * reports and tests can read either (times are timestamptz here).
 *
 * Migration runs in one transaction holding a transaction-level advisory lock, so several
 * instances starting at once apply each step exactly once; every step is idempotent DDL anyway.
 */
import type { PoolClient } from 'pg';

/** Key of the advisory lock taken around migration (64-bit key space; host locks use the 2×32-bit one). */
export const MIGRATION_LOCK_KEY = 7_361_102_835_117_001n;

interface Migration {
  readonly version: number;
  readonly statements: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: [
      `CREATE TABLE IF NOT EXISTS messages (
        message_id       text PRIMARY KEY,
        instance_name    text,
        hostname         text,
        published_at     timestamptz,
        restarted        boolean NOT NULL DEFAULT false,
        restart_attempts integer NOT NULL DEFAULT 0,
        saved            boolean NOT NULL DEFAULT false,
        acked            boolean NOT NULL DEFAULT false,
        extensions       integer NOT NULL DEFAULT 0,
        deliveries       integer NOT NULL DEFAULT 0,
        dead_lettered    boolean NOT NULL DEFAULT false,
        last_error       text,
        created_at       timestamptz NOT NULL DEFAULT now(),
        updated_at       timestamptz NOT NULL DEFAULT now(),
        restarted_at     timestamptz,
        acked_at         timestamptz
      ) WITH (fillfactor = 40)`, // room on each page for the 2 updates of a row: they stay HOT (no index write)
      `CREATE TABLE IF NOT EXISTS dead_letters (
        id          bigserial PRIMARY KEY,
        message_id  text,
        payload     text NOT NULL,
        reason      text NOT NULL,
        deliveries  integer NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      )`,
      // One dead letter per parsed message (a repeated dead-letter write updates it); malformed
      // payloads have no id and each gets its own row.
      `CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_message_id ON dead_letters (message_id) WHERE message_id IS NOT NULL`,
    ],
  },
  {
    // The restart intent (claimed before the executor runs, released when it did not restart) and
    // the in-doubt mark; see MessageRecord.restartClaimed.
    version: 2,
    statements: [
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS restart_claimed integer NOT NULL DEFAULT 0`,
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS restart_released integer NOT NULL DEFAULT 0`,
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS restart_in_doubt boolean NOT NULL DEFAULT false`,
    ],
  },
  {
    // Retention (postgres/retention.ts) walks the oldest records first. created_at never changes
    // after the insert, so updates stay HOT, and new entries append at the index's right edge.
    version: 3,
    statements: [
      `CREATE INDEX IF NOT EXISTS messages_created_at ON messages (created_at)`,
      `CREATE INDEX IF NOT EXISTS dead_letters_created_at ON dead_letters (created_at)`,
    ],
  },
  {
    // The safety rails (postgres/control.ts): a skipped restart's reason on its row; the kill switch;
    // when each host was last restarted, fleet-wide; the audit trail, one row per decision.
    version: 4,
    statements: [
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS skip_reason text`,
      `CREATE TABLE IF NOT EXISTS control (
        key        text PRIMARY KEY,
        value      jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
      `CREATE TABLE IF NOT EXISTS host_restarts (
        host text PRIMARY KEY,
        at   timestamptz NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS audit (
        id         bigserial PRIMARY KEY,
        at         timestamptz NOT NULL,
        instance   text NOT NULL,
        host       text NOT NULL,
        message_id text NOT NULL,
        executor   text NOT NULL,
        outcome    text NOT NULL,
        reason     text NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS audit_at ON audit (at)`,
    ],
  },
  {
    // Hosts arrive in random order: the (host, at) index cost a random index page per decision (in
    // SQLite it more than halved the pipeline's rate). `mayhem audit --host` walks audit_at instead.
    version: 5,
    statements: [`DROP INDEX IF EXISTS audit_host_at`],
  },
  {
    // Chaos experiments (issue 20): webhook calls per message, begun and known to have done nothing
    // (--http-max-calls survives redelivery); the audit row's request instance and experiment (only
    // an experiment's rows are indexed); each instance's run of an experiment; the probes' checks.
    version: 6,
    statements: [
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS http_calls integer NOT NULL DEFAULT 0`,
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS http_calls_failed integer NOT NULL DEFAULT 0`,
      `ALTER TABLE audit ADD COLUMN IF NOT EXISTS instance_name text NOT NULL DEFAULT ''`,
      `ALTER TABLE audit ADD COLUMN IF NOT EXISTS experiment text NOT NULL DEFAULT ''`,
      `CREATE INDEX IF NOT EXISTS audit_experiment ON audit (experiment, at) WHERE experiment <> ''`,
      `CREATE TABLE IF NOT EXISTS experiment_runs (
        id         bigserial PRIMARY KEY,
        experiment text NOT NULL,
        instance   text NOT NULL,
        started_at timestamptz NOT NULL,
        ended_at   timestamptz,
        end_reason text NOT NULL DEFAULT '',
        settings   jsonb NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS experiment_runs_experiment ON experiment_runs (experiment)`,
      `CREATE TABLE IF NOT EXISTS probe_checks (
        id         bigserial PRIMARY KEY,
        experiment text NOT NULL,
        instance   text NOT NULL,
        at         timestamptz NOT NULL,
        probe      text NOT NULL,
        phase      text NOT NULL,
        ok         boolean NOT NULL,
        latency_ms float8 NOT NULL,
        value      float8,
        reason     text NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS probe_checks_experiment ON probe_checks (experiment, at)`,
      `CREATE INDEX IF NOT EXISTS probe_checks_at ON probe_checks (at)`,
    ],
  },
  {
    // A crash-safe audit (issue 23): the `restarted` and `in-doubt` rows are written in the same
    // statement as the record that carries them, and the record says so (see MessageRecord
    // restartAudited). Rows of earlier versions read as audited (they cannot say, and most were):
    // added with the default true, stored without a rewrite, then false for every new row.
    version: 7,
    statements: [
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS restart_audited boolean NOT NULL DEFAULT true`,
      `ALTER TABLE messages ADD COLUMN IF NOT EXISTS in_doubt_audited boolean NOT NULL DEFAULT true`,
      `ALTER TABLE messages ALTER COLUMN restart_audited SET DEFAULT false`,
      `ALTER TABLE messages ALTER COLUMN in_doubt_audited SET DEFAULT false`,
    ],
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Create or upgrade the schema. Safe to run from many instances at once. Returns the version found before. */
export async function migrate(client: PoolClient): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_version (
      version    integer PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version');
    const before = rows[0]?.v ?? 0;
    if (before > SCHEMA_VERSION) {
      throw new Error(
        `the database schema is version ${before}, newer than this mayhem (${SCHEMA_VERSION}); upgrade mayhem`,
      );
    }
    for (const m of MIGRATIONS) {
      if (m.version <= before) continue;
      for (const sql of m.statements) await client.query(sql);
      await client.query('INSERT INTO schema_version (version) VALUES ($1) ON CONFLICT DO NOTHING', [m.version]);
    }
    await client.query('COMMIT');
    return before;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
