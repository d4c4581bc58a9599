/**
 * Retention for the PostgreSQL storage, with the SQLite adapter's rules (see sqlite/retention.ts):
 * acked records after `retentionMs`, dead letters and dead-lettered records after
 * `deadLetterRetentionMs`, unfinished records never, 0 keeps everything.
 *
 * Every instance of a fleet runs a pruner; they agree through a transaction-level advisory lock
 * taken with `pg_try_advisory_xact_lock` in each batch's transaction: one instance deletes a batch
 * at a time, the others find the lock taken and skip their pass. Batches are small (1,000 rows by
 * the `created_at` index, oldest first) so each holds its row locks briefly and never a long
 * transaction; `SKIP LOCKED` steps around a row an instance is updating right now. The work runs
 * on the server: the event loop only awaits it.
 */
import type { Logger } from 'pino';
import type pg from 'pg';

/** Key of the advisory lock that elects the pruning instance (next to the migration lock's key). */
export const RETENTION_LOCK_KEY = 7_361_102_835_117_002n;

export interface PgRetentionOptions {
  readonly retentionMs: number;
  readonly deadLetterRetentionMs: number;
  /** Time between passes (default 10 s). */
  readonly everyMs?: number;
  /** Rows per batch (default 1,000). */
  readonly batch?: number;
}

export interface PgRetentionStats {
  passes: number;
  /** Passes skipped because another instance held the pruning lock. */
  skipped: number;
  batches: number;
  rows: number;
  deadLetters: number;
}

export interface PgPruner {
  readonly stats: Readonly<PgRetentionStats>;
  /** One pass now; resolves when it is done (or was skipped). */
  pass(): Promise<void>;
  /** No more passes; resolves once a pass under way has finished its batch. */
  stop(): Promise<void>;
}

const DELETE_ROWS = `
WITH doomed AS (
  SELECT message_id FROM messages
  WHERE created_at < to_timestamp($1 / 1000.0)
    AND ((acked AND NOT dead_lettered AND updated_at < to_timestamp($2 / 1000.0)) OR (dead_lettered AND updated_at < to_timestamp($3 / 1000.0)))
  ORDER BY created_at
  LIMIT $4
  FOR UPDATE SKIP LOCKED
)
DELETE FROM messages m USING doomed WHERE m.message_id = doomed.message_id`;

const DELETE_DEAD_LETTERS = `
DELETE FROM dead_letters WHERE id IN (
  SELECT id FROM dead_letters WHERE created_at < to_timestamp($1 / 1000.0) ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
)`;

// The probes' checks are kept as long as the dead letters.
const DELETE_CHECKS = `
DELETE FROM probe_checks WHERE id IN (
  SELECT id FROM probe_checks WHERE at < to_timestamp($1 / 1000.0) ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED
)`;

export function startPgPruner(pool: pg.Pool, o: PgRetentionOptions, logger: Logger): PgPruner {
  const stats: PgRetentionStats = { passes: 0, skipped: 0, batches: 0, rows: 0, deadLetters: 0 };
  const size = o.batch ?? 1_000;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  /** One batch in its own transaction; undefined when another instance holds the lock. */
  const batch = async (cut: {
    acked: number;
    dead: number;
    scanBelow: number;
  }): Promise<{ rows: number; deadLetters: number } | undefined> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ held: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS held', [
        RETENTION_LOCK_KEY.toString(),
      ]);
      if (rows[0]?.held !== true) {
        await client.query('COMMIT');
        return undefined;
      }
      const deleted = (await client.query(DELETE_ROWS, [cut.scanBelow, cut.acked, cut.dead, size])).rowCount ?? 0;
      const deadLetters =
        cut.dead > 0 ? ((await client.query(DELETE_DEAD_LETTERS, [cut.dead, size])).rowCount ?? 0) : 0;
      if (cut.dead > 0) await client.query(DELETE_CHECKS, [cut.dead, size]);
      await client.query('COMMIT');
      return { rows: deleted, deadLetters };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  };

  const runPass = async (): Promise<void> => {
    const now = Date.now();
    const acked = o.retentionMs > 0 ? now - o.retentionMs : -1;
    const dead = o.deadLetterRetentionMs > 0 ? now - o.deadLetterRetentionMs : -1;
    const cut = { acked, dead, scanBelow: Math.max(acked, dead) };
    stats.passes++;
    while (!stopped) {
      let r: { rows: number; deadLetters: number } | undefined;
      try {
        r = await batch(cut);
      } catch (err) {
        // The database is down or busy: the storage's own writes report it; next pass retries.
        logger.debug(
          { err: err instanceof Error ? err.message : String(err) },
          'PostgreSQL retention batch failed; retrying next pass',
        );
        return;
      }
      if (r === undefined) {
        stats.skipped++;
        return;
      }
      stats.batches++;
      stats.rows += r.rows;
      stats.deadLetters += r.deadLetters;
      if (r.rows < size && r.deadLetters < size) return;
    }
  };

  const pass = (): Promise<void> => (running ??= runPass().finally(() => (running = undefined)));
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void pass().then(schedule), o.everyMs ?? 10_000);
    timer.unref();
  };
  if (o.retentionMs > 0 || o.deadLetterRetentionMs > 0) schedule();
  return {
    stats,
    pass,
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
