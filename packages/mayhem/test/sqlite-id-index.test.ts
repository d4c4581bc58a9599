/**
 * The SQLite layout that holds its speed as the table grows (sqlite/schema.ts, sqlite/id-index.ts):
 * rows in arrival order, the id index written in key-range batches from memory. What must hold:
 * every message stays findable — across batches, after close, after SIGKILL (ids that were only in
 * memory), after a failed transaction — with one row per id, and ids of every shape kept apart.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStorage } from '../src/storage/sqlite/storage.js';
import { query, readRecord, silent, tempDir } from './sqlite-helpers.js';
import { auditRow } from './storage-contract.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const here = dirname(fileURLToPath(import.meta.url));
const STORAGE = pathToFileURL(resolve(here, '../dist/src/storage/sqlite/storage.js')).href;

const req = (messageId: string, instanceName = 'cattle-ab12') => ({
  messageId,
  instanceName,
  publishedAt: 1_700_000_000_000,
});

/** One message life as the pipeline writes it: claim ∥ save, then the ack carrying the restart. */
async function life(s: ReturnType<typeof openSqliteStorage>, id: string): Promise<void> {
  const r = req(id);
  const [claim] = await Promise.all([s.claimRestart(r, 1, 'claim'), s.saveMessage(r, 1)]);
  expect(claim).toBe('free');
  await s.markAcked({
    messageId: id,
    extensions: 0,
    attempts: 1,
    restartDone: true,
    audit: [auditRow(id, 'restarted')],
  });
}

function invariants(path: string, expected: number): void {
  // One row per id, every row indexed exactly once, the index pointing at the right row.
  expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_rows')).toEqual([{ n: expected }]);
  expect(query<{ n: number }>(path, 'SELECT count(DISTINCT message_id) AS n FROM message_rows')).toEqual([
    { n: expected },
  ]);
  expect(
    query<{ n: number }>(
      path,
      'SELECT count(*) AS n FROM message_ids i JOIN message_rows r ON r.id = i.id AND r.message_id = i.message_id',
    ),
  ).toEqual([{ n: expected }]);
}

describe('sqlite id index', () => {
  it('finds every message across many index batches, and after reopening', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent, indexBatchAfter: 50 });
    const ids = Array.from({ length: 3_000 }, () => randomUUID());
    for (let i = 0; i < ids.length; i += 500) await Promise.all(ids.slice(i, i + 500).map((id) => life(s, id)));
    // Written to the index in batches while running: far fewer than 3,000 ids still in memory.
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_ids')[0]!.n).toBeGreaterThan(2_000);
    // A redelivery of each one, in the same process: found done, no second row.
    const again = await Promise.all(ids.map((id) => s.claimRestart(req(id), 2, 'claim')));
    expect(new Set(again)).toEqual(new Set(['done']));
    await s.close();
    invariants(path, 3_000);
    const t = openSqliteStorage({ path, logger: silent });
    expect(new Set(await Promise.all(ids.map((id) => t.claimRestart(req(id), 3, 'look'))))).toEqual(new Set(['done']));
    expect(await t.claimRestart(req(ids[0]!, 'cattle-zz99'), 3, 'look')).toBe('conflict');
    await t.close();
  });

  it('ids that were only in memory when the process was SIGKILLed are indexed on the next open', async () => {
    const path = tmp.file();
    const ids = Array.from({ length: 2_000 }, () => randomUUID());
    // A real process writes the lives (nothing reaches the index: the batch threshold is never
    // crossed), says so, and is killed without closing.
    const code = `
      import { pino } from 'pino';
      const { openSqliteStorage } = await import(${JSON.stringify(STORAGE)});
      const s = openSqliteStorage({ path: ${JSON.stringify(path)}, logger: pino({ level: 'silent' }) });
      const ids = ${JSON.stringify(ids)};
      await Promise.all(ids.map(async (messageId) => {
        const r = { messageId, instanceName: 'cattle-ab12', publishedAt: 1 };
        await Promise.all([s.claimRestart(r, 1, 'claim'), s.saveMessage(r, 1)]);
        const audit = [{ at: 1, instance: 'w', host: 'h', instanceName: 'cattle-ab12', messageId, executor: 'mock', outcome: 'restarted', reason: '' }];
        await s.markAcked({ messageId, extensions: 0, attempts: 1, restartDone: true, audit });
      }));
      process.stdout.write('written\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      cwd: here,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((res, rej) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('written') && res());
      child.once('exit', (c) => rej(new Error(`writer exited ${c}`)));
    });
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_ids')).toEqual([{ n: 0 }]);
    expect(
      query<{ n: number }>(path, 'SELECT count(*) AS n FROM message_rows WHERE acked = 1 AND restarted = 1'),
    ).toEqual([{ n: 2_000 }]);

    const s = openSqliteStorage({ path, logger: silent });
    expect(new Set(await Promise.all(ids.map((id) => s.claimRestart(req(id), 2, 'claim'))))).toEqual(new Set(['done']));
    await life(s, randomUUID());
    await s.close();
    invariants(path, 2_001);
  });

  it('a failed transaction leaves memory as the database: the retried writes land, one row each', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    await life(s, randomUUID());
    const id = randomUUID();
    // Fails at BEGIN: another connection holds the write lock.
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const locked = await Promise.allSettled([s.claimRestart(req(id), 1, 'claim'), s.saveMessage(req(id), 1)]);
    other.exec('ROLLBACK');
    expect(locked.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    // Fails in the middle, after the new row was given its id: a row already holds that id.
    const next = query<{ n: number }>(path, 'SELECT max(id) + 1 AS n FROM message_rows')[0]!.n;
    other
      .prepare(`INSERT INTO message_rows (id, message_id, created_at, updated_at) VALUES (?, 'intruder', 0, 0)`)
      .run(next);
    const clashed = await Promise.allSettled([s.claimRestart(req(id), 1, 'claim'), s.saveMessage(req(id), 1)]);
    expect(clashed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    other.prepare('DELETE FROM message_rows WHERE id = ?').run(next);
    other.close();
    // Other messages go on; then the pipeline retries: the claim still finds nothing (the failed
    // ones wrote nothing), and the writes land on a row that exists.
    await life(s, randomUUID());
    await life(s, id);
    await s.close();
    invariants(path, 3);
    expect(readRecord(path, id)).toMatchObject({ saved: true, acked: true, restarted: true, restartClaimed: 1 });
  });

  it('keeps ids of every shape apart: UUIDs as 16 bytes, anything else as text, shown as text', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent, indexBatchAfter: 2 });
    const lower = randomUUID();
    const shapes = [
      lower,
      lower.toUpperCase(),
      lower.replaceAll('-', ''),
      `{${lower}}`,
      'm-1',
      '42',
      '1e3',
      'ünïcödé-🦄',
      '00000000-0000-0000-0000-000000000000',
    ];
    for (const id of shapes) await life(s, id);
    await s.close();
    invariants(path, shapes.length);
    expect(
      query<{ t: string; n: number }>(
        path,
        'SELECT typeof(message_id) AS t, count(*) AS n FROM message_rows GROUP BY 1 ORDER BY 1',
      ),
    ).toEqual([
      { t: 'blob', n: 2 },
      { t: 'text', n: shapes.length - 2 },
    ]);
    for (const id of shapes) expect(readRecord(path, id)).toMatchObject({ messageId: id, acked: true });
    const t = openSqliteStorage({ path, logger: silent });
    for (const id of shapes) expect(await t.claimRestart(req(id), 2, 'look')).toBe('done');
    expect(await t.claimRestart(req(lower.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))), 1, 'look')).toBe('free');
    await t.close();
  });

  it('migrates a schema-v2 file: every record kept, found by id, UUIDs stored as bytes', async () => {
    const path = tmp.file();
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE messages (message_id TEXT PRIMARY KEY NOT NULL, instance_name TEXT, hostname TEXT, published_at INTEGER,
      restarted INTEGER NOT NULL DEFAULT 0, restart_attempts INTEGER NOT NULL DEFAULT 0, saved INTEGER NOT NULL DEFAULT 0,
      acked INTEGER NOT NULL DEFAULT 0, extensions INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0,
      dead_lettered INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      restarted_at INTEGER, acked_at INTEGER, restart_claimed INTEGER NOT NULL DEFAULT 0, restart_released INTEGER NOT NULL DEFAULT 0,
      restart_in_doubt INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
      CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, message_id TEXT, payload TEXT NOT NULL, reason TEXT NOT NULL, deliveries INTEGER NOT NULL, created_at INTEGER NOT NULL);
      CREATE UNIQUE INDEX dead_letters_message_id ON dead_letters (message_id) WHERE message_id IS NOT NULL;`);
    const ids = [randomUUID(), randomUUID(), 'legacy-1'];
    const insert = db.prepare(
      `INSERT INTO messages (message_id, instance_name, restarted, restart_claimed, saved, acked, created_at, updated_at) VALUES (?, 'cattle-ab12', ?, 1, 1, ?, ?, ?)`,
    );
    ids.forEach((id, i) => insert.run(id, i === 2 ? 0 : 1, i === 0 ? 1 : 0, 100 + i, 100 + i));
    db.pragma('user_version = 2');
    db.close();
    const s = openSqliteStorage({ path, logger: silent });
    expect(await Promise.all(ids.map((id) => s.claimRestart(req(id), 2, 'look')))).toEqual([
      'done',
      'done',
      'in-doubt-audited', // a record from before v7 reads as audited: its row is not written twice,
    ]);
    await s.close();
    invariants(path, 3);
    expect(readRecord(path, ids[0]!)).toMatchObject({
      messageId: ids[0],
      acked: true,
      restarted: true,
      createdAt: 100,
    });
    expect(
      query<{ t: string }>(path, 'SELECT typeof(message_id) AS t FROM message_rows ORDER BY id').map((r) => r.t),
    ).toEqual(['blob', 'blob', 'text']);
  });
});
