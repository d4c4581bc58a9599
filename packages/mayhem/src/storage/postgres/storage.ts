/**
 * PostgreSQL storage: message records shared by a fleet of mayhem instances.
 *
 * - Every write is an idempotent upsert keyed by messageId. Flags only go false → true, counters
 *   only grow (GREATEST), so a write retried after an ambiguous failure, or replayed by a
 *   redelivery on another instance, changes nothing.
 * - Group commit: the writes of one tick (and those arriving while a batch is on the wire) are
 *   merged per messageId and sent as ONE statement (a JSON array unpacked by json_to_recordset,
 *   dead letters in a data-modifying CTE of the same statement). One statement = one transaction
 *   = one WAL flush for the whole batch. Each caller's promise resolves when its batch committed.
 * - claimRestart is batched the same way: one batch of claims at a time, read and recorded in one
 *   statement (CLAIM_SQL in postgres/sql.ts).
 * - A failed batch rejects its callers with a clear error; the pool drops broken connections and
 *   opens new ones on the next batch, so a restarted server or terminated connections heal by
 *   themselves. The pipeline retries saves.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type {
  AckRecord,
  CallCount,
  ClaimMode,
  DeadLetter,
  HostGuard,
  RestartClaim,
  Storage,
} from '../../core/contracts.js';
import type { AuditEntry, FleetControl } from '../../core/rails.js';
import { PgFleetControl } from './control.js';
import { PgExperimentStore } from './experiments.js';
import type { ExperimentStore } from '../../core/experiment.js';
import { hostnameOf, type RestartRequest } from '../../core/message.js';
import { closedError } from '../record.js';
import {
  ackPatch,
  callsPatch,
  deadLetterPatch,
  failurePatch,
  foldDeadLetter,
  foldPatch,
  releasePatch,
  restartedPatch,
  savePatch,
  emptyPatch,
  type RecordPatch,
} from '../record-patch.js';
import { Batcher } from './batch.js';
import { auditRowIn, messageRow, text, type AuditRowIn, type MessageRow } from './row.js';
import { CLAIM_SQL, WRITE_SQL } from './sql.js';
import { describe, PgHostGuard } from './host-guard.js';
import { migrate } from './schema.js';
import { startPgPruner, type PgPruner } from './retention.js';

export interface PostgresStorageOptions {
  /** `postgres://user:pass@host:port/db` (or `postgresql://`). */
  readonly url: string;
  readonly logger: Logger;
  /** Connections for reads and writes (the host guard uses one more of its own). Default 4. */
  readonly poolSize?: number;
  /** Most message rows per write statement / ids per read. Default 1000. */
  readonly maxBatch?: number;
  /** Time allowed to open a connection, ms. Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Messages in flight at once (informational: batches are bounded by `maxBatch`). */
  readonly maxInFlight?: number;
  /** Delete acked records this much older than now, ms; 0 keeps them (default 7 days). See postgres/retention.ts. */
  readonly retentionMs?: number;
  /** Delete dead letters and dead-lettered records this much older than now, ms; 0 keeps them (default 30 days). */
  readonly deadLetterRetentionMs?: number;
  /** Time between retention passes (default 10 s). */
  readonly retentionEveryMs?: number;
}

/** PostgreSQL could not be reached or used at start. Its message is one line, fit for the CLI. */
export class PostgresUnavailableError extends Error {
  override readonly name = 'PostgresUnavailableError';
}

/** A write or read failed; the message says what and why in one line. */
export class PostgresStorageError extends Error {
  override readonly name = 'PostgresStorageError';
}

export interface PostgresStorageStats {
  /** Write statements sent (one round trip and one commit each). */
  readonly writeBatches: number;
  /** Write requests they carried. */
  readonly writes: number;
  /** Read statements sent. */
  readonly readBatches: number;
  readonly reads: number;
  /** Statements on the host-lock connection. */
  readonly lockStatements: number;
}

export interface PostgresStorage extends Storage {
  hostGuard(): HostGuard;
  control(): FleetControl;
  experiments(): ExperimentStore;
  stats(): PostgresStorageStats;
  /** Retention: its counters, and a pass on demand (tests, benchmarks). */
  readonly retention: Pick<PgPruner, 'stats' | 'pass'>;
}

/** One claim request (see Storage.claimRestart), as the claim statement takes it. */
interface Claim {
  readonly message_id: string;
  readonly instance_name: string;
  readonly hostname: string;
  readonly published_at: number; // ms
  readonly delivery: number;
  readonly mode: ClaimMode;
}

interface DeadLetterRow {
  message_id: string | null;
  payload: string;
  reason: string;
  deliveries: number;
}

/**
 * `lazy`: the write may commit without waiting for its WAL flush (markAcked only; see WRITE_SQL).
 * A batch commits lazily only when every write in it is lazy.
 */
type Write = {
  readonly patch?: RecordPatch;
  readonly dead?: DeadLetterRow;
  readonly lazy?: boolean;
  /** Audit rows written by the same statement (see Storage.markRestarted). */
  readonly audit?: readonly AuditEntry[] | undefined;
};

/** Open the pool, check the server answers, create or migrate the schema. */
export async function openPostgresStorage(options: PostgresStorageOptions): Promise<PostgresStorage> {
  const opts = withUrlTuning(options);
  const where = describeTarget(opts.url);
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 4,
    application_name: 'mayhem',
    keepAlive: true,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
  });
  // Idle connections killed by the server (restart, pg_terminate_backend) emit here; the pool
  // has already dropped them. Without a listener the process would crash.
  pool.on('error', (error) => {
    // Every idle connection reports it when the server goes: the pipeline's database health says it once.
    opts.logger.debug({ err: error.message }, 'PostgreSQL connection lost (the pool reconnects on next use)');
  });
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new PostgresUnavailableError(`cannot connect to PostgreSQL at ${where}: ${describe(error)}`, {
      cause: error,
    });
  }
  const onClientError = (error: Error): void => {
    opts.logger.warn({ err: error.message }, 'PostgreSQL connection lost during schema migration');
  };
  client.on('error', onClientError);
  try {
    const before = await migrate(client);
    opts.logger.debug({ db: where, schemaVersionBefore: before }, 'PostgreSQL storage ready');
  } catch (error) {
    client.release(true);
    await pool.end().catch(() => undefined);
    throw new PostgresUnavailableError(`cannot prepare the PostgreSQL schema at ${where}: ${describe(error)}`, {
      cause: error,
    });
  } finally {
    client.removeListener('error', onClientError);
  }
  client.release();
  return new PgStorage(pool, opts);
}

class PgStorage implements PostgresStorage {
  readonly #writes: Batcher<Write, void>;
  readonly #claims: Batcher<Claim, RestartClaim>;
  #guard: PgHostGuard | undefined;
  #fleet: PgFleetControl | undefined;
  #experiments: PgExperimentStore | undefined;
  #closing: Promise<void> | undefined;
  /** Records of what already happened at the broker, still being written (close() waits for them). */
  readonly #recording = new Set<Promise<void>>();
  readonly #pruner: PgPruner;

  readonly #pool: pg.Pool;
  readonly #opts: PostgresStorageOptions;

  constructor(pool: pg.Pool, opts: PostgresStorageOptions) {
    this.#pool = pool;
    this.#opts = opts;
    this.#pruner = startPgPruner(
      pool,
      {
        retentionMs: opts.retentionMs ?? 7 * 86_400_000,
        deadLetterRetentionMs: opts.deadLetterRetentionMs ?? 30 * 86_400_000,
        everyMs: opts.retentionEveryMs,
      },
      opts.logger,
    );
    const maxBatch = opts.maxBatch ?? 1000;
    const connections = Math.max(2, opts.poolSize ?? 4);
    // Writes get most connections: two batches on the wire keep the WAL flushes overlapping.
    this.#writes = new Batcher<Write, void>({
      maxBatch,
      maxInFlight: Math.max(1, connections - 1),
      run: (batch) => this.#runWrites(batch),
      isolateOn: isDataError,
    });
    this.#claims = new Batcher<Claim, RestartClaim>({
      maxBatch,
      maxInFlight: 1,
      run: (claims) => this.#runClaims(claims),
      isolateOn: isDataError,
    });
  }

  claimRestart(
    request: RestartRequest,
    deliveryCount: number,
    mode: ClaimMode,
    signal?: AbortSignal,
  ): Promise<RestartClaim> {
    if (this.#closing) return Promise.reject(closedError());
    const claim: Claim = {
      message_id: text(request.messageId),
      instance_name: text(request.instanceName),
      hostname: text(hostnameOf(request)),
      published_at: request.publishedAt,
      delivery: deliveryCount,
      mode,
    };
    return this.#claims.submit(claim, signal);
  }

  saveMessage(request: RestartRequest, deliveryCount: number, signal?: AbortSignal): Promise<void> {
    if (this.#closing) return Promise.reject(closedError());
    return this.#write({ patch: savePatch(request, deliveryCount) }, signal);
  }

  markRestarted(
    messageId: string,
    attempts: number,
    signal?: AbortSignal,
    audit?: readonly AuditEntry[],
  ): Promise<void> {
    return this.#write({ patch: restartedPatch(messageId, attempts, audit), audit }, signal);
  }

  releaseRestart(messageId: string, deliveryCount: number, attempts: number): Promise<void> {
    return this.#durably({ patch: releasePatch(messageId, deliveryCount, attempts) });
  }

  // markAcked, markFailed and deadLetter record what already happened at the broker: the pipeline
  // does not retry them (a lost ack record would stay lost), so they ride out a PostgreSQL restart
  // here, retrying connection failures for a few seconds. saveMessage and markRestarted fail fast:
  // the pipeline retries those with its own backoff and can nack.

  // The ack record alone commits without waiting for the WAL flush (synchronous_commit = off for
  // that transaction only, when a batch holds nothing but ack records). What a crash can lose: the
  // last ~600 ms (3 × wal_writer_delay) of acked flags, so those messages show as not acked in the
  // record. Nothing else depends on the flag: the restart-done record (always flushed before the
  // ack) is what prevents a second restart, and the broker, not this row, decides redelivery. A
  // batch that carries any other write commits durably, the ack records with it.
  markAcked(record: AckRecord): Promise<void> {
    // Carrying the restart-done record or audit rows, it commits durably like markRestarted.
    return this.#durably({
      patch: ackPatch(record),
      lazy: record.restartDone !== true && record.audit === undefined,
      audit: record.audit,
    });
  }

  markFailed(messageId: string, error: string, attempts: number, audit?: readonly AuditEntry[]): Promise<void> {
    return this.#durably({ patch: failurePatch(messageId, error, attempts, audit), audit });
  }

  deadLetter(entry: DeadLetter): Promise<void> {
    const req = entry.request;
    return this.#durably({
      dead: {
        message_id: req ? text(req.messageId) : null,
        payload: text(entry.payload),
        reason: text(entry.reason),
        deliveries: entry.deliveries,
      },
      patch: req && deadLetterPatch(req, entry),
      audit: entry.audit,
    });
  }

  async readCalls(messageId: string): Promise<CallCount> {
    if (this.#closing) throw closedError();
    // Only the http executor reads it, before a webhook call: one round trip, not worth a batch.
    try {
      const { rows } = await this.#pool.query<{ calls: number; failed: number }>({
        name: 'mayhem_read_calls',
        text: 'SELECT http_calls AS calls, http_calls_failed AS failed FROM messages WHERE message_id = $1',
        values: [text(messageId)],
      });
      return { calls: rows[0]?.calls ?? 0, failed: rows[0]?.failed ?? 0 };
    } catch (error) {
      throw new PostgresStorageError(`PostgreSQL read failed: ${describe(error)}`, { cause: error });
    }
  }

  recordCalls(messageId: string, count: CallCount): Promise<void> {
    return this.#write({ patch: callsPatch(messageId, count) });
  }

  experiments(): ExperimentStore {
    if (this.#closing) throw closedError();
    this.#experiments ??= new PgExperimentStore(this.#pool, this.#opts.logger);
    return this.#experiments;
  }

  control(): FleetControl {
    if (this.#closing) throw closedError();
    this.#fleet ??= new PgFleetControl(this.#pool, this.#opts.url, this.#opts.logger, true);
    return this.#fleet;
  }

  hostGuard(): HostGuard {
    if (this.#closing) throw closedError();
    this.#guard ??= new PgHostGuard({ connectionString: this.#opts.url, logger: this.#opts.logger });
    return this.#guard;
  }

  get retention(): Pick<PgPruner, 'stats' | 'pass'> {
    return { stats: this.#pruner.stats, pass: () => this.#pruner.pass() };
  }

  stats(): PostgresStorageStats {
    return {
      writeBatches: this.#writes.batches,
      writes: this.#writes.items,
      readBatches: this.#claims.batches,
      reads: this.#claims.items,
      lockStatements: this.#guard?.statements ?? 0,
    };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#pruner.stop();
      // A record riding out a connection failure may be sleeping between attempts, outside the
      // batcher: the pool must stay open until it is written or given up. (A first attempt that
      // fails hands its record to a retry in a promise reaction: one turn of the loop later every
      // such hand-over has happened.)
      for (;;) {
        await Promise.all([this.#writes.drained(), this.#claims.drained()]);
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.#recording.size === 0 && this.#writes.idle) break;
        await Promise.allSettled([...this.#recording]);
      }
      await this.#fleet?.close();
      await this.#experiments?.flush();
      await this.#guard?.close();
      await this.#pool.end();
    })();
    return this.#closing;
  }

  #durably(w: Write): Promise<void> {
    if (this.#closing) return Promise.reject(closedError());
    // The first attempt goes straight to the batcher (close() drains it); only retries are tracked.
    return this.#writes.submit(w).catch((error: unknown) => this.#retryRecord(w, error));
  }

  #retryRecord(w: Write, error: unknown): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passed on as it came
    if (!isConnectionError(error)) return Promise.reject(error);
    const recording = this.#record(w);
    this.#recording.add(recording);
    const forget = (): void => void this.#recording.delete(recording);
    recording.then(forget, forget);
    return recording;
  }

  // Attempts 2..RECORD_ATTEMPTS (the first went out in durably()); keeps going while close() waits:
  // the record was accepted before closing began.
  async #record(w: Write): Promise<void> {
    for (let attempt = 2; ; attempt++) {
      const delay = Math.min(RECORD_RETRY_MAX_MS, RECORD_RETRY_BASE_MS * 2 ** (attempt - 2)) * (0.5 + Math.random());
      await new Promise((r) => setTimeout(r, delay));
      try {
        return await this.#writes.submit(w);
      } catch (error) {
        if (attempt >= RECORD_ATTEMPTS || !isConnectionError(error)) throw error;
      }
    }
  }

  #write(w: Write, signal?: AbortSignal): Promise<void> {
    if (this.#closing) return Promise.reject(closedError());
    return this.#writes.submit(w, signal);
  }

  async #runWrites(batch: readonly Write[]): Promise<void[]> {
    // Fold the patches of one message: ON CONFLICT cannot touch a row twice in one statement. Into a
    // fresh patch: a failed batch may be run again item by item (isolateOn), with the items as they were.
    const patches = new Map<string, RecordPatch>();
    const dead: DeadLetterRow[] = [];
    const deadById = new Map<string, DeadLetterRow>();
    const audit: AuditRowIn[] = [];
    let lazy = true;
    for (const w of batch) {
      if (w.lazy !== true) lazy = false;
      if (w.audit !== undefined) for (const e of w.audit) audit.push(auditRowIn(e));
      const d = w.dead;
      if (d?.message_id != null) {
        // One row per parsed message, as ON CONFLICT cannot touch a row twice.
        const prev = deadById.get(d.message_id);
        deadById.set(d.message_id, prev === undefined ? d : foldDeadLetter(prev, d));
      } else if (d) dead.push(d);
      const patch = w.patch;
      if (!patch) continue;
      let into = patches.get(patch.messageId);
      if (into === undefined) patches.set(patch.messageId, (into = emptyPatch(patch.messageId)));
      foldPatch(into, patch);
    }
    const rows: MessageRow[] = [];
    for (const p of patches.values()) rows.push(messageRow(p));
    try {
      await this.#pool.query({
        name: 'mayhem_write',
        text: WRITE_SQL,
        values: [
          JSON.stringify(rows),
          JSON.stringify(dead.concat([...deadById.values()])),
          lazy,
          JSON.stringify(audit),
        ],
      });
    } catch (error) {
      throw new PostgresStorageError(`PostgreSQL write failed: ${describe(error)}`, { cause: error });
    }
    return new Array<void>(batch.length);
  }

  async #runClaims(claims: readonly Claim[]): Promise<RestartClaim[]> {
    // One statement cannot upsert a row twice: a second claim of one id in a batch (a reused id)
    // goes in a statement of its own, after the first, so it sees the first one's claim.
    const seen = new Set<string>();
    const first: Claim[] = [];
    const again: number[] = [];
    claims.forEach((c, k) => {
      if (seen.has(c.message_id)) again.push(k);
      else {
        seen.add(c.message_id);
        first.push(c);
      }
    });
    let states: Map<string, RestartClaim>;
    try {
      const { rows } = await this.#pool.query<{ message_id: string; state: RestartClaim }>({
        name: 'mayhem_claim',
        text: CLAIM_SQL,
        values: [JSON.stringify(first)],
      });
      states = new Map(rows.map((r) => [r.message_id, r.state]));
    } catch (error) {
      throw new PostgresStorageError(`PostgreSQL claim failed: ${describe(error)}`, { cause: error });
    }
    const results = claims.map((c) => states.get(c.message_id) ?? 'free');
    for (const k of again) results[k] = (await this.#runClaims([claims[k]!]))[0]!;
    return results;
  }
}

const RECORD_ATTEMPTS = 8; // ~ 50+100+...+1000 ms ≈ 5 s of retrying
const RECORD_RETRY_BASE_MS = 50;
const RECORD_RETRY_MAX_MS = 1000;

/** The server or the connection went away (restart, terminated backend, refused, reset). */
function isConnectionError(error: unknown): boolean {
  const cause = error instanceof Error ? (error.cause ?? error) : error;
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (code.startsWith('08') || code.startsWith('57P')) return true; // connection_exception, admin shutdown, starting up
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN'].includes(code)) return true;
  }
  const message = cause instanceof Error ? cause.message : '';
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message);
}

/** Data and constraint errors (SQLSTATE classes 22, 23): caused by one row, worth isolating. */
function isDataError(error: unknown): boolean {
  const cause = error instanceof Error ? (error.cause ?? error) : error;
  const code = (cause as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

/**
 * Tuning from the URL's query (`?pool_size=8&max_batch=500`), so `--db` can carry it. These
 * parameters are ours: they are removed before the URL reaches pg. Explicit options win.
 */
function withUrlTuning(opts: PostgresStorageOptions): PostgresStorageOptions {
  let u: URL;
  try {
    u = new URL(opts.url);
  } catch {
    return opts;
  }
  const read = (name: string): number | undefined => {
    const raw = u.searchParams.get(name);
    if (raw === null) return undefined;
    u.searchParams.delete(name);
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1)
      throw new PostgresUnavailableError(`--db: ${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    return n;
  };
  const poolSize = read('pool_size');
  const maxBatch = read('max_batch');
  if (poolSize === undefined && maxBatch === undefined) return opts;
  return { ...opts, url: u.toString(), poolSize: opts.poolSize ?? poolSize, maxBatch: opts.maxBatch ?? maxBatch };
}

/** `host:port` (or the socket directory) of a connection URL, for messages. No credentials. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    // What the URL leaves out, pg takes from PGHOST / PGPORT (then localhost:5432).
    const host = u.hostname || u.searchParams.get('host') || process.env.PGHOST || 'localhost';
    return `${host}:${u.port || process.env.PGPORT || '5432'}`;
  } catch {
    return 'the configured URL';
  }
}
