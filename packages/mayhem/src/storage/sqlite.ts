/**
 * SQLite storage (better-sqlite3) with group commit.
 *
 * better-sqlite3 is synchronous: every statement runs on the event loop. One transaction per save
 * would cost a commit each and hold the loop for every message. Instead every operation is queued,
 * and one `setImmediate` flush runs all operations queued during that turn of the loop in ONE
 * transaction with prepared statements, then settles each caller's promise. A flush takes at most
 * `maxBatch` operations, so no single callback holds the loop for long; the rest go to the next
 * flush, after the loop has had a turn.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { AckRecord, DeadLetter, Storage } from '../core/contracts.js';
import { hostnameOf, type RestartRequest } from '../core/message.js';
import { checkFailureRate, closedError, rejectAborted, saveFailure } from './record.js';

/** Options for {@link openSqliteStorage}. */
export interface SqliteStorageOptions {
  /** Database file (created if missing; its directory must exist). `:memory:` works for tests. */
  path: string;
  logger: Logger;
  /** Probability in [0, 1] that `saveMessage` rejects with "Could not save <id>" (fault injection). */
  saveFailureRate?: number;
  /** Randomness for the fault injection; pass a seeded one for reproducible runs. */
  random?: () => number;
  /** Most operations per transaction (default 2,000). Bounds the loop time of one flush. */
  maxBatch?: number;
}

/** Counters of the group commit, for tests and the benchmark. */
export interface SqliteStats {
  /** Transactions committed or rolled back (one per flush that had work). */
  transactions: number;
  /** Operations run inside those transactions. */
  ops: number;
  /** The longest single flush, in ms (the loop time it held). */
  longestFlushMs: number;
  /** Transactions that failed and rejected their callers. */
  failedTransactions: number;
}

/** The SQLite adapter, with its group-commit counters. */
export interface SqliteStorage extends Storage {
  readonly stats: Readonly<SqliteStats>;
}

/** The schema version this code writes; `PRAGMA user_version` holds the file's. */
export const SCHEMA_VERSION = 1;

// Kept identical (names, types, meaning) to the PostgreSQL adapter's tables.
const SCHEMA_V1 = `
CREATE TABLE IF NOT EXISTS messages (
  message_id       TEXT PRIMARY KEY NOT NULL,
  instance_name    TEXT,
  hostname         TEXT,
  published_at     INTEGER,
  restarted        INTEGER NOT NULL DEFAULT 0,
  restart_attempts INTEGER NOT NULL DEFAULT 0,
  saved            INTEGER NOT NULL DEFAULT 0,
  acked            INTEGER NOT NULL DEFAULT 0,
  extensions       INTEGER NOT NULL DEFAULT 0,
  deliveries       INTEGER NOT NULL DEFAULT 0,
  dead_lettered    INTEGER NOT NULL DEFAULT 0,
  last_error       TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  restarted_at     INTEGER,
  acked_at         INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
  id          INTEGER PRIMARY KEY,
  message_id  TEXT,
  payload     TEXT NOT NULL,
  reason      TEXT NOT NULL,
  deliveries  INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_message_id ON dead_letters (message_id) WHERE message_id IS NOT NULL;
`;

// Each write is one upsert statement, so it is idempotent and needs no read first. Counts take the
// max and first-time stamps use coalesce, so a retried or reordered write leaves the same row.
const SQL = {
  isRestartDone: `SELECT restarted FROM messages WHERE message_id = ?`,
  save: `INSERT INTO messages (message_id, instance_name, hostname, published_at, saved, deliveries, created_at, updated_at)
         VALUES (?, ?, ?, ?, 1, ?, ?, ?)
         ON CONFLICT (message_id) DO UPDATE SET
           instance_name = excluded.instance_name, hostname = excluded.hostname, published_at = excluded.published_at,
           saved = 1, deliveries = max(deliveries, excluded.deliveries), updated_at = excluded.updated_at`,
  restarted: `INSERT INTO messages (message_id, restarted, restart_attempts, restarted_at, created_at, updated_at)
         VALUES (?, 1, ?, ?, ?, ?)
         ON CONFLICT (message_id) DO UPDATE SET
           restarted = 1, restart_attempts = max(restart_attempts, excluded.restart_attempts),
           restarted_at = coalesce(restarted_at, excluded.restarted_at), updated_at = excluded.updated_at`,
  acked: `INSERT INTO messages (message_id, acked, extensions, restart_attempts, acked_at, created_at, updated_at)
         VALUES (?, 1, ?, ?, ?, ?, ?)
         ON CONFLICT (message_id) DO UPDATE SET
           acked = 1, extensions = excluded.extensions, restart_attempts = max(restart_attempts, excluded.restart_attempts),
           acked_at = coalesce(acked_at, excluded.acked_at), updated_at = excluded.updated_at`,
  failed: `INSERT INTO messages (message_id, last_error, restart_attempts, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (message_id) DO UPDATE SET
           last_error = excluded.last_error, restart_attempts = max(restart_attempts, excluded.restart_attempts),
           updated_at = excluded.updated_at`,
  deadLetterMessage: `INSERT INTO messages (message_id, instance_name, hostname, published_at, dead_lettered, last_error, deliveries, created_at, updated_at)
         VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)
         ON CONFLICT (message_id) DO UPDATE SET
           instance_name = excluded.instance_name, hostname = excluded.hostname, published_at = excluded.published_at,
           dead_lettered = 1, last_error = excluded.last_error, deliveries = max(deliveries, excluded.deliveries),
           updated_at = excluded.updated_at`,
  deadLetterParsed: `INSERT INTO dead_letters (message_id, payload, reason, deliveries, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO UPDATE SET
           payload = excluded.payload, reason = excluded.reason, deliveries = excluded.deliveries`,
  deadLetterMalformed: `INSERT INTO dead_letters (message_id, payload, reason, deliveries, created_at) VALUES (NULL, ?, ?, ?, ?)`,
} as const;

const enum Kind {
  IsRestartDone,
  Save,
  Restarted,
  Acked,
  Failed,
  DeadLetter,
}

/** One queued operation. A class with fixed fields keeps the hot path monomorphic and allocation-light. */
class Op {
  constructor(
    readonly kind: Kind,
    readonly id: string,
    readonly a: unknown,
    readonly b: unknown,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: boolean | undefined) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
}

const DEFAULT_MAX_BATCH = 2_000;
// A flush is expected to take a few ms; one this long is worth a warning (the slow-callback threshold).
const SLOW_FLUSH_MS = 100;
// Waiting on a lock blocks the event loop, so wait briefly and let the pipeline's retry handle contention.
const BUSY_TIMEOUT_MS = 200;

/**
 * Open (creating or migrating) the SQLite database at `opts.path` and return a group-committing
 * {@link Storage}. Throws a one-line Error naming the path when it cannot be opened or written.
 */
export function openSqliteStorage(opts: SqliteStorageOptions): SqliteStorage {
  const failureRate = checkFailureRate(opts.saveFailureRate);
  const random = opts.random ?? Math.random;
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  const log = opts.logger;
  const db = openDatabase(opts.path);

  const st = {
    isRestartDone: db.prepare<[string], number>(SQL.isRestartDone).pluck(),
    save: db.prepare(SQL.save),
    restarted: db.prepare(SQL.restarted),
    acked: db.prepare(SQL.acked),
    failed: db.prepare(SQL.failed),
    deadLetterMessage: db.prepare(SQL.deadLetterMessage),
    deadLetterParsed: db.prepare(SQL.deadLetterParsed),
    deadLetterMalformed: db.prepare(SQL.deadLetterMalformed),
  };

  const stats: SqliteStats = { transactions: 0, ops: 0, longestFlushMs: 0, failedTransactions: 0 };
  let queue: Op[] = [];
  let head = 0;
  let scheduled = false;
  let closed = false;
  let drained: (() => void)[] = [];

  // Runs one batch; results land in `results` (reads) in batch order. Throws to roll back.
  const runBatch = db.transaction((batch: Op[], results: (boolean | undefined)[], now: number) => {
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.signal?.aborted) continue; // settled as aborted after the commit
      switch (op.kind) {
        case Kind.IsRestartDone:
          results[i] = st.isRestartDone.get(op.id) === 1;
          break;
        case Kind.Save: {
          const r = op.a as RestartRequest;
          st.save.run(op.id, r.instanceName, hostnameOf(r), r.publishedAt, op.b, now, now);
          break;
        }
        case Kind.Restarted:
          st.restarted.run(op.id, op.a, now, now, now);
          break;
        case Kind.Acked: {
          const r = op.a as AckRecord;
          st.acked.run(op.id, r.extensions, r.attempts, now, now, now);
          break;
        }
        case Kind.Failed:
          st.failed.run(op.id, op.a, op.b, now, now);
          break;
        case Kind.DeadLetter: {
          const d = op.a as DeadLetter;
          if (d.request === undefined) {
            st.deadLetterMalformed.run(d.payload, d.reason, d.deliveries, now);
          } else {
            const r = d.request;
            st.deadLetterParsed.run(r.messageId, d.payload, d.reason, d.deliveries, now);
            st.deadLetterMessage.run(r.messageId, r.instanceName, hostnameOf(r), r.publishedAt, d.reason, d.deliveries, now, now);
          }
          break;
        }
      }
    }
  });

  function flush(): void {
    scheduled = false;
    const end = Math.min(queue.length, head + maxBatch);
    const batch = head === 0 && end === queue.length ? queue : queue.slice(head, end);
    if (end === queue.length) {
      queue = [];
      head = 0;
    } else {
      head = end;
      schedule(); // the rest runs after the loop has had a turn
    }
    if (batch.length === 0) return settleDrain();

    const results: (boolean | undefined)[] = new Array<boolean | undefined>(batch.length);
    const started = performance.now();
    let failure: Error | undefined;
    try {
      runBatch.immediate(batch, results, Date.now());
    } catch (err) {
      failure = new Error(`SQLite transaction of ${batch.length} operations on ${opts.path} failed: ${describe(err)}`, { cause: err });
    }
    const took = performance.now() - started;
    stats.transactions++;
    stats.ops += batch.length;
    if (took > stats.longestFlushMs) stats.longestFlushMs = took;
    if (took > SLOW_FLUSH_MS) log.warn({ ms: Math.round(took), ops: batch.length }, 'Slow SQLite flush');
    if (failure !== undefined) {
      stats.failedTransactions++;
      log.error({ err: failure, ops: batch.length }, 'SQLite transaction failed; its callers will retry');
    }

    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.signal?.aborted) op.reject(op.signal.reason);
      else if (failure !== undefined) op.reject(failure);
      else op.resolve(results[i]);
    }
    settleDrain();
  }

  function settleDrain(): void {
    if (queue.length > 0 || drained.length === 0) return;
    const waiters = drained;
    drained = [];
    for (const w of waiters) w();
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(flush);
  }

  function enqueue<T extends boolean | undefined>(kind: Kind, id: string, a: unknown, b: unknown, signal: AbortSignal | undefined): Promise<T> {
    if (closed) return Promise.reject(closedError());
    if (signal?.aborted) return rejectAborted(signal);
    return new Promise<T>((res, rej) => {
      queue.push(new Op(kind, id, a, b, signal, res as (v: boolean | undefined) => void, rej));
      schedule();
    });
  }

  return {
    stats,

    isRestartDone(messageId: string, signal?: AbortSignal): Promise<boolean> {
      return enqueue<boolean>(Kind.IsRestartDone, messageId, undefined, undefined, signal);
    },

    saveMessage(request: RestartRequest, deliveryCount: number, signal?: AbortSignal): Promise<void> {
      if (failureRate > 0 && random() < failureRate) return Promise.reject(saveFailure(request.messageId));
      return enqueue<undefined>(Kind.Save, request.messageId, request, deliveryCount, signal);
    },

    markRestarted(messageId: string, attempts: number, signal?: AbortSignal): Promise<void> {
      return enqueue<undefined>(Kind.Restarted, messageId, attempts, undefined, signal);
    },

    markAcked(record: AckRecord): Promise<void> {
      return enqueue<undefined>(Kind.Acked, record.messageId, record, undefined, undefined);
    },

    markFailed(messageId: string, error: string, attempts: number): Promise<void> {
      return enqueue<undefined>(Kind.Failed, messageId, error, attempts, undefined);
    },

    deadLetter(entry: DeadLetter): Promise<void> {
      return enqueue<undefined>(Kind.DeadLetter, entry.request?.messageId ?? '', entry, undefined, undefined);
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // Writes queued before close still commit: wait for the flushes already scheduled.
      if (queue.length > 0) await new Promise<void>((res) => drained.push(res));
      db.close();
      log.debug({ path: opts.path, ...stats }, 'Closed SQLite storage');
    },
  };
}

/** Open the file, set the pragmas and migrate; every failure becomes one line naming the path. */
function openDatabase(path: string): Database.Database {
  if (path !== ':memory:' && path !== '') {
    const dir = dirname(resolve(path));
    if (!existsSync(dir)) throw new Error(`Cannot open SQLite database ${JSON.stringify(path)}: directory ${JSON.stringify(dir)} does not exist`);
    if (!statSync(dir).isDirectory()) throw new Error(`Cannot open SQLite database ${JSON.stringify(path)}: ${JSON.stringify(dir)} is not a directory`);
  }
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    db.pragma('journal_mode = WAL');
    // In WAL mode NORMAL loses at most the last commits on power loss, never consistency; it
    // spares an fsync per commit.
    db.pragma('synchronous = NORMAL');
    migrate(db);
    return db;
  } catch (err) {
    db?.close();
    throw new Error(`Cannot open SQLite database ${JSON.stringify(path)}: ${describe(err)}`, { cause: err });
  }
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(`schema version ${version} is newer than this mayhem supports (${SCHEMA_VERSION})`);
  }
  if (version === SCHEMA_VERSION) return;
  db.transaction(() => {
    db.exec(SCHEMA_V1);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
