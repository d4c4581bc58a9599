/**
 * PostgreSQL storage benchmark: message lives per second, where one life is what the pipeline does
 * to storage for one message — inside the host guard: claimRestart, then markRestarted; beside
 * it: saveMessage; after both: markAcked — with `--concurrency` messages alive at once, as under
 * the pipeline's flow control. Every write is durable (synchronous_commit as the server has it).
 *
 *   node packages/mayhem/dist/bench/postgres.js [--messages 100000] [--concurrency 1000]
 *        [--pool 4] [--max-batch 1000] [--no-guard] [--instances 1]
 *        [--db postgres://... | --admin postgres://postgres@127.0.0.1:5432/test]
 *
 * Without --db it creates a throwaway database through --admin and drops it afterwards.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { hostnameOf } from '../src/core/message.js';
import { withHost } from '../src/core/host-guard.js';
import { openPostgresStorage, type PostgresStorage } from '../src/storage/postgres/storage.js';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '1000' },
    pool: { type: 'string', default: '4' },
    'max-batch': { type: 'string', default: '1000' },
    'no-guard': { type: 'boolean', default: false },
    instances: { type: 'string', default: '1' },
    db: { type: 'string' },
    admin: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const messages = Number(values.messages);
const concurrency = Number(values.concurrency);
const poolSize = Number(values.pool);
const maxBatch = Number(values['max-batch']);
const useGuard = !values['no-guard'];
const instances = Number(values.instances);
const logger = pino({ level: 'warn' });

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: values.admin });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function queryOne(url: string, sql: string): Promise<Record<string, unknown> | undefined> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<Record<string, unknown>>(sql)).rows[0];
  } finally {
    await c.end();
  }
}

/** Run the lives spread over `storages` (round robin); resolves with lives per second. */
async function run(storages: PostgresStorage[], count: number): Promise<number> {
  const signal = new AbortController().signal; // shared, like the pipeline's shutdown signal
  setMaxListeners(0, signal);
  let next = 0;
  const startedAt = Date.now();
  async function life(storage: PostgresStorage, i: number): Promise<void> {
    // Random UUIDv4 ids, as real producers send (sequential ids flatter the index).
    const request = { messageId: randomUUID(), instanceName: `cattle-${i % 5000}`, publishedAt: startedAt };
    const restart = async (): Promise<void> => {
      if ((await storage.claimRestart(request, 1, 'claim', signal)) !== 'free')
        throw new Error(`${request.messageId} already restarted`);
      await storage.markRestarted(request.messageId, 1, signal);
    };
    await Promise.all([
      useGuard ? withHost(storage.hostGuard(), hostnameOf(request), signal, restart) : restart(),
      storage.saveMessage(request, 1, signal),
    ]);
    await storage.markAcked({ messageId: request.messageId, extensions: 0, attempts: 1 });
  }
  async function worker(w: number): Promise<void> {
    const storage = storages[w % storages.length]!;
    for (let i = next++; i < count; i = next++) await life(storage, i);
  }
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return count / seconds;
}

const dbName = `mayhem_bench_${process.pid}`;
let url = values.db;
if (url === undefined) {
  await admin(`CREATE DATABASE ${dbName}`);
  const u = new URL(values.admin);
  u.pathname = `/${dbName}`;
  url = u.toString();
}
try {
  const storages = await Promise.all(
    Array.from({ length: instances }, () => openPostgresStorage({ url: url, logger, poolSize, maxBatch })),
  );
  console.log(
    `postgres storage bench: ${messages.toLocaleString('en-US')} messages, ${concurrency} concurrent, ` +
      `${instances} instance(s), pool ${poolSize}, host guard ${useGuard ? 'on' : 'off'}, 4 storage ops per life (node ${process.version})`,
  );
  // A short warm-up (connections, prepared statements), then the measured run.
  await run(storages, Math.min(messages, 10_000));
  const before = storages.map((s) => s.stats());
  const rate = await run(storages, messages);
  const after = storages.map((s) => s.stats());
  await Promise.all(storages.map((s) => s.close()));
  const hot = await queryOne(
    url,
    `SELECT n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname = 'messages'`,
  );
  const sum = (k: keyof ReturnType<PostgresStorage['stats']>): number =>
    after.reduce((t, a, i) => t + a[k] - before[i]![k], 0);
  const lives = Math.round(rate).toLocaleString('en-US');
  const ops = Math.round(rate * 4).toLocaleString('en-US');
  console.log(`postgres ${lives} msg-lives/s  ${ops} storage ops/s`);
  console.log(
    `  ${sum('writeBatches')} write statements (${Math.round(sum('writes') / Math.max(1, sum('writeBatches')))} writes each), ` +
      `${sum('readBatches')} read statements (${Math.round(sum('reads') / Math.max(1, sum('readBatches')))} ids each), ` +
      `${sum('lockStatements')} host-lock statements; ` +
      `${hot ? Math.round((100 * Number(hot.hot)) / Math.max(1, Number(hot.upd))) : '?'}% of row updates HOT`,
  );
} finally {
  if (values.db === undefined) await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
}
