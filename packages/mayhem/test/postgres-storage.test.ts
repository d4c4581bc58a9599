import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import pg from 'pg';
import type { Storage } from '../src/core/contracts.js';
import {
  openPostgresStorage,
  PostgresStorageError,
  PostgresUnavailableError,
  type PostgresStorage,
  type PostgresStorageOptions,
} from '../src/storage/postgres/storage.js';
import { MIGRATIONS } from '../src/storage/postgres/schema.js';
import type { MessageRecord } from '../src/storage/record.js';
import { freePort, startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { auditRow, describeStorageContract, request } from './storage-contract.js';

const silent = pino({ level: 'silent' });
let pgt: TestPostgres;

beforeAll(async () => {
  pgt = await startTestPostgres();
});
afterAll(async () => {
  await pgt?.close();
});

function open(extra: Partial<PostgresStorageOptions> = {}): Promise<PostgresStorage> {
  return openPostgresStorage({ url: pgt.url, logger: silent, ...extra });
}

// ---- the shared Storage contract ------------------------------------------------------------
// The contract harness is synchronous (written for in-process adapters): `open` hands back a
// Storage whose calls wait for the real one, and `read` asks psql synchronously.

function lazy(p: Promise<Storage>): Storage {
  return {
    claimRestart: (r, n, mode, signal) => p.then((s) => s.claimRestart(r, n, mode, signal)),
    releaseRestart: (id, n, a) => p.then((s) => s.releaseRestart(id, n, a)),
    saveMessage: (r, n, signal) => p.then((s) => s.saveMessage(r, n, signal)),
    markRestarted: (id, a, signal, audit) => p.then((s) => s.markRestarted(id, a, signal, audit)),
    markAcked: (rec) => p.then((s) => s.markAcked(rec)),
    markFailed: (id, e, a, audit) => p.then((s) => s.markFailed(id, e, a, audit)),
    readCalls: (id) => p.then((s) => s.readCalls(id)),
    recordCalls: (id, c) => p.then((s) => s.recordCalls(id, c)),
    deadLetter: (d) => p.then((s) => s.deadLetter(d)),
    close: () => p.then((s) => s.close()),
  };
}

function psql(sql: string): string[] {
  const out = execFileSync('psql', [pgt.url, '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    encoding: 'utf8',
  });
  return out.split('\n').filter((l) => l.length > 0);
}

const lit = (s: string): string => `'${s.replace(/'/g, "''")}'`;
const ms = (col: string): string => `(round(extract(epoch FROM ${col}) * 1000))::float8`;

function readRecord(id: string): MessageRecord | undefined {
  return readRecords([id])[0];
}

function readRecords(ids: readonly string[]): (MessageRecord | undefined)[] {
  const lines = psql(`SELECT json_build_object(
    'messageId', message_id, 'instanceName', instance_name, 'hostname', hostname,
    'publishedAt', ${ms('published_at')}, 'restarted', restarted, 'restartAttempts', restart_attempts,
    'restartClaimed', restart_claimed, 'restartReleased', restart_released, 'restartInDoubt', restart_in_doubt, 'skipReason', skip_reason,
    'saved', saved, 'acked', acked, 'extensions', extensions, 'deliveries', deliveries,
    'deadLettered', dead_lettered, 'lastError', last_error, 'createdAt', ${ms('created_at')},
    'updatedAt', ${ms('updated_at')}, 'restartedAt', ${ms('restarted_at')}, 'ackedAt', ${ms('acked_at')},
    'httpCalls', http_calls, 'httpCallsFailed', http_calls_failed,
    'restartAudited', restart_audited, 'inDoubtAudited', in_doubt_audited)
    FROM messages WHERE message_id IN (${ids.map(lit).join(', ')})`);
  const found = new Map(lines.map((l) => JSON.parse(l) as MessageRecord).map((r) => [r.messageId, r]));
  return ids.map((id) => found.get(id));
}

describeStorageContract('postgres', {
  open: () => lazy(open()),
  read: (_s, id) => readRecord(id),
  readMany: (_s, ids) => readRecords(ids),
  propertyRuns: 20,
  deadLetters: () =>
    psql(`SELECT json_build_object('messageId', message_id, 'payload', payload, 'reason', reason, 'deliveries', deliveries)
          FROM dead_letters ORDER BY id`).map(
      (l) => JSON.parse(l) as { messageId: string | null; payload: string; reason: string; deliveries: number },
    ),
});

// ---- PostgreSQL specifics ---------------------------------------------------------------------

describe('postgres storage', () => {
  it('creates the schema once when two instances open the same database at once', async () => {
    const { url } = await pgt.createDatabase();
    const opened = await Promise.all([1, 2, 3].map(() => openPostgresStorage({ url, logger: silent })));
    const again = await openPostgresStorage({ url, logger: silent });
    await Promise.all([...opened, again].map((s) => s.close()));
    const rows = psqlAt(url, 'SELECT version FROM schema_version ORDER BY version');
    expect(rows).toEqual(MIGRATIONS.map((m) => String(m.version)));
    expect(psqlAt(url, `SELECT count(*) FROM pg_tables WHERE tablename IN ('messages', 'dead_letters')`)).toEqual([
      '2',
    ]);
  });

  it('migrates a version 5 database: records and audit rows kept, the new columns empty', async () => {
    const { url } = await pgt.createDatabase();
    const old = new pg.Client({ connectionString: url });
    await old.connect();
    await old.query(
      'CREATE TABLE schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const m of MIGRATIONS.filter((m) => m.version <= 5)) {
      for (const sql of m.statements) await old.query(sql);
      await old.query('INSERT INTO schema_version (version) VALUES ($1)', [m.version]);
    }
    await old.query(
      `INSERT INTO messages (message_id, instance_name, hostname, saved, acked) VALUES ('m-old', 'web-1', 'web-1.example.net', true, true)`,
    );
    await old.query(
      `INSERT INTO audit (at, instance, host, message_id, executor, outcome, reason) VALUES (now(), 'i', 'web-1.example.net', 'm-old', 'mock', 'restarted', '')`,
    );
    await old.end();
    const s = await openPostgresStorage({ url, logger: silent });
    expect(await s.readCalls('m-old')).toEqual({ calls: 0, failed: 0 });
    expect(await s.control().readAudit({ host: 'web-1.example.net', limit: 10 })).toEqual([
      expect.objectContaining({ host: 'web-1.example.net', messageId: 'm-old', instanceName: '', experiment: '' }),
    ]);
    await s.close();
    expect(psqlAt(url, 'SELECT max(version) FROM schema_version')).toEqual([String(MIGRATIONS.at(-1)!.version)]);
    expect(psqlAt(url, `SELECT acked, http_calls FROM messages WHERE message_id = 'm-old'`)).toEqual(['t|0']);
  });

  it('migrates a version 6 database: its records read as audited (no row repeated), new ones say whether they are', async () => {
    const { url } = await pgt.createDatabase();
    const old = new pg.Client({ connectionString: url });
    await old.connect();
    await old.query(
      'CREATE TABLE schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const m of MIGRATIONS.filter((m) => m.version <= 6)) {
      for (const sql of m.statements) await old.query(sql);
      await old.query('INSERT INTO schema_version (version) VALUES ($1)', [m.version]);
    }
    await old.query(
      `INSERT INTO messages (message_id, instance_name, hostname, saved, restarted, restart_claimed) VALUES
         ('m6-done', 'web-1', 'web-1.example.net', true, true, 1), ('m6-doubt', 'web-2', 'web-2.example.net', true, false, 1)`,
    );
    await old.end();
    const s = await openPostgresStorage({ url, logger: silent });
    const r = (messageId: string, instanceName: string) => ({ messageId, instanceName, publishedAt: 1 });
    expect(await s.claimRestart(r('m6-done', 'web-1'), 2, 'look')).toBe('done');
    expect(await s.claimRestart(r('m6-doubt', 'web-2'), 2, 'look')).toBe('in-doubt-audited');
    expect(await s.claimRestart(r('m7-new', 'web-3'), 1, 'claim')).toBe('free');
    expect(await s.claimRestart(r('m7-new', 'web-3'), 2, 'look')).toBe('in-doubt');
    await s.markRestarted('m7-new', 1);
    expect(await s.claimRestart(r('m7-new', 'web-3'), 2, 'look')).toBe('done-unaudited');
    await s.close();
    expect(psqlAt(url, 'SELECT max(version) FROM schema_version')).toEqual(['7']);
  });

  it('groups many concurrent writes into few statements, and reads likewise', async () => {
    const s = await open();
    const n = 3000;
    await Promise.all(Array.from({ length: n }, (_, i) => s.saveMessage(request(10_000 + i), 1)));
    const afterWrites = s.stats();
    expect(afterWrites.writes).toBe(n);
    expect(afterWrites.writeBatches).toBeLessThanOrEqual(10); // at most 1000 per statement
    const done = await Promise.all(Array.from({ length: n }, (_, i) => s.claimRestart(request(10_000 + i), 1, 'look')));
    expect(done.every((d) => d === 'free')).toBe(true);
    expect(s.stats().readBatches).toBeLessThanOrEqual(10);
    const before = s.stats().writeBatches;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        s.markRestarted(`m-${10_000 + i}`, 1, undefined, [auditRow(`m-${10_000 + i}`, 'restarted')]),
      ),
    );
    // Each restart's audit row went in the statement that recorded it: no statement of their own.
    expect(s.stats().writeBatches - before).toBeLessThanOrEqual(10);
    expect(psql(`SELECT count(*) FROM audit WHERE message_id LIKE 'm-1____' AND outcome = 'restarted'`)).toEqual([
      String(n),
    ]);
    const doneNow = await Promise.all(
      Array.from({ length: n }, (_, i) => s.claimRestart(request(10_000 + i), 2, 'claim')),
    );
    expect(doneNow.every((d) => d === 'done')).toBe(true);
    expect(psql(`SELECT count(*) FROM messages WHERE message_id LIKE 'm-1____' AND saved AND restarted`)).toEqual([
      String(n),
    ]);
    await s.close();
  });

  it('takes pool_size and max_batch from the URL query (and hides them from pg)', async () => {
    const s = await openPostgresStorage({ url: `${pgt.url}?pool_size=2&max_batch=10`, logger: silent });
    await Promise.all(Array.from({ length: 100 }, (_, i) => s.saveMessage(request(40_000 + i), 1)));
    expect(s.stats().writeBatches).toBe(10);
    await s.close();
    await expect(openPostgresStorage({ url: `${pgt.url}?max_batch=0`, logger: silent })).rejects.toThrow(
      'max_batch must be a positive integer, got "0"',
    );
  });

  it('merges writes to one message within a batch (save, restarted, acked in one tick)', async () => {
    const s = await open();
    const r = request(20_001);
    const before = s.stats().writeBatches;
    await Promise.all([
      s.saveMessage(r, 2),
      s.markRestarted(r.messageId, 2),
      s.markAcked({ messageId: r.messageId, extensions: 4, attempts: 2 }),
      s.saveMessage(r, 1),
    ]);
    expect(s.stats().writeBatches - before).toBe(1);
    expect(readRecord(r.messageId)).toMatchObject({
      saved: true,
      restarted: true,
      acked: true,
      deliveries: 2,
      extensions: 4,
      restartAttempts: 2,
    });
    await s.close();
  });

  it('rejects with the signal reason when aborted after queueing but before the batch is sent', async () => {
    const s = await open();
    const ac = new AbortController();
    const reason = new Error('shutting down');
    const p = s.saveMessage(request(20_002), 1, ac.signal);
    const q = s.markRestarted('m-20002', 1, ac.signal);
    const kept = s.saveMessage(request(20_003), 1);
    ac.abort(reason); // same tick: the batch has not gone out yet
    await expect(p).rejects.toBe(reason);
    await expect(q).rejects.toBe(reason);
    await kept;
    expect(readRecord('m-20002')).toBeUndefined();
    expect(readRecord('m-20003')).toMatchObject({ saved: true });
    await s.close();
  });

  it('stores awkward text (NUL, lone surrogates) instead of failing the batch', async () => {
    const s = await open();
    await s.deadLetter({ payload: 'a\u0000b\uD800c', reason: 'payload is not valid UTF-8', deliveries: 1 });
    const r = { messageId: 'm-nul\u0000', instanceName: 'cattle-1', publishedAt: 1 };
    await s.saveMessage(r, 1);
    expect(psql(`SELECT payload FROM dead_letters WHERE reason = 'payload is not valid UTF-8'`)).toEqual([
      'a\uFFFDb\uFFFDc',
    ]);
    expect(readRecord('m-nul\uFFFD')).toMatchObject({ saved: true });
    await s.close();
  });

  it('a row PostgreSQL rejects fails alone; its batch neighbours are written', async () => {
    const s = await open();
    const bad = { messageId: 'm-bad-time', instanceName: 'cattle-2', publishedAt: 1e300 }; // out of timestamptz range
    const results = await Promise.allSettled([
      s.saveMessage(request(20_010), 1),
      s.saveMessage(bad, 1),
      s.saveMessage(request(20_011), 1),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const err = (results[1] as PromiseRejectedResult).reason as Error;
    expect(err).toBeInstanceOf(PostgresStorageError);
    expect(err.message).toMatch(/^PostgreSQL write failed: /);
    expect(readRecord('m-20010')).toBeDefined();
    expect(readRecord('m-bad-time')).toBeUndefined();
    await s.close();
  });

  it('flushes queued writes on close, then rejects new ones', async () => {
    const s = await open();
    const writes = Array.from({ length: 50 }, (_, i) => s.saveMessage(request(20_100 + i), 1));
    await s.close();
    await Promise.all(writes);
    expect(psql(`SELECT count(*) FROM messages WHERE message_id LIKE 'm-201__'`)).toEqual(['50']);
    await expect(s.claimRestart(request(20_100), 1, 'claim')).rejects.toThrow(/closed/);
  });

  it('connections terminated mid-run: writes reject clearly, then succeed on retry; nothing lost', async () => {
    const s = await open({ poolSize: 4 });
    const n = 2000;
    const failures: Error[] = [];
    const saveWithRetry = async (i: number): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await s.saveMessage(request(30_000 + i), 1);
          await s.markRestarted(`m-${30_000 + i}`, 1);
          return;
        } catch (error) {
          failures.push(error as Error);
          if (attempt >= 10) throw error;
          await new Promise((r) => setTimeout(r, 5 * attempt));
        }
      }
    };
    let started = 0;
    let terminated = 0;
    const all: Promise<void>[] = [];
    // Start writers in waves; terminate every session of the database in the middle.
    for (let wave = 0; wave < 10; wave++) {
      for (let i = 0; i < n / 10; i++) all.push(saveWithRetry(started++));
      if (wave === 4) terminated = await pgt.terminateConnections();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    expect(terminated).toBeGreaterThan(0);
    for (const f of failures) expect(f.message).toMatch(/^PostgreSQL (write|read) failed: /);
    expect(psql(`SELECT count(*) FROM messages WHERE message_id LIKE 'm-3____' AND saved AND restarted`)).toEqual([
      String(n),
    ]);
    // Terminate again while idle: the pool drops the dead connections and the next write works.
    await pgt.terminateConnections();
    await saveWithRetry(n);
    await s.close();
  });

  it('unreachable at start: one clear line', async () => {
    const port = await closedPort();
    const err = await openPostgresStorage({ url: `postgres://postgres@127.0.0.1:${port}/test`, logger: silent }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PostgresUnavailableError);
    expect((err as Error).message).toBe(`cannot connect to PostgreSQL at 127.0.0.1:${port}: connection refused`);
  });

  it('missing database at start: one clear line naming it', async () => {
    const u = new URL(pgt.url);
    u.pathname = '/mayhem_no_such_db';
    const err = await openPostgresStorage({ url: u.toString(), logger: silent }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PostgresUnavailableError);
    expect((err as Error).message).toBe(
      `cannot connect to PostgreSQL at ${pgt.host}:${pgt.port}: database "mayhem_no_such_db" does not exist`,
    );
    expect((err as Error).message).not.toContain('\n');
  });
});

function psqlAt(url: string, sql: string): string[] {
  return execFileSync('psql', [url, '-X', '-A', '-t', '-q', '-c', sql], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.length > 0);
}

const closedPort = freePort;
