/**
 * The rails' fleet state in the SQLite file (schema v4; v6 adds the audit's instance name and experiment): the kill switch in `meta` ('pause'), when
 * each host was last restarted in `host_restarts`, the audit trail in `audit`. Restart slots are
 * counted in process: one process owns the file (see sqlite/file.ts).
 *
 * `mayhem pause --db sqlite:<file>` writes the switch from another process while the service runs
 * (it opens the file without the service's one-process lock: {@link openSqliteControl}); the service
 * reads it every {@link PAUSE_REFRESH_MS}, so restarts stop within half a second.
 */
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { errorText } from '../../core/errors.js';
import type { BlastTake } from '../../core/blast.js';
import type { AuditEntry, AuditQuery, FleetControl, PauseState, StoredSettings } from '../../core/rails.js';
import { DONE } from '../../core/settled.js';
import { sqliteFleetState, type SqliteFleetState } from './fleet.js';
import { MAYHEM_APPLICATION_ID } from './file.js';
import { AUDIT_COLUMNS, auditEntryOf, auditParams, INSERT_AUDIT_SQL, type AuditRow } from '../audit-row.js';
import { SqliteExperimentStore } from './experiments.js';

/** How often the service reads the kill switch. */
export const PAUSE_REFRESH_MS = 500;
// Audit rows written per transaction; the rest wait for the next turn.
const AUDIT_BATCH = 2_000;
// Audit rows kept in memory while the file cannot take them (then the oldest are dropped, counted).
const AUDIT_BUFFER = 100_000;

export class SqliteFleetControl implements FleetControl {
  readonly #log: Logger | undefined;
  readonly #st: ReturnType<typeof prepare>;
  readonly #fleet: SqliteFleetState;
  #pause: PauseState | undefined;
  #settings: StoredSettings | undefined;
  #refresh: NodeJS.Timeout | undefined;
  #slots = 0;
  #pending: AuditEntry[] = [];
  #flushing: NodeJS.Immediate | NodeJS.Timeout | undefined;
  #failedFlushes = 0;
  #dropped = 0;
  #closed = false;

  /** @param watch read the kill switch every {@link PAUSE_REFRESH_MS} (the service); off for the CLI. */
  constructor(db: Database.Database, logger: Logger | undefined, watch: boolean) {
    this.#log = logger;
    this.#st = prepare(db);
    this.#fleet = sqliteFleetState(db);
    this.#readPause();
    if (watch) {
      this.#refresh = setInterval(() => this.#readPause(), PAUSE_REFRESH_MS);
      this.#refresh.unref();
    }
  }

  pauseState(): PauseState | undefined {
    return this.#pause;
  }

  setPause(state: PauseState | undefined): Promise<void> {
    if (state === undefined) this.#st.clearPause.run();
    else this.#st.setPause.run(JSON.stringify(state));
    this.#pause = state;
    return DONE;
  }

  settingsState(): StoredSettings | undefined {
    return this.#settings;
  }

  refresh(): Promise<void> {
    this.#readPause(true);
    return DONE;
  }

  writeSettings(next: Omit<StoredSettings, 'version'>, expected: number): Promise<StoredSettings> {
    this.#settings = this.#fleet.writeSettings(next, expected);
    return Promise.resolve(this.#settings);
  }

  takeBlast(host: string, at: number, since: number, cap: number): Promise<BlastTake> {
    return Promise.resolve(this.#fleet.takeBlast(host, at, since, cap));
  }

  restartedSince(since: number): Promise<Map<string, number>> {
    return Promise.resolve(this.#fleet.restartedSince(since));
  }

  hostsSeenSince(since: number): Promise<Set<string>> {
    // Rows still waiting for their batch count too (taken first: with the file off the loop, a batch
    // could be written while the query runs).
    const pending = this.#pending.filter((e) => e.at >= since && e.host !== '*').map((e) => e.host);
    const seen = this.#fleet.hostsSeenSince(since);
    for (const host of pending) seen.add(host);
    return Promise.resolve(seen);
  }

  lastRestart(host: string): Promise<number | undefined> {
    return Promise.resolve(this.#st.lastRestart.get(host) as number | undefined);
  }

  stampRestart(host: string, at: number): Promise<void> {
    this.#st.stampRestart.run(host, at);
    return DONE;
  }

  takeSlot(max: number): Promise<boolean> {
    if (this.#slots >= max) return Promise.resolve(false);
    this.#slots += 1;
    return Promise.resolve(true);
  }

  releaseSlot(): void {
    this.#slots = Math.max(0, this.#slots - 1);
  }

  audit(entry: AuditEntry): void {
    if (this.#pending.length >= AUDIT_BUFFER) {
      this.#pending.shift();
      this.#dropped += 1;
    }
    this.#pending.push(entry);
    this.#flushing ??= setImmediate(() => this.#flush());
  }

  readAudit(query: AuditQuery): Promise<AuditEntry[]> {
    const host = query.host ?? null;
    const rows = (
      query.experiment === undefined
        ? this.#st.readAudit.all(query.since ?? 0, host, host, host, query.limit)
        : this.#st.readExperimentAudit.all(query.experiment, query.since ?? 0, host, host, host, query.limit)
    ) as AuditRow[];
    return Promise.resolve(rows.map(auditEntryOf));
  }

  close(): Promise<void> {
    this.#closed = true;
    if (this.#refresh !== undefined) clearInterval(this.#refresh);
    if (this.#flushing !== undefined) clearTimeout(this.#flushing as NodeJS.Timeout);
    this.#flushing = undefined;
    // What is left goes now (the storage closes the file right after).
    while (this.#pending.length > 0 && this.#flush()) {
      /* one batch per round */
    }
    if (this.#dropped > 0)
      this.#log?.warn({ dropped: this.#dropped }, `${this.#dropped} audit rows could not be written and were dropped`);
    return DONE;
  }

  /** Write one batch of audit rows; returns whether it was written. */
  #flush(): boolean {
    this.#flushing = undefined;
    const batch = this.#pending.slice(0, AUDIT_BATCH);
    try {
      this.#st.writeAudit(batch);
    } catch (err) {
      // The file is busy or full: the rows wait, and the database's health is the pipeline's to tell.
      this.#failedFlushes += 1;
      if (this.#failedFlushes === 1)
        this.#log?.debug({ err: errorText(err) }, 'Could not write the audit trail yet; retrying');
      if (!this.#closed)
        this.#flushing = setTimeout(() => this.#flush(), Math.min(5_000, 100 * this.#failedFlushes)).unref();
      return false;
    }
    this.#failedFlushes = 0;
    this.#pending = this.#pending.slice(batch.length);
    if (this.#pending.length > 0 && !this.#closed) this.#flushing = setImmediate(() => this.#flush());
    return true;
  }

  /** The kill switch, and the settings when their version moved. */
  #readPause(strict = false): void {
    try {
      const value = this.#st.readPause.get() as string | undefined;
      this.#pause = value === undefined ? undefined : (JSON.parse(value) as PauseState);
      if (this.#fleet.settingsVersion() !== (this.#settings?.version ?? 0)) this.#settings = this.#fleet.readSettings();
    } catch (err) {
      if (strict) throw err;
      // Kept as last read: a busy file must not flip the switch either way.
      this.#log?.debug({ err: errorText(err) }, 'Could not read the kill switch; keeping the last state');
    }
  }
}

function prepare(db: Database.Database) {
  const insertAudit = db.prepare(INSERT_AUDIT_SQL);
  const hostIs = '(? IS NULL OR host = ? OR instance_name = ?)';
  return {
    readPause: db.prepare("SELECT value FROM meta WHERE key = 'pause'").pluck(),
    setPause: db.prepare(
      "INSERT INTO meta (key, value) VALUES ('pause', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ),
    clearPause: db.prepare("DELETE FROM meta WHERE key = 'pause'"),
    lastRestart: db.prepare('SELECT at FROM host_restarts WHERE host = ?').pluck(),
    stampRestart: db.prepare(
      'INSERT INTO host_restarts (host, at) VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET at = max(at, excluded.at)',
    ),
    readAudit: db.prepare(
      `SELECT at, ${AUDIT_COLUMNS} FROM audit WHERE at >= ? AND ${hostIs} ORDER BY at DESC, id DESC LIMIT ?`,
    ),
    // `experiment <> ''` spelled out: it lets SQLite use the partial index audit_experiment.
    readExperimentAudit: db.prepare(
      `SELECT at, ${AUDIT_COLUMNS} FROM audit WHERE experiment = ? AND experiment <> '' AND at >= ? AND ${hostIs}
       ORDER BY at DESC, id DESC LIMIT ?`,
    ),
    writeAudit: db.transaction((rows: AuditEntry[]) => {
      for (const e of rows) insertAudit.run(...auditParams(e));
    }),
  };
}

/**
 * Open the rails' state of an existing mayhem SQLite file from another process (`mayhem pause`,
 * `resume`, `audit`), without the service's one-process lock. One-line errors naming the path.
 */
export function openSqliteControl(path: string): {
  control: SqliteFleetControl;
  experiments: SqliteExperimentStore;
  close(): Promise<void>;
} {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true, timeout: 2_000 });
  } catch (err) {
    throw new Error(`Cannot open SQLite database ${JSON.stringify(path)}: ${errorText(err)}`, { cause: err });
  }
  try {
    if (db.pragma('application_id', { simple: true }) !== MAYHEM_APPLICATION_ID)
      throw new Error('it is not a mayhem database');
    if ((db.pragma('user_version', { simple: true }) as number) < 6)
      throw new Error('its schema is older than this mayhem: run `mayhem run` on it once to upgrade it');
    const control = new SqliteFleetControl(db, undefined, false);
    const experiments = new SqliteExperimentStore(db, undefined);
    // The audit rows written just now go first (the control flushes them), then the file closes.
    return { control, experiments, close: () => control.close().then(() => void db.close()) };
  } catch (err) {
    db.close();
    throw new Error(`Cannot use SQLite database ${JSON.stringify(path)}: ${errorText(err)}`, { cause: err });
  }
}
