/**
 * Storage benchmark: how many message lives per second the storage sustains, where one life is the
 * pipeline's four operations (claimRestart, then saveMessage and markRestarted together, then
 * markAcked) and `--concurrency` messages live at once, as under the pipeline's flow control.
 *
 *   node packages/mayhem/dist/bench/sqlite.js [--messages 200000] [--concurrency 1000] [--max-batch 2000] [--apart]
 *
 * `--apart` awaits saveMessage before markRestarted, so the two never share a flush (as in the
 * pipeline when the restart takes longer than one loop turn) and cannot be folded into one row write.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Storage } from '../src/core/contracts.js';
import { openMemoryStorage } from '../src/storage/memory/storage.js';
import { openSqliteStorage, type SqliteStorage } from '../src/storage/sqlite/storage.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    concurrency: { type: 'string', default: '1000' },
    'max-batch': { type: 'string', default: '2000' },
    apart: { type: 'boolean', default: false },
  },
});
const messages = Number(values.messages);
const concurrency = Number(values.concurrency);
const maxBatch = Number(values['max-batch']);
const apart = values.apart;

/** Run `messages` lives with `concurrency` at once; resolves with lives per second. */
async function run(storage: Storage): Promise<number> {
  let next = 0;
  const startedAt = Date.now();
  async function worker(): Promise<void> {
    for (let i = next++; i < messages; i = next++) {
      const request = { messageId: randomUUID(), instanceName: `cattle-${i % 1000}`, publishedAt: startedAt };
      if ((await storage.claimRestart(request, 1, 'claim')) !== 'free')
        throw new Error(`${request.messageId} already restarted`);
      if (apart) {
        await storage.saveMessage(request, 1);
        await storage.markRestarted(request.messageId, 1);
      } else {
        await Promise.all([storage.saveMessage(request, 1), storage.markRestarted(request.messageId, 1)]);
      }
      await storage.markAcked({ messageId: request.messageId, extensions: 0, attempts: 1 });
    }
  }
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return messages / seconds;
}

function row(name: string, livesPerSecond: number, extra = ''): void {
  const lives = Math.round(livesPerSecond).toLocaleString('en-US').padStart(9);
  const ops = Math.round(livesPerSecond * 4)
    .toLocaleString('en-US')
    .padStart(10);
  console.log(`${name.padEnd(8)} ${lives} msg-lives/s  ${ops} ops/s${extra}`);
}

const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-sqlite-'));
try {
  console.log(
    `storage bench: ${messages.toLocaleString('en-US')} messages, ${concurrency} concurrent, 4 ops per life${apart ? ', save and restart apart' : ''} (node ${process.version})`,
  );
  row('memory', await run(openMemoryStorage()));
  const sqlite: SqliteStorage = openSqliteStorage({
    path: join(dir, 'bench.db'),
    logger: pino({ level: 'warn' }),
    maxBatch,
  });
  const rate = await run(sqlite);
  await sqlite.close();
  const s = sqlite.stats;
  row(
    'sqlite',
    rate,
    `  (${s.transactions} transactions, ${Math.round(s.ops / s.transactions)} ops each, ${s.rowWrites} row writes, longest flush ${s.longestFlushMs.toFixed(1)} ms)`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
