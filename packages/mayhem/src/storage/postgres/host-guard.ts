/**
 * Per-host restart guard shared by every instance using one PostgreSQL database.
 *
 * Two layers:
 * - in process, the keyed mutex a single instance uses (`LocalHostGuard`): one holder per hostname
 *   at a time, the rest wait in FIFO order;
 * - across instances, a session-level advisory lock `(namespace, hashtext(hostname))` taken with
 *   `pg_try_advisory_lock` on ONE dedicated connection per instance.
 *
 * A session can hold any number of advisory locks, so one connection serves every host this
 * instance is restarting (1000 in flight need 1 connection, not 1000), and the pool can never be
 * starved by the guard. Lock and unlock requests of one tick go out as one statement. A lock held
 * by another instance is retried with capped, jittered backoff (the try never blocks the shared
 * connection). Hosts whose hashes collide are serialised too: correct, only less concurrent.
 *
 * If the lock connection dies, PostgreSQL drops its locks: restarts running at that moment lose
 * their cross-instance exclusivity (logged); the restart-done record still prevents a second
 * restart of the same message. A new connection is opened for the next request.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { HostGuard } from '../../core/contracts.js';
import { LocalHostGuard } from '../../core/host-guard.js';

/** First key of the two-key advisory lock space, reserved for host locks ("MAYH"). */
export const HOST_LOCK_NAMESPACE = 0x4d415948;

/**
 * One round trip per round: release the locks given back since the last round, then try the new
 * ones. `ok` has one character per try, in order ('1' = taken). Session advisory locks stack, so
 * even a try evaluated before an unlock of the same host would leave it held once, as it should.
 */
const ROUND_SQL = `SELECT
  (SELECT count(*) FILTER (WHERE pg_advisory_unlock($1::int, hashtext(h))) FROM unnest($2::text[]) AS u(h)) AS n,
  (SELECT string_agg(CASE WHEN pg_try_advisory_lock($1::int, hashtext(h)) THEN '1' ELSE '0' END, '' ORDER BY o)
     FROM unnest($3::text[]) WITH ORDINALITY AS t(h, o)) AS ok`;

export interface HostGuardOptions {
  readonly connectionString: string;
  readonly logger: Logger;
  /** Retry delay bounds while another instance holds the host, ms. */
  readonly minRetryMs?: number;
  readonly maxRetryMs?: number;
  /** Most lock attempts per statement. */
  readonly maxBatch?: number;
}

interface Attempt {
  readonly host: string;
  readonly signal: AbortSignal;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  delayMs: number;
  timer: NodeJS.Timeout | undefined;
  done: boolean;
  /** Only while sleeping before a retry (made then: most attempts never need one). */
  onAbort: (() => void) | undefined;
}

export class PgHostGuard implements HostGuard {
  /** The in-process layer: the same keyed mutex a single instance uses. */
  readonly #local = new LocalHostGuard();
  /** Hosts held by this process -> the connection generation their advisory lock was taken on. */
  readonly #holding = new Map<string, number>();
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  #generation = 0;
  #alive = false;
  readonly #held = new Map<number, number>(); // generation -> locks held on it
  #tries: Attempt[] = [];
  /** Every attempt not settled yet (queued, on the wire or sleeping before a retry). */
  readonly #attempts = new Set<Attempt>();
  #unlocks: { host: string; generation: number }[] = [];
  #roundRunning: Promise<void> | undefined;
  #roundScheduled = false;
  #closed = false;
  readonly #minRetryMs: number;
  readonly #maxRetryMs: number;
  readonly #maxBatch: number;
  /** Statements sent on the lock connection (for tests and benchmarks). */
  statements = 0;
  /** Lock attempts that found the host held elsewhere. */
  contended = 0;

  readonly #opts: HostGuardOptions;

  constructor(opts: HostGuardOptions) {
    this.#opts = opts;
    this.#minRetryMs = opts.minRetryMs ?? 2;
    this.#maxRetryMs = opts.maxRetryMs ?? 100;
    this.#maxBatch = opts.maxBatch ?? 1000;
  }

  acquire(hostname: string, signal: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('host guard is closed'));
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the contract: the signal's own reason
    if (signal.aborted) return Promise.reject(signal.reason);
    // The usual case, a host nobody in this process holds: one promise per acquire, not two.
    if (this.#local.tryAcquire(hostname)) return this.#lockRemote(hostname, signal);
    return this.#local.acquire(hostname, signal).then(() => this.#lockRemote(hostname, signal));
  }

  release(hostname: string): void {
    const generation = this.#holding.get(hostname);
    if (generation === undefined) return;
    this.#holding.delete(hostname);
    this.#unlockRemote(hostname, generation);
    this.#local.release(hostname);
  }

  /** Release the lock connection (its advisory locks go with it). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#tries = [];
    for (const t of [...this.#attempts]) {
      if (t.timer) {
        clearTimeout(t.timer);
        if (t.onAbort) t.signal.removeEventListener('abort', t.onAbort);
      }
      this.#fail(t, new Error('host guard is closed'));
    }
    await this.#roundRunning;
    const client = this.#client;
    this.#client = undefined;
    this.#alive = false;
    if (client) await client.end().catch(() => undefined);
  }

  // ---- cross-instance advisory lock -------------------------------------------------------

  /**
   * Take the advisory lock of `host`, held in process already. Resolves once held (recorded in
   * `holding`); on failure the in-process lock is given back before the rejection.
   */
  #lockRemote(host: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) {
      this.#local.release(host);
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the contract: the signal's own reason
      return Promise.reject(signal.reason);
    }
    return new Promise<void>((resolve, reject) => {
      // No abort listener while queued or on the wire (one signal is shared by every message in
      // flight): the round checks the signal. Only an attempt sleeping before a retry listens.
      const attempt: Attempt = {
        host,
        signal,
        resolve,
        reject,
        delayMs: this.#minRetryMs,
        timer: undefined,
        done: false,
        onAbort: undefined,
      };
      this.#attempts.add(attempt);
      this.#tries.push(attempt);
      this.#scheduleRound();
    });
  }

  #fail(attempt: Attempt, reason: unknown): void {
    if (attempt.done) return;
    attempt.done = true;
    this.#attempts.delete(attempt);
    this.#local.release(attempt.host);
    attempt.reject(reason);
  }

  #unlockRemote(host: string, generation: number): void {
    const left = (this.#held.get(generation) ?? 1) - 1;
    if (left > 0) this.#held.set(generation, left);
    else this.#held.delete(generation);
    // A lock taken on a connection that has since died went with it.
    if (generation !== this.#generation || !this.#alive) return;
    this.#unlocks.push({ host, generation });
    this.#scheduleRound();
  }

  #scheduleRound(): void {
    if (this.#roundScheduled || this.#roundRunning || this.#closed) return;
    if (this.#tries.length === 0 && this.#unlocks.length === 0) return;
    this.#roundScheduled = true;
    setImmediate(() => {
      this.#roundScheduled = false;
      this.#roundRunning = this.#round().finally(() => {
        this.#roundRunning = undefined;
        this.#scheduleRound();
      });
    });
  }

  async #round(): Promise<void> {
    const queuedUnlocks = this.#unlocks;
    this.#unlocks = [];
    const tries: Attempt[] = [];
    for (const t of this.#tries.splice(0, this.#maxBatch)) {
      if (t.signal.aborted) this.#fail(t, t.signal.reason);
      else tries.push(t);
    }
    if (this.#closed) return;
    try {
      const client = await this.#connection();
      const generation = this.#generation;
      // Locks of a session that has died went with it: nothing to release there.
      const unlocks = queuedUnlocks.filter((u) => u.generation === generation).map((u) => u.host);
      if (unlocks.length > 0 || tries.length > 0) {
        this.statements++;
        const { rows } = await client.query<{ ok: string | null }>({
          name: 'mayhem_host_locks',
          text: ROUND_SQL,
          values: [HOST_LOCK_NAMESPACE, unlocks, tries.map((t) => t.host)],
        });
        const taken = rows[0]?.ok ?? '';
        tries.forEach((t, i) => {
          const ok = taken.charCodeAt(i) === 49; // '1'
          if (ok && (t.done || t.signal.aborted)) {
            this.#unlocks.push({ host: t.host, generation }); // aborted while on the wire
            this.#fail(t, t.signal.reason);
          } else if (ok) {
            t.done = true;
            this.#attempts.delete(t);
            this.#held.set(generation, (this.#held.get(generation) ?? 0) + 1);
            // Held in process, so this host has exactly one advisory lock of ours until release().
            this.#holding.set(t.host, generation);
            t.resolve();
          } else if (t.signal.aborted) {
            this.#fail(t, t.signal.reason);
          } else if (!t.done) {
            this.contended++;
            this.#retryLater(t);
          }
        });
      }
    } catch (error) {
      const reason = new Error(`host lock unavailable: ${describe(error)}`, { cause: error });
      for (const t of tries) this.#fail(t, reason);
    }
  }

  #retryLater(t: Attempt): void {
    const delay = t.delayMs * (0.5 + Math.random());
    t.delayMs = Math.min(t.delayMs * 2, this.#maxRetryMs);
    const onAbort = (t.onAbort ??= () => {
      if (t.timer) clearTimeout(t.timer);
      t.timer = undefined;
      this.#fail(t, t.signal.reason);
    });
    t.signal.addEventListener('abort', onAbort, { once: true });
    t.timer = setTimeout(() => {
      t.timer = undefined;
      t.signal.removeEventListener('abort', onAbort);
      if (t.done) return;
      this.#tries.push(t);
      this.#scheduleRound();
    }, delay);
  }

  #connection(): Promise<pg.Client> {
    if (this.#closed) return Promise.reject(new Error('host guard is closed'));
    if (this.#client && this.#alive) return Promise.resolve(this.#client);
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.#opts.connectionString,
      application_name: 'mayhem-host-guard',
      keepAlive: true,
      connectionTimeoutMillis: 5000,
    });
    const generation = this.#generation + 1;
    const lost = (error?: Error): void => {
      if (this.#generation !== generation || !this.#alive) return;
      this.#alive = false;
      this.#client = undefined;
      const running = this.#held.get(generation) ?? 0;
      if (this.#closed) return;
      this.#opts.logger.warn(
        { err: error?.message, locksLost: running },
        'Host-lock connection to PostgreSQL lost; its host locks were released (reconnecting on next use)',
      );
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.#closed) {
      await client.end().catch(() => undefined);
      throw new Error('host guard is closed');
    }
    this.#generation = generation;
    this.#client = client;
    this.#alive = true;
    return client;
  }
}

/** One readable line for a pg or socket error. */
export function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ECONNREFUSED') return 'connection refused';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
    if (code === 'ETIMEDOUT') return 'connection timed out';
    if (code === 'ECONNRESET') return 'connection reset';
    if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
    return error.message || (typeof code === 'string' ? code : error.name);
  }
  return String(error);
}
