import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStorage } from '../src/storage/sqlite/storage.js';
import { auditRow, request } from './storage-contract.js';
import { query, silent, tempDir } from './sqlite-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('sqlite group commit', () => {
  it('commits 5,000 concurrent writes in a few transactions', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    await Promise.all(Array.from({ length: 5_000 }, (_, i) => s.saveMessage(request(i), 1)));
    // 2,000 per flush: three transactions, not 5,000.
    expect(s.stats.transactions).toBe(3);
    expect(s.stats.ops).toBe(5_000);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages WHERE saved = 1')).toEqual([{ n: 5_000 }]);
    await s.close();
  });

  it('reads see the writes queued before them in the same flush', async () => {
    const s = openSqliteStorage({ path: tmp.file(), logger: silent });
    const [, done, other] = await Promise.all([
      s.markRestarted('m-1', 1, undefined, [auditRow('m-1', 'restarted')]),
      s.claimRestart(request(1), 1, 'claim'),
      s.claimRestart(request(2), 1, 'claim'),
    ]);
    expect(done).toBe('done');
    expect(other).toBe('free');
    expect(s.stats.transactions).toBe(1);
    // ...and not the writes queued after them.
    const [before] = await Promise.all([
      s.claimRestart(request(3), 1, 'look'),
      s.markRestarted('m-3', 1, undefined, [auditRow('m-3', 'restarted')]),
    ]);
    expect(before).toBe('free');
    expect(await s.claimRestart(request(3), 2, 'look')).toBe('done');
    // A claim in the same flush as an earlier claim of the same message sees it (in doubt).
    const [first, second] = await Promise.all([
      s.claimRestart(request(4), 1, 'claim'),
      s.claimRestart(request(4), 2, 'claim'),
    ]);
    expect([first, second]).toEqual(['free', 'in-doubt']);
    await s.close();
  });

  it('folds the writes to one message within a flush into one row write', async () => {
    const s = openSqliteStorage({ path: tmp.file(), logger: silent });
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        Promise.all([
          s.saveMessage(request(i), 1),
          s.markRestarted(`m-${i}`, 1, undefined, [auditRow(`m-${i}`, 'restarted')]),
        ]),
      ),
    );
    expect(s.stats.ops).toBe(200);
    expect(s.stats.rowWrites).toBe(100);
    await s.close();
  });

  it('gives the event loop turns between flushes and bounds the work of each', async () => {
    // How long a flush holds the loop is a figure of the machine: the bench prints it (bench/sqlite.ts).
    // Here, what the code guarantees: a flush takes at most maxBatch operations, and timers run between.
    const s = openSqliteStorage({ path: tmp.file(), logger: silent, maxBatch: 500 });
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    const lives = Array.from({ length: 5_000 }, async (_, i) => {
      const r = request(i);
      await s.claimRestart(r, 1, 'claim');
      await Promise.all([
        s.saveMessage(r, 1),
        s.markRestarted(r.messageId, 1, undefined, [auditRow(r.messageId, 'restarted')]),
      ]);
      await s.markAcked({ messageId: r.messageId, extensions: 0, attempts: 1 });
    });
    await Promise.all(lives);
    clearInterval(ticker);
    expect(s.stats.ops).toBe(20_000);
    // 5,000 claims arrive at once: at most 500 per flush, so at least 10 flushes for them alone.
    expect(s.stats.transactions).toBeGreaterThanOrEqual(40);
    expect(s.stats.maxBatchOps).toBeLessThanOrEqual(500);
    // Each flush runs in its own loop iteration, so timers get turns while the backlog drains.
    expect(turns).toBeGreaterThanOrEqual(10);
    await s.close();
  });
});
