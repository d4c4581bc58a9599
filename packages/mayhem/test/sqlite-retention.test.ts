/**
 * Retention in the SQLite storage, with a simulated clock: what expires goes (settled only, each kind
 * after its own window), what does not stays findable, deletion runs in bounded batches with the
 * event loop's turns between them, and ids deleted while still only in memory are forgotten.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/config.js';
import { openSqliteStorage, type SqliteStorage } from '../src/storage/sqlite/storage.js';
import { query, silent, tempDir } from './sqlite-helpers.js';
import { auditRow } from './storage-contract.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const DAY = 86_400_000;
const req = (messageId: string) => ({ messageId, instanceName: 'cattle-ab12', publishedAt: 1_700_000_000_000 });

// With its restarted row, as the pipeline writes it (`audited` false: the file's size is the records' alone).
async function acked(s: SqliteStorage, id: string, audited = true): Promise<void> {
  await Promise.all([s.claimRestart(req(id), 1, 'claim'), s.saveMessage(req(id), 1)]);
  await s.markAcked({
    messageId: id,
    extensions: 0,
    attempts: 1,
    restartDone: true,
    audit: audited ? [auditRow(id, 'restarted')] : undefined,
  });
}
async function deadLettered(s: SqliteStorage, id: string): Promise<void> {
  await s.saveMessage(req(id), 5);
  await s.deadLetter({ request: req(id), payload: JSON.stringify(req(id)), reason: 'gave up', deliveries: 5 });
}
async function unfinished(s: SqliteStorage, id: string): Promise<void> {
  await Promise.all([s.claimRestart(req(id), 1, 'claim'), s.saveMessage(req(id), 1)]);
}

describe('sqlite retention', () => {
  it('deletes acked records after --retention and dead letters after theirs; never unfinished ones', async () => {
    const path = tmp.file();
    let clock = 1_000 * DAY;
    const s = openSqliteStorage({
      path,
      logger: silent,
      now: () => clock,
      retentionMs: 7 * DAY,
      deadLetterRetentionMs: 30 * DAY,
    });
    const old = { acked: randomUUID(), dead: randomUUID(), open: randomUUID() };
    await acked(s, old.acked);
    await deadLettered(s, old.dead);
    await unfinished(s, old.open);
    await s.deadLetter({ payload: 'not json', reason: 'malformed', deliveries: 1 });
    clock += 8 * DAY;
    const young = randomUUID();
    await acked(s, young);
    await s.retention.pass();
    // Eight days on: the acked record is gone (and not found: a redelivery would be new); the rest stays.
    expect(await s.claimRestart(req(old.acked), 2, 'look')).toBe('free');
    expect(await s.claimRestart(req(young), 2, 'look')).toBe('done');
    expect(await s.claimRestart(req(old.open), 2, 'look')).toBe('in-doubt');
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages')).toEqual([{ n: 3 }]);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM dead_letters')).toEqual([{ n: 2 }]);
    clock += 25 * DAY;
    await s.retention.pass();
    // 33 days: dead letters and the dead-lettered record go too; the unfinished one never does.
    expect(query<{ message_id: string }>(path, 'SELECT message_id FROM messages ORDER BY id')).toEqual([
      { message_id: old.open },
    ]);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM dead_letters')).toEqual([{ n: 0 }]);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_ids')).toEqual([{ n: 0 }]); // old.open is still only in memory
    expect(s.retention.stats).toMatchObject({ rows: 3, deadLetters: 2 });
    await s.close();
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_ids')).toEqual([{ n: 1 }]);
  });

  it('0 keeps everything', async () => {
    const path = tmp.file();
    let clock = 1_000 * DAY;
    const s = openSqliteStorage({ path, logger: silent, now: () => clock, retentionMs: 0, deadLetterRetentionMs: 0 });
    await acked(s, randomUUID());
    await deadLettered(s, randomUUID());
    clock += 10_000 * DAY;
    await s.retention.pass();
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages')).toEqual([{ n: 2 }]);
    expect(s.retention.stats.rows).toBe(0);
    await s.close();
  });

  it('deletes in bounded batches, the loop turning between them, the index kept exact', async () => {
    const path = tmp.file();
    let clock = 1_000 * DAY;
    // A small index threshold: most ids are in the index, the newest only in memory.
    const s = openSqliteStorage({ path, logger: silent, now: () => clock, retentionMs: DAY, indexBatchAfter: 1_000 });
    const ids = Array.from({ length: 20_000 }, () => randomUUID());
    for (let i = 0; i < ids.length; i += 1_000) await Promise.all(ids.slice(i, i + 1_000).map((id) => acked(s, id)));
    clock += 2 * DAY;
    const keep = randomUUID();
    await acked(s, keep);
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    await s.retention.pass();
    clearInterval(ticker);
    const r = s.retention.stats;
    expect(r.rows).toBe(20_000);
    expect(r.batches).toBeGreaterThan(5);
    expect(r.largestBatch).toBeLessThanOrEqual(4_096);
    expect(turns).toBeGreaterThan(0);
    // Deleted ids that were in memory are forgotten: claiming one again starts a new record.
    expect(await s.claimRestart(req(ids[ids.length - 1]!), 2, 'claim')).toBe('free');
    expect(await s.claimRestart(req(ids[0]!), 2, 'claim')).toBe('free');
    expect(await s.claimRestart(req(keep), 2, 'look')).toBe('done');
    await s.close();
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_rows')).toEqual([{ n: 3 }]);
    expect(
      query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_ids i JOIN message_rows r ON r.id = i.id'),
    ).toEqual([{ n: 3 }]);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_ids')).toEqual([{ n: 3 }]);
  });

  it('freed pages are reused: the file stays the size of its window', async () => {
    const path = tmp.file();
    let clock = 1_000 * DAY;
    const s = openSqliteStorage({ path, logger: silent, now: () => clock, retentionMs: DAY, indexBatchAfter: 1_000 });
    const pages = (): number => query<{ n: number }>(path, 'SELECT page_count AS n FROM pragma_page_count()')[0]!.n;
    const day = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 1_000 }, () => acked(s, randomUUID(), false)));
      clock += DAY / 2;
      await s.retention.pass();
    };
    for (let d = 0; d < 4; d++) await day(); // the window fills
    const filled = pages();
    for (let d = 0; d < 8; d++) await day(); // three times as many messages again
    expect(pages()).toBeLessThan(filled * 1.3);
    await s.close();
  });
});

describe('--retention and --dead-letter-retention', () => {
  const resolve = (flags: Record<string, unknown>, env: Record<string, string> = {}) =>
    resolveConfig({ flags, env }, 'run');
  it('default to 7 and 30 days, take days, and 0 keeps everything', () => {
    expect(resolve({})).toMatchObject({ retention: 7 * DAY, deadLetterRetention: 30 * DAY });
    expect(resolve({ retention: '36h', deadLetterRetention: '0' })).toMatchObject({
      retention: 36 * 3_600_000,
      deadLetterRetention: 0,
    });
    expect(resolve({}, { MAYHEM_RETENTION: '2d', MAYHEM_DEAD_LETTER_RETENTION: '90d' })).toMatchObject({
      retention: 2 * DAY,
      deadLetterRetention: 90 * DAY,
    });
  });
  it('a bad value is one line naming where it came from', () => {
    expect(() => resolve({ retention: 'a week' })).toThrow(/^invalid --retention "a week": expected a duration/);
    expect(() => resolve({}, { MAYHEM_DEAD_LETTER_RETENTION: '-1d' })).toThrow(
      /^invalid MAYHEM_DEAD_LETTER_RETENTION "-1d"/,
    );
    expect(() => resolve({ retention: '99999d' })).toThrow(/^invalid --retention "99999d"/);
  });
});
