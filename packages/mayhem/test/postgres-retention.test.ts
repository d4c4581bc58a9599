/**
 * Retention on PostgreSQL: the same rules as SQLite, small batches, and one pruner at a time in a
 * fleet (an advisory lock held by another session makes a pass skip). Ages are simulated by moving
 * the records' timestamps back in the database.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { pino } from 'pino';
import { openPostgresStorage, type PostgresStorage } from '../src/storage/postgres/storage.js';
import { RETENTION_LOCK_KEY } from '../src/storage/postgres/retention.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { auditRow } from './storage-contract.js';

const silent = pino({ level: 'silent' });
let pgt: TestPostgres;
let url: string;

beforeAll(async () => {
  pgt = await startTestPostgres();
  url = (await pgt.createDatabase()).url;
});
afterAll(async () => {
  await pgt?.close();
});

const req = (messageId: string) => ({ messageId, instanceName: 'cattle-ab12', publishedAt: 1_700_000_000_000 });
const DAY = 86_400_000;

async function sql<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}
const age = (ids: string[], days: number) =>
  sql(
    `UPDATE messages SET created_at = created_at - make_interval(days => $2), updated_at = updated_at - make_interval(days => $2) WHERE message_id = ANY($1)`,
    [ids, days],
  );

async function acked(s: PostgresStorage, id: string): Promise<void> {
  await Promise.all([s.claimRestart(req(id), 1, 'claim'), s.saveMessage(req(id), 1)]);
  await s.markAcked({
    messageId: id,
    extensions: 0,
    attempts: 1,
    restartDone: true,
    audit: [auditRow(id, 'restarted')],
  });
}

describe('postgres retention', () => {
  it('deletes acked records after --retention and dead letters after theirs, never unfinished ones, in batches', async () => {
    const s = await openPostgresStorage({
      url,
      logger: silent,
      retentionMs: 7 * DAY,
      deadLetterRetentionMs: 30 * DAY,
      retentionEveryMs: 3_600_000,
    });
    try {
      const old = Array.from({ length: 2_500 }, () => randomUUID());
      await Promise.all(old.map((id) => acked(s, id)));
      const dead = randomUUID();
      await s.saveMessage(req(dead), 5);
      await s.deadLetter({ request: req(dead), payload: '{}', reason: 'gave up', deliveries: 5 });
      const open = randomUUID();
      await Promise.all([s.claimRestart(req(open), 1, 'claim'), s.saveMessage(req(open), 1)]);
      const young = randomUUID();
      await acked(s, young);
      await age([...old, dead, open], 8);
      await sql(`UPDATE dead_letters SET created_at = created_at - interval '8 days'`);

      await s.retention.pass();
      expect(s.retention.stats.rows).toBe(2_500);
      expect(s.retention.stats.batches).toBeGreaterThanOrEqual(3); // 1,000 rows a batch
      expect(
        (await sql<{ message_id: string }>('SELECT message_id FROM messages ORDER BY message_id'))
          .map((r) => r.message_id)
          .sort(),
      ).toEqual([dead, open, young].sort());
      expect(await s.claimRestart(req(old[0]!), 2, 'look')).toBe('free');

      await age([dead, open], 30);
      await sql(`UPDATE dead_letters SET created_at = created_at - interval '30 days'`);
      await s.retention.pass();
      expect(
        (await sql<{ message_id: string }>('SELECT message_id FROM messages ORDER BY message_id'))
          .map((r) => r.message_id)
          .sort(),
      ).toEqual([open, young].sort());
      expect(await sql('SELECT * FROM dead_letters')).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('one pruner at a time in a fleet: while another session holds the lock, a pass deletes nothing', async () => {
    const a = await openPostgresStorage({ url, logger: silent, retentionMs: DAY, retentionEveryMs: 3_600_000 });
    const b = await openPostgresStorage({ url, logger: silent, retentionMs: DAY, retentionEveryMs: 3_600_000 });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      const ids = Array.from({ length: 50 }, () => randomUUID());
      await Promise.all(ids.map((id) => acked(a, id)));
      await age(ids, 2);
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [RETENTION_LOCK_KEY.toString()]);
      await Promise.all([a.retention.pass(), b.retention.pass()]);
      expect(a.retention.stats.skipped + b.retention.stats.skipped).toBe(2);
      expect(
        (await sql<{ n: string }>('SELECT count(*) AS n FROM messages WHERE message_id = ANY($1)', [ids]))[0]!.n,
      ).toBe('50');
      await holder.query('COMMIT');
      await Promise.all([a.retention.pass(), b.retention.pass()]);
      expect(a.retention.stats.rows + b.retention.stats.rows).toBe(50);
    } finally {
      await holder.end();
      await Promise.all([a.close(), b.close()]);
    }
  });
});
