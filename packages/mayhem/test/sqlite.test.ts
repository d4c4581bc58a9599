import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import type { Storage } from '../src/core/contracts.js';
import { openSqliteStorage, SCHEMA_VERSION } from '../src/storage/sqlite/storage.js';
import { MAYHEM_APPLICATION_ID } from '../src/storage/sqlite/file.js';
import { migrate } from '../src/storage/sqlite/schema.js';
import { auditRow, describeStorageContract, request } from './storage-contract.js';
import { query, readDeadLetters, readRecord, silent, tempDir } from './sqlite-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const paths = new WeakMap<Storage, string>();

describeStorageContract('sqlite', {
  open: () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    paths.set(s, path);
    return s;
  },
  read: (s, id) => readRecord(paths.get(s)!, id),
  deadLetters: (s) => readDeadLetters(paths.get(s)!),
});

describe('sqlite storage', () => {
  it('turns on WAL and synchronous=NORMAL and records the schema version', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    await s.saveMessage(request(1), 1);
    expect(existsSync(`${path}-wal`)).toBe(true);
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
    await s.close();
  });

  it('checkpoints the WAL off the loop and leaves no WAL behind after close', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    await Promise.all(Array.from({ length: 3_000 }, (_, i) => s.saveMessage(request(i), 1)));
    await s.close();
    // The checkpoint worker's connection closed before ours, so ours was last and removed the WAL.
    expect(existsSync(`${path}-wal`)).toBe(false);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages')).toEqual([{ n: 3_000 }]);
  });

  it('reopens an existing file idempotently and the restart-done flag survives', async () => {
    const path = tmp.file();
    const a = openSqliteStorage({ path, logger: silent });
    await a.saveMessage(request(1), 1);
    await a.markRestarted('m-1', 1, undefined, [auditRow('m-1', 'restarted')]);
    await a.close();
    for (let i = 0; i < 2; i++) {
      const b = openSqliteStorage({ path, logger: silent });
      expect(await b.claimRestart(request(1), 2, 'look')).toBe('done');
      expect(await b.claimRestart(request(2), 1, 'look')).toBe('free');
      await b.close();
    }
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages')).toEqual([{ n: 1 }]);
  });

  it('migrates a version 4 file: the audit trail loses its (host, at) index, and keeps its rows', async () => {
    const path = tmp.file();
    const db = new Database(path);
    migrate(db, 4);
    db.exec('CREATE INDEX audit_host_at ON audit (host, at)');
    db.prepare(
      "INSERT INTO audit (at, instance, host, message_id, executor, outcome, reason) VALUES (1, 'i', 'h', 'm-1', 'mock', 'restarted', '')",
    ).run();
    expect(db.pragma('user_version', { simple: true })).toBe(4);
    db.close();
    const b = openSqliteStorage({ path, logger: silent });
    await b.close();
    expect(query<{ v: number }>(path, 'SELECT user_version AS v FROM pragma_user_version')).toEqual([
      { v: SCHEMA_VERSION },
    ]);
    expect(
      query<{ name: string }>(
        path,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' ORDER BY name",
      ),
    ).toEqual([{ name: 'audit_at' }, { name: 'audit_experiment' }]);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM audit')).toEqual([{ n: 1 }]);
  });

  it('a read of the webhook calls queued behind a write to them in the same flush sees that write', async () => {
    const s = openSqliteStorage({ path: tmp.file(), logger: silent });
    await s.recordCalls('m-1', { calls: 1, failed: 0 });
    const [, read] = await Promise.all([s.recordCalls('m-1', { calls: 2, failed: 1 }), s.readCalls('m-1')]);
    expect(read).toEqual({ calls: 2, failed: 1 });
    await s.close();
  });

  it('migrates a version 5 file: records and audit rows kept, the new columns empty', async () => {
    const path = tmp.file();
    const db = new Database(path);
    migrate(db, 5);
    db.prepare(
      `INSERT INTO message_rows (id, message_id, instance_name, hostname, published_at, saved, acked, created_at, updated_at)
       VALUES (1, 'm-old', 'web-1', 'web-1.example.net', 1, 1, 1, 1, 1)`,
    ).run();
    db.prepare(
      `INSERT INTO meta (key, value) VALUES ('indexed_below', 1) ON CONFLICT (key) DO UPDATE SET value = 1`,
    ).run();
    db.prepare(
      "INSERT INTO audit (at, instance, host, message_id, executor, outcome, reason) VALUES (5, 'i', 'web-1.example.net', 'm-old', 'mock', 'restarted', '')",
    ).run();
    expect(db.pragma('user_version', { simple: true })).toBe(5);
    db.close();
    const s = openSqliteStorage({ path, logger: silent });
    expect(await s.claimRestart({ messageId: 'm-old', instanceName: 'web-1', publishedAt: 1 }, 2, 'look')).toBe('free');
    expect(await s.readCalls('m-old')).toEqual({ calls: 0, failed: 0 });
    expect(await s.control().readAudit({ host: 'web-1.example.net', limit: 10 })).toEqual([
      expect.objectContaining({
        at: 5,
        host: 'web-1.example.net',
        messageId: 'm-old',
        instanceName: '',
        experiment: '',
      }),
    ]);
    await s.close();
    expect(query<{ v: number }>(path, 'SELECT user_version AS v FROM pragma_user_version')).toEqual([
      { v: SCHEMA_VERSION },
    ]);
    expect(readRecord(path, 'm-old')).toMatchObject({ acked: true, hostname: 'web-1.example.net', httpCalls: 0 });
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM experiment_runs')).toEqual([{ n: 0 }]);
  });

  it('migrates a version 6 file: its records read as audited (no row repeated), new records say whether they are', async () => {
    const path = tmp.file();
    const db = new Database(path);
    migrate(db, 6);
    // A restart done and one in doubt, written by v6 (whose audit rows went apart from the records).
    db.prepare(
      `INSERT INTO message_rows (id, message_id, instance_name, hostname, published_at, saved, restarted, restart_claimed, created_at, updated_at)
       VALUES (1, 'm-done', 'web-1', 'web-1.example.net', 1, 1, 1, 1, 1, 1),
              (2, 'm-doubt', 'web-2', 'web-2.example.net', 1, 1, 0, 1, 1, 1)`,
    ).run();
    db.prepare(
      `INSERT INTO meta (key, value) VALUES ('indexed_below', 1) ON CONFLICT (key) DO UPDATE SET value = 1`,
    ).run();
    expect(db.pragma('user_version', { simple: true })).toBe(6);
    db.close();
    const s = openSqliteStorage({ path, logger: silent });
    expect(await s.claimRestart({ messageId: 'm-done', instanceName: 'web-1', publishedAt: 1 }, 2, 'look')).toBe(
      'done',
    );
    expect(await s.claimRestart({ messageId: 'm-doubt', instanceName: 'web-2', publishedAt: 1 }, 2, 'look')).toBe(
      'in-doubt-audited',
    );
    // A record written now says for itself.
    const fresh = { messageId: 'm-new', instanceName: 'web-3', publishedAt: 1 };
    expect(await s.claimRestart(fresh, 1, 'claim')).toBe('free');
    expect(await s.claimRestart(fresh, 2, 'look')).toBe('in-doubt');
    await s.markRestarted('m-new', 1, undefined, [auditRow('m-new', 'restarted')]);
    expect(await s.claimRestart(fresh, 2, 'look')).toBe('done');
    await s.close();
    expect(query<{ v: number }>(path, 'SELECT user_version AS v FROM pragma_user_version')).toEqual([{ v: 7 }]);
    expect(
      query<{ message_id: string; restart_audited: number; in_doubt_audited: number }>(
        path,
        'SELECT message_id, restart_audited, in_doubt_audited FROM messages ORDER BY id',
      ),
    ).toEqual([
      { message_id: 'm-done', restart_audited: 1, in_doubt_audited: 1 },
      { message_id: 'm-doubt', restart_audited: 1, in_doubt_audited: 1 },
      { message_id: 'm-new', restart_audited: 1, in_doubt_audited: 0 },
    ]);
    // The row went in with the record, in its transaction.
    expect(query<{ outcome: string }>(path, "SELECT outcome FROM audit WHERE message_id = 'm-new'")).toEqual([
      { outcome: 'restarted' },
    ]);
  });

  it('refuses a schema newer than it knows', () => {
    const path = tmp.file();
    const db = new Database(path);
    db.pragma(`application_id = ${MAYHEM_APPLICATION_ID}`);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openSqliteStorage({ path, logger: silent })).toThrow(
      new RegExp(`schema version ${SCHEMA_VERSION + 1} is newer`),
    );
  });

  it('names the path in one line when the directory is missing', () => {
    const path = join(tmp.dir, 'no-such-dir', 'm.db');
    let message = '';
    try {
      openSqliteStorage({ path, logger: silent });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(path);
    expect(message).toMatch(/does not exist/);
    expect(message).not.toContain('\n');
  });

  it('names the path when its parent is a file, not a directory', () => {
    const file = tmp.file();
    openSqliteStorage({ path: file, logger: silent })
      .close()
      .catch(() => undefined);
    expect(() => openSqliteStorage({ path: join(file, 'm.db'), logger: silent })).toThrow(
      /Cannot open SQLite database ".*m\.db": .* is not a directory/,
    );
  });

  // Root ignores directory permissions, so this one only means something as an ordinary user.
  it.skipIf(process.getuid?.() === 0)('names the path when the directory is not writable', () => {
    const dir = join(tmp.dir, 'readonly');
    mkdirSync(dir);
    chmodSync(dir, 0o500);
    const path = join(dir, 'm.db');
    try {
      expect(() => openSqliteStorage({ path, logger: silent })).toThrow(
        new RegExp(`Cannot open SQLite database .*readonly/m\\.db`),
      );
    } finally {
      chmodSync(dir, 0o700);
    }
  });

  it('rejects all callers of a failed transaction with a clear error, and the next flush works again', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    await s.saveMessage(request(1), 1);
    // Another connection holds the write lock past the busy timeout: the flush fails as a whole.
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const results = await Promise.allSettled([s.saveMessage(request(2), 1), s.markRestarted('m-1', 1)]);
    other.exec('ROLLBACK');
    other.close();
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect(((r as PromiseRejectedResult).reason as Error).message).toMatch(
        /SQLite transaction of 2 operations on .* failed: database is locked/,
      );
    }
    expect(s.stats.failedTransactions).toBe(1);
    await s.saveMessage(request(2), 1);
    expect(readRecord(path, 'm-2')?.saved).toBe(true);
    await s.close();
  });

  it('rejects with the signal reason when aborted after queueing but before the flush, writing nothing', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    const ac = new AbortController();
    const p = s.saveMessage(request(9), 1, ac.signal);
    const kept = s.saveMessage(request(10), 1);
    const reason = new Error('grace period over');
    ac.abort(reason);
    await expect(p).rejects.toBe(reason);
    await kept;
    expect(readRecord(path, 'm-9')).toBeUndefined();
    expect(readRecord(path, 'm-10')?.saved).toBe(true);
    await s.close();
  });

  it('close() commits writes queued before it', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent, maxBatch: 100 });
    const writes = Array.from({ length: 1_000 }, (_, i) => s.saveMessage(request(i), 1));
    await s.close();
    await Promise.all(writes);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages')).toEqual([{ n: 1_000 }]);
  });
});
