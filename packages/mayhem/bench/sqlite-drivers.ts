/**
 * better-sqlite3 against `node:sqlite`, each in a worker thread as the storage worker runs, doing the
 * storage's hot work: per message one row inserted (UUIDv4 text key, the record's columns) and later
 * updated (the ack), in group commits of 2,000 statements per transaction, WAL, synchronous=NORMAL.
 * Prints one line per driver: messages/s and µs of the worker's CPU per message.
 *
 *   scripts/with-node.sh 26 node packages/mayhem/dist/bench/sqlite-drivers.js [--n 200000] [--rounds 3]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

type Driver = 'better-sqlite3' | 'node:sqlite';

interface Stmt {
  run(...args: unknown[]): unknown;
}
interface Db {
  exec(sql: string): void;
  prepare(sql: string): Stmt;
  close(): void;
}

const SCHEMA = `PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768;
CREATE TABLE messages (message_id TEXT PRIMARY KEY, instance_name TEXT, hostname TEXT, published_at INTEGER,
  restarted INTEGER NOT NULL DEFAULT 0, saved INTEGER NOT NULL DEFAULT 0, acked INTEGER NOT NULL DEFAULT 0,
  extensions INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0, created_at INTEGER, acked_at INTEGER)`;

async function open(driver: Driver, path: string): Promise<Db> {
  if (driver === 'better-sqlite3') {
    const Database = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => Db;
    return new Database(path);
  }
  const { DatabaseSync } = (await import('node:sqlite')) as unknown as { DatabaseSync: new (p: string) => Db };
  return new DatabaseSync(path);
}

async function work(driver: Driver, n: number): Promise<{ ms: number; cpuUs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-drivers-'));
  try {
    const db = await open(driver, join(dir, 'd.db'));
    db.exec(SCHEMA);
    const insert = db.prepare(
      `INSERT INTO messages (message_id, instance_name, hostname, published_at, restarted, saved, deliveries, created_at)
       VALUES (?, ?, ?, ?, 1, 1, 1, ?)`,
    );
    const ack = db.prepare(
      'UPDATE messages SET acked = 1, extensions = max(extensions, ?), acked_at = ? WHERE message_id = ?',
    );
    const ids = Array.from({ length: n }, () => randomUUID());
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    // A batch holds the saves of 1,000 new messages and the acks of the 1,000 before: 2,000 statements.
    const BATCH = 1000;
    for (let i = 0; i <= n; i += BATCH) {
      db.exec('BEGIN IMMEDIATE');
      for (let j = i; j < Math.min(n, i + BATCH); j++) {
        const id = ids[j]!;
        insert.run(id, `cattle-${j % 9973}`, `cattle-${j % 9973}.example.net`, 1_700_000_000_000 + j, Date.now());
      }
      for (let j = Math.max(0, i - BATCH); j < i; j++) ack.run(0, Date.now(), ids[j]!);
      db.exec('COMMIT');
    }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    db.close();
    return { ms, cpuUs: cpu.user + cpu.system };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread) {
  const { driver, n } = workerData as { driver: Driver; n: number };
  parentPort!.postMessage(await work(driver, n));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { n: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '3' } },
  });
  const n = Number(values.n);
  const drivers: Driver[] = ['better-sqlite3', 'node:sqlite'];
  const seen = new Map<Driver, { ms: number; cpuUs: number }[]>();
  for (let r = 0; r < Number(values.rounds); r++) {
    for (const driver of drivers) {
      const result = await new Promise<{ ms: number; cpuUs: number } | string>((resolve) => {
        const w = new Worker(fileURLToPath(import.meta.url), { workerData: { driver, n } });
        w.once('message', resolve);
        w.once('error', (e) => resolve(e.message.split('\n')[0] ?? 'failed'));
      });
      if (typeof result === 'string') {
        process.stderr.write(`  ${driver}: ${result}\n`);
        continue;
      }
      seen.set(driver, [...(seen.get(driver) ?? []), result]);
    }
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  for (const driver of drivers) {
    const runs = seen.get(driver);
    if (runs === undefined) {
      process.stdout.write(`Node ${process.versions.node}  ${driver.padEnd(14)}  unavailable\n`);
      continue;
    }
    const ms = med(runs.map((x) => x.ms));
    const cpu = med(runs.map((x) => x.cpuUs));
    process.stdout.write(
      `Node ${process.versions.node}  ${driver.padEnd(14)}  ${Math.round((n * 1000) / ms)
        .toLocaleString('en-US')
        .padStart(9)} msg/s  ${(cpu / n).toFixed(2).padStart(6)} CPU µs/msg  (median of ${runs.length})\n`,
    );
  }
}
