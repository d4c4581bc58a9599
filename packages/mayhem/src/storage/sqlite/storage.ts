/**
 * SQLite storage (better-sqlite3) with group commit.
 *
 * better-sqlite3 is synchronous: every statement runs on the event loop. One transaction per save
 * would cost a commit each and hold the loop for every message. Instead every operation is queued,
 * and one `setImmediate` flush runs all operations queued during that turn of the loop in ONE
 * transaction with prepared statements, then settles each caller's promise. A flush takes at most
 * `maxBatch` operations, so no single callback holds the loop for long; the rest go to the next
 * flush, after the loop has had a turn.
 *
 * Within a flush the writes to one message fold into one row write (record-patch.ts); a new message
 * appends a row, a known one is updated in place by its row id. The schema and why it holds its
 * speed past a million rows: sqlite/schema.ts and sqlite/id-index.ts.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type {
  AckRecord,
  CallCount,
  ClaimMode,
  DeadLetter,
  RestartClaim,
  Storage,
  UnfinishedReport,
} from '../../core/contracts.js';
import type { RestartRequest } from '../../core/message.js';
import type { AuditEntry } from '../../core/rails.js';
import { SqliteFleetControl } from './control.js';
import { SqliteExperimentStore } from './experiments.js';
import { claimWrites, closedError, rejectAborted, restartStateOf } from '../record.js';
import {
  ackPatch,
  callsPatch,
  claimPatch,
  deadLetterPatch,
  emptyPatch,
  failurePatch,
  foldPatch,
  releasePatch,
  restartedPatch,
  savePatch,
  type RecordPatch,
} from '../record-patch.js';
import { DEFAULT_WAL_LIMIT_BYTES, startCheckpointer, type CheckpointStats } from './checkpoint.js';
import { DEFAULT_DEAD_LETTER_RETENTION_MS, DEFAULT_RETENTION_MS, startPruner, type Pruner } from './retention.js';
import { openDatabaseFile, type OpenedFile } from './file.js';
import { IdIndex } from './id-index.js';
import { readUnfinished } from './unfinished.js';
import { LEGACY_FILES, migrate } from './schema.js';
import { prepareRowWriter, writeRows } from './rows.js';
import { auditParams, INSERT_AUDIT_SQL } from '../audit-row.js';

export { SCHEMA_VERSION } from './schema.js';

/** Options for {@link openSqliteStorage}. */
export interface SqliteStorageOptions {
  /** Database file (created if missing; its directory must exist). `:memory:` works for tests. */
  path: string;
  logger: Logger;
  /** Most operations per transaction (default 2,000). Bounds the loop time of one flush. */
  maxBatch?: number;
  /** The WAL stays under this many bytes whatever the write rate (default 64 MiB); see sqlite/checkpoint.ts. */
  walLimitBytes?: number;
  /** New ids held in memory before they are written to the id index in key-range batches (see sqlite/id-index.ts). */
  indexBatchAfter?: number;
  /** Delete acked messages this much older than now, ms; 0 keeps them (default 7 days). See sqlite/retention.ts. */
  retentionMs?: number;
  /** Delete dead letters and dead-lettered messages this much older than now, ms; 0 keeps them (default 30 days). */
  deadLetterRetentionMs?: number;
  /** Time between retention passes (default 10 s). */
  retentionEveryMs?: number;
  /** Wall clock for the records' timestamps and retention (tests simulate months with it). */
  now?: () => number;
}

/** Counters of the group commit, for tests and the benchmark. */
export interface SqliteStats {
  /** Transactions committed or rolled back (one per flush that had work). */
  transactions: number;
  /** Operations run inside those transactions. */
  ops: number;
  /** The longest single flush, in ms (the loop time it held). */
  longestFlushMs: number;
  /** The most operations one flush carried (bounded by maxBatch). */
  maxBatchOps: number;
  /** Transactions that failed and rejected their callers. */
  failedTransactions: number;
  /** Row upserts into `messages` (fewer than write operations when writes to one message shared a flush). */
  rowWrites: number;
}

/** The SQLite adapter, with its group-commit counters. */
export interface SqliteStorage extends Storage {
  control(): SqliteFleetControl;
  experiments(): SqliteExperimentStore;
  readonly stats: Readonly<SqliteStats>;
  /** The background checkpointer's counters (undefined for `:memory:` or when it fell back). */
  readonly checkpoints: Readonly<CheckpointStats> | undefined;
  /** Retention: its counters, and a pass on demand (tests, benchmarks). */
  readonly retention: Pick<Pruner, 'stats' | 'pass'>;
}

const SQL = {
  restartState: `SELECT instance_name AS instanceName, restarted, restart_claimed AS restartClaimed, restart_released AS restartReleased,
                 http_calls AS httpCalls, http_calls_failed AS httpCallsFailed, restart_audited AS restartAudited,
                 in_doubt_audited AS inDoubtAudited FROM message_rows WHERE id = ?`,
  insertAudit: INSERT_AUDIT_SQL,
  deadLetterParsed: `INSERT INTO dead_letters (message_id, payload, reason, deliveries, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO UPDATE SET
           payload = excluded.payload, reason = excluded.reason, deliveries = max(deliveries, excluded.deliveries)`,
  deadLetterMalformed: `INSERT INTO dead_letters (message_id, payload, reason, deliveries, created_at) VALUES (NULL, ?, ?, ?, ?)`,
} as const;

/** One message's row within a flush: where it is, what a claim read of it, what the flush writes to it. */
class PendingRow {
  /** Its row: undefined until looked up, null when the message has none yet. */
  row: number | null | undefined = undefined;
  /** The committed restart state, once read for a claim (null: no row). */
  stored: StoredRestart | null | undefined = undefined;
  /**
   * The flush's writes to it, folded (undefined: nothing to write, e.g. a claim that only looked).
   * The first write's own patch is the accumulator: ops are not reused after their flush.
   */
  patch: RecordPatch | undefined = undefined;

  write(patch: RecordPatch): void {
    if (this.patch === undefined) this.patch = patch;
    else foldPatch(this.patch, patch);
  }
}

type Result = RestartClaim | CallCount | undefined;

/** What an op reads before it writes: a claim (see claimWrites), or the webhook calls (writes nothing). */
type ReadKind = ClaimMode | 'calls';

/** One queued operation: one class with fixed fields, so the flush loop sees one shape whatever the write. */
class Op {
  constructor(
    /** What the write contributes; for a claim, what it writes if it claims. Undefined: a malformed dead letter. */
    readonly patch: RecordPatch | undefined,
    /** Claims only: how to claim (see claimWrites); `calls`: read the webhook calls. */
    readonly claimMode: ReadKind | undefined,
    /** Dead letters only: the entry for the dead_letters table. */
    readonly deadLetter: DeadLetter | undefined,
    /** Audit rows written in the same transaction as the patch (see Storage.markRestarted). */
    readonly audit: readonly AuditEntry[] | undefined,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: Result) => void,
    readonly reject: (reason: unknown) => void,
  ) {}
}

interface StoredRestart {
  instanceName: string | null;
  restarted: number;
  restartClaimed: number;
  restartReleased: number;
  httpCalls: number;
  httpCallsFailed: number;
  restartAudited: number;
  inDoubtAudited: number;
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
  const maxBatch = opts.maxBatch ?? DEFAULT_MAX_BATCH;
  const log = opts.logger;
  const path = opts.path;
  const file = openDatabase(path);
  const db = file.db;
  let ids: IdIndex;
  // Rows before `thisRunFrom` are earlier runs'; meta.run_from says where the previous run began.
  let thisRunFrom = 1;
  let previousRunFrom = 1;
  try {
    ids = new IdIndex(db, opts.indexBatchAfter);
    thisRunFrom = ids.nextRow;
    previousRunFrom =
      (db.prepare(`SELECT value FROM meta WHERE key = 'run_from'`).pluck().get() as number | undefined) ?? 1;
    db.prepare(
      `INSERT INTO meta (key, value) VALUES ('run_from', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ).run(thisRunFrom);
  } catch (err) {
    db.close();
    file.releaseLock();
    throw new Error(`Cannot open SQLite database ${JSON.stringify(path)}: ${describe(err)}`, { cause: err });
  }

  const st = {
    restartState: db.prepare<[number], StoredRestart>(SQL.restartState),
    deadLetterParsed: db.prepare(SQL.deadLetterParsed),
    deadLetterMalformed: db.prepare(SQL.deadLetterMalformed),
    insertAudit: db.prepare(SQL.insertAudit),
  };
  const rowWriter = prepareRowWriter(db);
  // While the checkpointer truncates the WAL, flushes wait (the loop stays free; see sqlite/checkpoint.ts).
  let paused = false;
  const checkpointer =
    path === ':memory:' || path === ''
      ? undefined
      : startCheckpointer(db, {
          path,
          logger: log,
          walLimitBytes: opts.walLimitBytes ?? DEFAULT_WAL_LIMIT_BYTES,
          pause: () => {
            paused = true;
          },
          resume: () => {
            paused = false;
            if (queue.length > head) schedule();
          },
        });

  const now = opts.now ?? Date.now;
  const stats: SqliteStats = {
    transactions: 0,
    ops: 0,
    longestFlushMs: 0,
    maxBatchOps: 0,
    failedTransactions: 0,
    rowWrites: 0,
  };
  let queue: Op[] = [];
  let head = 0;
  let scheduled = false;
  let closed = false;
  let drained: (() => void)[] = [];
  const pruner = startPruner(
    db,
    ids,
    {
      retentionMs: opts.retentionMs ?? DEFAULT_RETENTION_MS,
      deadLetterRetentionMs: opts.deadLetterRetentionMs ?? DEFAULT_DEAD_LETTER_RETENTION_MS,
      everyMs: opts.retentionEveryMs,
      now,
    },
    { canWrite: () => !paused && !closed, logger: log },
  );
  // The rails' fleet state (kill switch, per-host restart times, audit trail) lives in the same file.
  const control = new SqliteFleetControl(db, log, true);
  const experiments = new SqliteExperimentStore(db, log);

  // Runs one batch; claim results land in `results` in batch order. Throws to roll back.
  // Writes are folded into one patch per messageId and written at the end, so every read during the
  // batch sees the rows as committed before it; a claim merges that with the patch queued before
  // it, so it still sees every earlier write.
  const runBatch = db.transaction((batch: Op[], results: Result[], now: number) => {
    const pending = new Map<string, PendingRow>();
    // Every message's row, first: from memory for the newest, else one lookup for all the rest.
    let lookUp: string[] | undefined;
    for (const op of batch) {
      if (op.signal?.aborted === true || op.patch === undefined) continue;
      const id = op.patch.messageId;
      let p = pending.get(id);
      if (p === undefined) {
        p = new PendingRow();
        pending.set(id, p);
      } else if (p.row !== undefined) continue;
      const row = ids.pendingRow(id);
      p.row = row ?? null;
      if (row === undefined) (lookUp ??= []).push(id);
    }
    if (lookUp !== undefined) ids.lookUp(lookUp, (id, row) => (pending.get(id)!.row = row));
    for (let i = 0; i < batch.length; i++) {
      const op = batch[i]!;
      if (op.signal?.aborted) continue; // settled as aborted after the commit
      if (op.audit !== undefined) for (const e of op.audit) st.insertAudit.run(...auditParams(e));
      const d = op.deadLetter;
      if (d !== undefined) {
        if (d.request === undefined) st.deadLetterMalformed.run(d.payload, d.reason, d.deliveries, now);
        else st.deadLetterParsed.run(d.request.messageId, d.payload, d.reason, d.deliveries, now);
      }
      const patch = op.patch;
      if (patch === undefined) continue;
      const p = pending.get(patch.messageId)!;
      if (op.claimMode !== undefined) {
        if (p.stored === undefined) p.stored = p.row == null ? null : (st.restartState.get(p.row) ?? null);
        if (op.claimMode === 'calls') {
          results[i] = {
            calls: Math.max(p.stored?.httpCalls ?? 0, p.patch?.httpCalls ?? 0),
            failed: Math.max(p.stored?.httpCallsFailed ?? 0, p.patch?.httpCallsFailed ?? 0),
          };
          continue;
        }
        const found = restartStateOf(merged(p.stored ?? undefined, p.patch), patch.instanceName!);
        results[i] = found;
        if (!claimWrites(op.claimMode, found)) continue;
      }
      p.write(patch);
    }
    const writes = writeRows(rowWriter, ids, pending, now);
    ids.drain();
    stats.rowWrites += writes;
  });

  function flush(): void {
    scheduled = false;
    if (paused) return; // resume() schedules the next flush
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

    const results: Result[] = new Array<Result>(batch.length);
    const started = performance.now();
    let failure: Error | undefined;
    try {
      runBatch.immediate(batch, results, now());
      ids.committed();
    } catch (err) {
      ids.rolledBack();
      failure = new Error(`SQLite transaction of ${batch.length} operations on ${opts.path} failed: ${describe(err)}`, {
        cause: err,
      });
    }
    const took = performance.now() - started;
    stats.transactions++;
    stats.ops += batch.length;
    if (took > stats.longestFlushMs) stats.longestFlushMs = took;
    if (batch.length > stats.maxBatchOps) stats.maxBatchOps = batch.length;
    // A flush that failed waiting on a lock is the outage the pipeline reports (once); only a slow
    // flush that did its work says something about this adapter.
    if (took > SLOW_FLUSH_MS && failure === undefined)
      log.warn({ ms: Math.round(took), ops: batch.length }, 'Slow SQLite flush');
    if (failure !== undefined) {
      stats.failedTransactions++;
      // Its callers retry and the pipeline's database health says it once: per transaction it is detail.
      log.debug({ err: failure.message, ops: batch.length }, 'SQLite transaction failed; its callers will retry');
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

  function enqueue<T extends Result>(
    patch: RecordPatch | undefined,
    signal: AbortSignal | undefined,
    claimMode?: ReadKind,
    deadLetter?: DeadLetter,
    audit?: readonly AuditEntry[],
  ): Promise<T> {
    if (closed) return Promise.reject(closedError());
    if (signal?.aborted) return rejectAborted(signal);
    return new Promise<T>((res, rej) => {
      queue.push(new Op(patch, claimMode, deadLetter, audit, signal, res as (v: Result) => void, rej));
      schedule();
    });
  }

  return {
    stats,
    get checkpoints() {
      return checkpointer?.stats;
    },
    retention: { stats: pruner.stats, pass: () => pruner.pass() },

    control: () => control,

    experiments: () => experiments,

    unfinished(): Promise<UnfinishedReport> {
      return readUnfinished(db, thisRunFrom, previousRunFrom, () => !closed);
    },

    claimRestart(
      request: RestartRequest,
      deliveryCount: number,
      mode: ClaimMode,
      signal?: AbortSignal,
    ): Promise<RestartClaim> {
      return enqueue<RestartClaim>(claimPatch(request, deliveryCount), signal, mode);
    },

    saveMessage(request: RestartRequest, deliveryCount: number, signal?: AbortSignal): Promise<void> {
      return enqueue<undefined>(savePatch(request, deliveryCount), signal);
    },

    markRestarted(
      messageId: string,
      attempts: number,
      signal?: AbortSignal,
      audit?: readonly AuditEntry[],
    ): Promise<void> {
      return enqueue<undefined>(restartedPatch(messageId, attempts, audit), signal, undefined, undefined, audit);
    },

    releaseRestart(messageId: string, deliveryCount: number, attempts: number): Promise<void> {
      return enqueue<undefined>(releasePatch(messageId, deliveryCount, attempts), undefined);
    },

    markAcked(record: AckRecord): Promise<void> {
      return enqueue<undefined>(ackPatch(record), undefined, undefined, undefined, record.audit);
    },

    markFailed(messageId: string, error: string, attempts: number, audit?: readonly AuditEntry[]): Promise<void> {
      return enqueue<undefined>(
        failurePatch(messageId, error, attempts, audit),
        undefined,
        undefined,
        undefined,
        audit,
      );
    },

    readCalls(messageId: string): Promise<CallCount> {
      return enqueue<CallCount>(emptyPatch(messageId), undefined, 'calls');
    },

    recordCalls(messageId: string, count: CallCount): Promise<void> {
      return enqueue<undefined>(callsPatch(messageId, count), undefined);
    },

    deadLetter(entry: DeadLetter): Promise<void> {
      return enqueue<undefined>(
        entry.request && deadLetterPatch(entry.request, entry),
        undefined,
        undefined,
        entry,
        entry.audit,
      );
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      pruner.stop();
      await control.close();
      await experiments.flush();
      // Writes queued before close still commit: wait for the flushes already scheduled.
      if (queue.length > 0) await new Promise<void>((res) => drained.push(res));
      // The ids still in memory go to the index now (sorted: one pass over the index pages), so the
      // next open has nothing to catch up; if this fails, the next open does it.
      try {
        db.transaction(() => ids.indexAll()).immediate();
      } catch (err) {
        log.warn({ err: describe(err) }, 'Could not index the newest message ids at close; the next start will');
      }
      await checkpointer?.stop();
      // The last connection to close checkpoints the WAL into the database file.
      db.close();
      file.releaseLock();
      log.debug({ path: opts.path, ...stats }, 'Closed SQLite storage');
    },
  };
}

/**
 * Check, lock and open the file (see sqlite/file.ts), set the pragmas and migrate; every failure
 * becomes one line naming the path.
 */
function openDatabase(path: string): OpenedFile {
  const file = openDatabaseFile(path, LEGACY_FILES, BUSY_TIMEOUT_MS);
  const { db } = file;
  try {
    db.pragma('journal_mode = WAL');
    // In WAL mode NORMAL loses at most the last commits on power loss, never consistency; it
    // spares an fsync per commit.
    db.pragma('synchronous = NORMAL');
    // 32 MB of page cache (default 2 MB): the hot part of the id index and the newest rows stay in
    // memory. 64 MB measured no faster at a million messages (the id index is ~26 MB) and costs RSS.
    db.pragma('cache_size = -32768');
    migrate(db);
    return file;
  } catch (err) {
    db.close();
    file.releaseLock();
    throw new Error(`Cannot open SQLite database ${JSON.stringify(path)}: ${describe(err)}`, { cause: err });
  }
}

/** The committed restart state of a row with the writes queued for it earlier in the same flush. */
function merged(row: StoredRestart | undefined, patch: RecordPatch | undefined): Parameters<typeof restartStateOf>[0] {
  if (patch === undefined) {
    if (row === undefined) return undefined;
    return {
      instanceName: row.instanceName,
      restarted: row.restarted === 1,
      restartClaimed: row.restartClaimed,
      restartReleased: row.restartReleased,
      restartAudited: row.restartAudited === 1,
      inDoubtAudited: row.inDoubtAudited === 1,
    };
  }
  return {
    instanceName: row?.instanceName ?? patch.instanceName,
    restarted: row?.restarted === 1 || patch.restarted,
    restartClaimed: Math.max(row?.restartClaimed ?? 0, patch.restartClaimed),
    restartReleased: Math.max(row?.restartReleased ?? 0, patch.restartReleased),
    restartAudited: row?.restartAudited === 1 || patch.restartAudited,
    inDoubtAudited: row?.inDoubtAudited === 1 || patch.inDoubtAudited,
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
