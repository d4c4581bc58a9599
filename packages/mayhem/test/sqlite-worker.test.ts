/**
 * SQLite on its worker thread (storage/sqlite/): the storage contract through the thread boundary,
 * the ack contract (a resolved write is committed: a second connection reads it at that moment),
 * worker faults (terminated as an OOM kill would, or an uncaught error) as storage faults, and the
 * engine's background work (retention sweeper, WAL checkpointer) running on the worker.
 *
 * Needs `npm run build` first (the worker runs from dist).
 */
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import { threadId } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { Storage } from '../src/core/contracts.js';
import { startSqliteWorker, type SqliteWorkerStorage } from '../src/storage/sqlite/worker-storage.js';
import { describeStorageContract, request } from './storage-contract.js';
import { query, readDeadLetters, readRecord, silent, tempDir } from './sqlite-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const paths = new WeakMap<Storage, string>();

describeStorageContract('sqlite worker', {
  open: () => {
    const path = tmp.file();
    const s = startSqliteWorker({ path, logger: silent });
    paths.set(s, path);
    return s;
  },
  // The worker creates the file once it runs: a storage whose every call was refused may have none yet.
  read: (s, id) => (existsSync(paths.get(s)!) ? readRecord(paths.get(s)!, id) : undefined),
  deadLetters: (s) => (existsSync(paths.get(s)!) ? readDeadLetters(paths.get(s)!) : []),
});

/** A logger whose JSON lines are kept, to count what a fault told. */
function capturing(): { logger: pino.Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'info' }, out), lines };
}

const count = (path: string): number => query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages')[0]!.n;

describe('sqlite worker storage', () => {
  it('runs the engine off the main thread', async () => {
    const s = startSqliteWorker({ path: tmp.file(), logger: silent });
    await s.ready;
    expect((await s.stats()).threadId).not.toBe(threadId);
    await s.close();
  });

  it('answers of every kind in one batch reach their own callers: claims, values, none, failures', async () => {
    const s = startSqliteWorker({ path: tmp.file(), logger: silent });
    await s.ready;
    const done = request(1);
    const inDoubt = request(2);
    await Promise.all([s.claimRestart(done, 1, 'claim'), s.claimRestart(inDoubt, 1, 'claim')]);
    await s.markRestarted(done.messageId, 1);
    await s.recordCalls(done.messageId, { calls: 3, failed: 1 });
    // All in one turn, so one batch each way; value-less answers sit between the values.
    const calls = [
      s.claimRestart(request(3), 1, 'look'),
      s.readCalls(done.messageId),
      s.claimRestart(done, 2, 'claim'),
      s.saveMessage(request(4), 1),
      s.claimRestart({ ...inDoubt, instanceName: 'other-host' }, 2, 'claim'),
      s.claimRestart(inDoubt, 2, 'look'),
      s.control().readAudit({ limit: 5 }),
      // Fails in the worker (JSON cannot hold a BigInt): its error text is a value too.
      s.control().writeSettings({ bad: 1n } as never, 0),
      s.readCalls(request(5).messageId),
    ];
    const settled = await Promise.allSettled(calls);
    expect(settled.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'free',
      { calls: 3, failed: 1 },
      'done-unaudited',
      undefined,
      'conflict',
      'in-doubt',
      [],
      expect.stringMatching(/BigInt/),
      { calls: 0, failed: 0 },
    ]);
    await s.close();
  });

  it('resolves a write only once it is committed: a second connection reads every resolved one at that moment', async () => {
    const path = tmp.file();
    const s = startSqliteWorker({ path, logger: silent });
    await s.ready;
    const reader = new Database(path, { readonly: true });
    const row = reader.prepare<[string], { saved: number; acked: number }>(
      'SELECT saved, acked FROM messages WHERE message_id = ?',
    );
    const missing: string[] = [];
    // Several turns' worth, so answers come back in several batches while others are still queued.
    await Promise.all(
      Array.from({ length: 3_000 }, async (_, i) => {
        const r = request(i);
        await s.saveMessage(r, 1);
        if (row.get(r.messageId)?.saved !== 1) missing.push(`saved ${r.messageId}`);
        await s.markAcked({ messageId: r.messageId, extensions: 0, attempts: 1 });
        if (row.get(r.messageId)?.acked !== 1) missing.push(`acked ${r.messageId}`);
      }),
    );
    reader.close();
    expect(missing).toEqual([]);
    const st = await s.stats();
    // Group commit across the boundary: far fewer transactions than writes.
    expect(st.stats.transactions).toBeLessThan(st.stats.ops / 10);
    await s.close();
  });

  for (const how of ['terminate', 'crash'] as const) {
    it(`a worker that dies (${how}) mid-stream is a storage fault: told once, nothing resolved without its row, a new worker takes over`, async () => {
      const path = tmp.file();
      const { logger, lines } = capturing();
      const s = startSqliteWorker({ path, logger, restartBackoffMs: 20 });
      await s.ready;
      const N = 4_000;
      const resolved = new Set<string>();
      const failed: string[] = [];
      const errors = new Set<string>();
      let killed: Promise<void> | undefined;
      const writes: Promise<void>[] = [];
      // In waves, one a turn, so the kill lands with writes committed, in flight and not yet sent.
      for (let i = 0; i < N; i++) {
        const r = request(i);
        writes.push(
          s.saveMessage(r, 1).then(
            () => {
              resolved.add(r.messageId);
              if (resolved.size === 300) killed = s.killWorker(how);
            },
            (err: unknown) => {
              failed.push(r.messageId);
              errors.add(String(err).replace(/\(.*\)/, '(…)'));
            },
          ),
        );
        // Paced, so the load is still coming when the kill lands (then it meets no worker, or a new one).
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 2));
      }
      await Promise.all(writes);
      await killed;
      expect(resolved.size).toBeGreaterThanOrEqual(300);
      expect(failed.length).toBeGreaterThan(0);
      expect(resolved.size + failed.length).toBe(N);
      expect(
        [...errors].every((e) => /SQLite storage worker stopped/.test(e)),
        [...errors].join('\n'),
      ).toBe(true);
      // While no worker runs, calls fail at once (so the pipeline's database health can go down).
      await s.whenUp();
      expect(s.restarts).toBe(1);
      // The retries of the unanswered writes (idempotent upserts) all land.
      await Promise.all(failed.map((id) => s.saveMessage(request(Number(id.slice(2))), 2)));
      await s.close();
      // Every write that resolved has its row; with the retries, every message has one.
      const db = new Database(path, { readonly: true });
      const has = db.prepare<[string], { n: number }>(
        'SELECT count(*) AS n FROM messages WHERE message_id = ? AND saved = 1',
      );
      expect([...resolved].filter((id) => has.get(id)!.n !== 1)).toEqual([]);
      db.close();
      expect(count(path)).toBe(N);
      // Told once: one error line for the fault, one line when the new worker is up.
      expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([
        expect.stringMatching(/^SQLite storage worker stopped: .*intake pauses/),
      ]);
      expect(lines.filter((l) => /worker is back/.test(l.msg))).toHaveLength(1);
    });
  }

  it('keeps the id index, the retention sweeper and the WAL checkpointer on the worker', async () => {
    const path = tmp.file();
    // A tiny WAL bound makes the checkpointer truncate; a 1 ms retention makes every acked record old.
    const s = startSqliteWorker({
      path,
      logger: silent,
      walLimitBytes: 256 * 1024,
      retentionMs: 1,
      retentionEveryMs: 50,
    });
    await s.ready;
    for (let wave = 0; wave < 5; wave++)
      await Promise.all(
        Array.from({ length: 1_000 }, (_, i) => {
          const r = request(wave * 1_000 + i);
          return s.saveMessage(r, 1).then(() => s.markAcked({ messageId: r.messageId, extensions: 0, attempts: 1 }));
        }),
      );
    // The sweeper runs by itself every 50 ms on the worker, the checkpointer when the WAL is past its
    // limit: wait for both to have done their work (neither is ordered after the other).
    let st = await s.stats();
    for (let i = 0; i < 100 && (st.retention.rows === 0 || !((st.checkpoints?.truncations ?? 0) > 0)); i++) {
      await new Promise((r) => setTimeout(r, 50));
      st = await s.stats();
    }
    expect(st.threadId).not.toBe(threadId);
    expect(st.retention.passes).toBeGreaterThan(0);
    expect(st.retention.rows).toBeGreaterThan(0);
    expect(st.checkpoints?.truncations).toBeGreaterThan(0);
    // Look-ups of the swept ids go through the worker's index too: a redelivery is a new message.
    expect(await s.claimRestart(request(1), 2, 'look')).toBe('free');
    await s.close();
  });

  it('a file that cannot be opened fails the start with one line naming it', async () => {
    const s: SqliteWorkerStorage = startSqliteWorker({ path: `${tmp.dir}/no/such/dir/x.db`, logger: silent });
    await expect(s.ready).rejects.toThrow(/^Cannot open SQLite database ".*x\.db"/);
    await expect(s.saveMessage(request(1), 1)).rejects.toThrow();
    await s.close();
  });
});
