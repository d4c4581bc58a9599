/**
 * The rails' fleet state in PostgreSQL (schema v4), shared by every instance on the database:
 *
 * - the kill switch: `control` row 'pause', read by each instance every {@link PAUSE_REFRESH_MS};
 * - the per-host interval: `host_restarts`, read and stamped holding the host's advisory lock;
 * - fleet-wide restart slots: session advisory locks `(SLOT_NAMESPACE, 0..max-1)` on one dedicated
 *   connection per instance (taken with pg_try_advisory_lock, so a full set never blocks; if the
 *   connection dies, PostgreSQL frees its slots with it);
 * - the audit trail: `audit`, written in batches off the hot path and retried while the database
 *   is out (the pipeline's database health reports the outage).
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { errorText } from '../../core/errors.js';
import type { BlastTake } from '../../core/blast.js';
import type { AuditEntry, AuditQuery, FleetControl, PauseState, StoredSettings } from '../../core/rails.js';
import { AUDIT_COLUMNS, auditEntryOf, type AuditRow } from '../audit-row.js';
import * as fleet from './fleet.js';

/** How often each instance reads the kill switch. */
export const PAUSE_REFRESH_MS = 500;
/** First key of the two-key advisory lock space, reserved for restart slots ("MSLT"). */
export const SLOT_NAMESPACE = 0x4d534c54;
const AUDIT_BATCH = 1_000;
const AUDIT_BUFFER = 100_000;

// Session advisory locks are re-entrant: this session would get a slot it already holds again, so
// the slots it holds ($3) are not tried.
const TAKE_SLOT_SQL = `SELECT (SELECT s FROM generate_series(0, $2::int - 1) AS s
  WHERE s <> ALL($3::int[]) AND pg_try_advisory_lock($1::int, s) LIMIT 1) AS slot`;
const WRITE_AUDIT_SQL = `INSERT INTO audit (at, instance, host, message_id, executor, outcome, reason, instance_name, experiment)
  SELECT to_timestamp(at / 1000.0), instance, host, message_id, executor, outcome, reason, instance_name, experiment
  FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
    AS t(at, instance, host, message_id, executor, outcome, reason, instance_name, experiment)`;
// `experiment <> ''` spelled out when reading one: it lets the planner use the partial index audit_experiment.
const READ_AUDIT_SQL = `SELECT extract(epoch FROM at) * 1000 AS at, ${AUDIT_COLUMNS} FROM audit
  WHERE at >= to_timestamp($1 / 1000.0) AND ($2::text IS NULL OR host = $2 OR instance_name = $2)
    AND ($4::text IS NULL OR (experiment = $4 AND experiment <> ''))
  ORDER BY at DESC, id DESC LIMIT $3`;

export class PgFleetControl implements FleetControl {
  readonly #pool: pg.Pool;
  readonly #url: string;
  readonly #log: Logger;
  #pause: PauseState | undefined;
  #settings: StoredSettings | undefined;
  #refresh: NodeJS.Timeout | undefined;
  #slots: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  readonly #taken: number[] = [];
  #takes: Promise<void> = Promise.resolve();
  #pending: AuditEntry[] = [];
  #flushing: Promise<void> | undefined;
  #failedFlushes = 0;
  #dropped = 0;
  #closed = false;

  constructor(pool: pg.Pool, url: string, logger: Logger, watch: boolean) {
    this.#pool = pool;
    this.#url = url;
    this.#log = logger;
    if (watch) {
      void this.#readPause();
      this.#refresh = setInterval(() => void this.#readPause(), PAUSE_REFRESH_MS);
      this.#refresh.unref();
    }
  }

  pauseState(): PauseState | undefined {
    return this.#pause;
  }

  async setPause(state: PauseState | undefined): Promise<void> {
    if (state === undefined) await this.#pool.query(`DELETE FROM control WHERE key = 'pause'`);
    else
      await this.#pool.query(
        `INSERT INTO control (key, value) VALUES ('pause', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
        [JSON.stringify(state)],
      );
    this.#pause = state;
  }

  async readPause(): Promise<PauseState | undefined> {
    await this.#readPause(true);
    return this.#pause;
  }

  settingsState(): StoredSettings | undefined {
    return this.#settings;
  }

  refresh(): Promise<void> {
    return this.#readPause(true);
  }

  async writeSettings(next: Omit<StoredSettings, 'version'>, expected: number): Promise<StoredSettings> {
    this.#settings = await fleet.writeSettings(this.#pool, next, expected);
    return this.#settings;
  }

  takeBlast(host: string, at: number, since: number, cap: number): Promise<BlastTake> {
    return fleet.takeBlast(this.#pool, host, at, since, cap);
  }

  restartedSince(since: number): Promise<Map<string, number>> {
    return fleet.restartedSince(this.#pool, since);
  }

  async hostsSeenSince(since: number): Promise<Set<string>> {
    // Rows still waiting for their batch count too: taken before the query, so a row written while
    // it runs is in one or the other.
    const pending = this.#pending.filter((e) => e.at >= since && e.host !== '*').map((e) => e.host);
    const seen = await fleet.hostsSeenSince(this.#pool, since);
    for (const host of pending) seen.add(host);
    return seen;
  }

  async lastRestart(host: string): Promise<number | undefined> {
    const { rows } = await this.#pool.query<{ at: number }>({
      name: 'mayhem_last_restart',
      text: 'SELECT extract(epoch FROM at) * 1000 AS at FROM host_restarts WHERE host = $1',
      values: [host],
    });
    return rows[0] === undefined ? undefined : Number(rows[0].at);
  }

  async stampRestart(host: string, at: number): Promise<void> {
    await this.#pool.query({ name: 'mayhem_stamp_restart', text: fleet.STAMP_RESTART_SQL, values: [host, at] });
  }

  takeSlot(max: number): Promise<boolean> {
    // One at a time: each take must know the slots the ones before it took (see TAKE_SLOT_SQL).
    const take = this.#takes.then(() => this.#takeSlot(max));
    this.#takes = take.then(
      () => undefined,
      () => undefined,
    );
    return take;
  }

  async #takeSlot(max: number): Promise<boolean> {
    const client = await this.#slotClient();
    if (this.#taken.length >= max) return false;
    const { rows } = await client.query<{ slot: number | null }>(TAKE_SLOT_SQL, [SLOT_NAMESPACE, max, this.#taken]);
    const slot = rows[0]?.slot;
    if (slot === null || slot === undefined) return false;
    this.#taken.push(slot);
    return true;
  }

  releaseSlot(): void {
    const slot = this.#taken.pop();
    const client = this.#slots;
    if (slot === undefined || client === undefined) return;
    // Session locks stack: unlocking the slot this instance took frees exactly one hold of it.
    client.query('SELECT pg_advisory_unlock($1::int, $2::int)', [SLOT_NAMESPACE, slot]).catch((err: unknown) => {
      this.#log.debug(
        { err: errorText(err), slot },
        'Could not give back a restart slot (its connection will, when it closes)',
      );
    });
  }

  audit(entry: AuditEntry): void {
    if (this.#pending.length >= AUDIT_BUFFER) {
      this.#pending.shift();
      this.#dropped += 1;
    }
    this.#pending.push(entry);
    this.#flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#flush());
  }

  async readAudit(query: AuditQuery): Promise<AuditEntry[]> {
    const { rows } = await this.#pool.query<AuditRow>(READ_AUDIT_SQL, [
      query.since ?? 0,
      query.host ?? null,
      query.limit,
      query.experiment ?? null,
    ]);
    return rows.map(auditEntryOf);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#refresh !== undefined) clearInterval(this.#refresh);
    // The trail written so far goes now; a database that is still out gets one more try.
    await this.#flushing;
    if (this.#pending.length > 0) await this.#flush();
    if (this.#pending.length > 0 || this.#dropped > 0) {
      this.#log.warn(
        { lost: this.#pending.length + this.#dropped },
        `${this.#pending.length + this.#dropped} audit rows could not be written`,
      );
    }
    const client = this.#slots;
    this.#slots = undefined;
    await client?.end().catch(() => undefined);
  }

  async #flush(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.slice(0, AUDIT_BATCH);
      try {
        await this.#pool.query(WRITE_AUDIT_SQL, [
          batch.map((e) => e.at),
          batch.map((e) => e.instance),
          batch.map((e) => e.host),
          batch.map((e) => e.messageId),
          batch.map((e) => e.executor),
          batch.map((e) => e.outcome),
          batch.map((e) => e.reason),
          batch.map((e) => e.instanceName ?? ''),
          batch.map((e) => e.experiment ?? ''),
        ]);
      } catch (err) {
        this.#failedFlushes += 1;
        if (this.#failedFlushes === 1)
          this.#log.debug({ err: errorText(err) }, 'Could not write the audit trail yet; retrying');
        if (this.#closed) break;
        await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * this.#failedFlushes)).unref());
        continue;
      }
      this.#failedFlushes = 0;
      this.#pending = this.#pending.slice(batch.length);
    }
    this.#flushing = undefined;
  }

  /** The kill switch, and the settings when their version moved. */
  async #readPause(strict = false): Promise<void> {
    try {
      const state = await fleet.readControlState(this.#pool);
      this.#pause = state.pause;
      if (state.settingsVersion !== (this.#settings?.version ?? 0))
        this.#settings = await fleet.readSettings(this.#pool);
    } catch (err) {
      if (strict) throw err;
      // Kept as last read: an outage must not flip the switch either way.
    }
  }

  #slotClient(): Promise<pg.Client> {
    if (this.#slots !== undefined) return Promise.resolve(this.#slots);
    this.#connecting ??= (async () => {
      const client = new pg.Client({
        connectionString: this.#url,
        application_name: 'mayhem-restart-slots',
        keepAlive: true,
        connectionTimeoutMillis: 5000,
      });
      const lost = (error?: Error): void => {
        if (this.#slots !== client) return;
        this.#slots = undefined;
        if (this.#taken.length > 0)
          this.#log.warn(
            { err: error?.message, slots: this.#taken.length },
            'Restart-slot connection to PostgreSQL lost; its slots were freed (reconnecting on next use)',
          );
        this.#taken.length = 0;
      };
      client.on('error', lost);
      client.on('end', () => lost());
      try {
        await client.connect();
      } catch (err) {
        await client.end().catch(() => undefined);
        throw err;
      } finally {
        this.#connecting = undefined;
      }
      this.#slots = client;
      return client;
    })();
    return this.#connecting;
  }
}
