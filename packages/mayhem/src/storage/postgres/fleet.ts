/**
 * The fleet's settings and the blast radius in PostgreSQL (no schema change): the settings are the
 * `control` row 'settings' (read with the kill switch every half second, in full only when their
 * version moved), restart times are `host_restarts`, the hosts seen are the audit trail's. The blast
 * radius is taken under a transaction-level advisory lock, so two instances never both take the
 * last place in a window.
 */
import type pg from 'pg';
import { blastTake, type BlastTake } from '../../core/blast.js';
import type { PauseState, StoredSettings } from '../../core/rails.js';

/** First key of the two-key advisory lock space, reserved for the blast radius ("MBLS"). */
export const BLAST_NAMESPACE = 0x4d424c53;

export const STAMP_RESTART_SQL =
  'INSERT INTO host_restarts (host, at) VALUES ($1, to_timestamp($2 / 1000.0)) ON CONFLICT (host) DO UPDATE SET at = greatest(host_restarts.at, EXCLUDED.at)';

const STATE_SQL = `SELECT key, CASE WHEN key = 'settings' THEN value->'version' ELSE value END AS value
  FROM control WHERE key IN ('pause', 'settings')`;
const RESTARTED_SQL =
  'SELECT host, extract(epoch FROM at) * 1000 AS at FROM host_restarts WHERE at >= to_timestamp($1 / 1000.0)';

/** The kill switch and the settings' version, in one round trip. */
export async function readControlState(pool: pg.Pool): Promise<{ pause?: PauseState; settingsVersion: number }> {
  const { rows } = await pool.query<{ key: string; value: unknown }>({ name: 'mayhem_read_state', text: STATE_SQL });
  const pause = rows.find((r) => r.key === 'pause')?.value as PauseState | undefined;
  const version = Number(rows.find((r) => r.key === 'settings')?.value ?? 0);
  return pause === undefined ? { settingsVersion: version } : { pause, settingsVersion: version };
}

export async function readSettings(pool: pg.Pool): Promise<StoredSettings | undefined> {
  const { rows } = await pool.query<{ value: StoredSettings }>(`SELECT value FROM control WHERE key = 'settings'`);
  return rows[0]?.value;
}

/** Compare-and-set on the version; what is stored afterwards. */
export async function writeSettings(
  pool: pg.Pool,
  next: Omit<StoredSettings, 'version'>,
  expected: number,
): Promise<StoredSettings> {
  const value = JSON.stringify({ ...next, version: expected + 1 });
  if (expected === 0)
    await pool.query(`INSERT INTO control (key, value) VALUES ('settings', $1) ON CONFLICT (key) DO NOTHING`, [value]);
  else
    await pool.query(
      `UPDATE control SET value = $1, updated_at = now() WHERE key = 'settings' AND (value->>'version')::int = $2`,
      [value, expected],
    );
  const stored = await readSettings(pool);
  if (stored === undefined) throw new Error('the fleet settings were deleted while being replaced');
  return stored;
}

export async function restartedSince(pool: pg.Pool | pg.PoolClient, since: number): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ host: string; at: number }>(RESTARTED_SQL, [since]);
  return new Map(rows.map((r) => [r.host, Number(r.at)]));
}

export async function hostsSeenSince(pool: pg.Pool, since: number): Promise<Set<string>> {
  const { rows } = await pool.query<{ host: string }>(
    `SELECT DISTINCT host FROM audit WHERE at >= to_timestamp($1 / 1000.0) AND host <> '*'`,
    [since],
  );
  return new Set(rows.map((r) => r.host));
}

export async function takeBlast(
  pool: pg.Pool,
  host: string,
  at: number,
  since: number,
  cap: number,
): Promise<BlastTake> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1::int, 0)', [BLAST_NAMESPACE]);
    const take = blastTake(await restartedSince(client, since), host, cap);
    if (take.ok) await client.query(STAMP_RESTART_SQL, [host, at]);
    await client.query('COMMIT');
    return take;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
