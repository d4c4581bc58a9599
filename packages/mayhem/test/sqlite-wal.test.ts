/**
 * The WAL stays bounded under sustained writes. On 305f043 (passive checkpoints only) it grew
 * without limit: 2.6 GB after 10 s of this load on the development machine.
 */
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStorage } from '../src/storage/sqlite/storage.js';
import { query, silent, tempDir } from './sqlite-helpers.js';
import { auditRow } from './storage-contract.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const walSize = (path: string): number => {
  try {
    return statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
};

describe('sqlite WAL bound', () => {
  it('keeps the WAL under its limit through sustained writes, and every write lands', async () => {
    const path = tmp.file();
    const limit = 8 * 2 ** 20;
    // One transaction of 250 operations dirties at most ~500 pages (2 MB): the bound is half the limit plus that.
    const s = openSqliteStorage({ path, logger: silent, walLimitBytes: limit, maxBatch: 250 });
    let largest = 0;
    let written = 0;
    const target = 60_000;
    // Sampled on every loop turn that has a flush behind it, from the main thread.
    const sampler = setInterval(() => (largest = Math.max(largest, walSize(path))), 5);
    // 500 writers, each a message life as the pipeline writes it (save, then ack carrying the restart).
    await Promise.all(
      Array.from({ length: 500 }, async () => {
        while (written < target) {
          written++;
          const id = randomUUID();
          await s.saveMessage({ messageId: id, instanceName: 'cattle-wal1', publishedAt: Date.now() }, 1);
          await s.markAcked({
            messageId: id,
            extensions: 0,
            attempts: 1,
            restartDone: true,
            audit: [auditRow(id, 'restarted')],
          });
        }
      }),
    );
    clearInterval(sampler);
    largest = Math.max(largest, walSize(path));
    const checkpoints = s.checkpoints!;
    await s.close();
    expect(checkpoints.truncations).toBeGreaterThan(0);
    expect(largest).toBeLessThanOrEqual(limit);
    expect(query<{ n: number }>(path, 'SELECT count(*) AS n FROM messages WHERE acked = 1 AND restarted = 1')).toEqual([
      { n: written },
    ]);
  });
});
