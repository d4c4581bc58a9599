/**
 * The experiments' journal in the SQLite file (schema v6): `experiment_runs` (one row per instance
 * run) and `probe_checks`. Checks are few (one per probe every --probe-every), written in a batch
 * per turn of the loop; a busy file keeps them pending (bounded) until the next turn that can.
 */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { errorText } from '../../core/errors.js';
import type { CheckPhase, ExperimentRun, ExperimentStore, ProbeCheck } from '../../core/experiment.js';
import { DONE } from '../../core/settled.js';

// Checks kept in memory while the file cannot take them; past it the oldest go.
const PENDING_MAX = 10_000;

interface RunRow {
  experiment: string;
  instance: string;
  started_at: number;
  ended_at: number | null;
  end_reason: string;
  settings: string;
}

interface CheckRow {
  experiment: string;
  instance: string;
  at: number;
  probe: string;
  phase: CheckPhase;
  ok: number;
  latency_ms: number;
  value: number | null;
  reason: string;
}

export class SqliteExperimentStore implements ExperimentStore {
  readonly #log: Logger | undefined;
  readonly #st: ReturnType<typeof prepare>;
  #pending: ProbeCheck[] = [];
  #scheduled: NodeJS.Immediate | undefined;

  constructor(db: Database.Database, logger: Logger | undefined) {
    this.#log = logger;
    this.#st = prepare(db);
  }

  startRun(run: ExperimentRun): Promise<void> {
    this.#st.startRun.run(run.experiment, run.instance, run.startedAt, JSON.stringify(run.settings));
    return DONE;
  }

  endRun(experiment: string, instance: string, startedAt: number, endedAt: number, reason: string): Promise<void> {
    this.#st.endRun.run(endedAt, reason, experiment, instance, startedAt);
    return DONE;
  }

  recordCheck(check: ProbeCheck): void {
    if (this.#pending.length >= PENDING_MAX) this.#pending.shift();
    this.#pending.push(check);
    this.#scheduled ??= setImmediate(() => this.#write());
  }

  runs(experiment: string): Promise<ExperimentRun[]> {
    return Promise.resolve((this.#st.runs.all(experiment) as RunRow[]).map(runOf));
  }

  checks(experiment: string, limit: number): Promise<ProbeCheck[]> {
    this.#write();
    return Promise.resolve((this.#st.checks.all(experiment, limit) as CheckRow[]).map(checkOf).reverse());
  }

  names(limit: number): Promise<string[]> {
    return Promise.resolve(this.#st.names.all(limit) as string[]);
  }

  flush(): Promise<void> {
    this.#write();
    return DONE;
  }

  #write(): void {
    if (this.#scheduled !== undefined) clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    if (this.#pending.length === 0) return;
    try {
      this.#st.writeChecks(this.#pending);
      this.#pending = [];
    } catch (err) {
      // Busy: the next check (or flush) tries again; the database's health is the pipeline's to tell.
      this.#log?.debug({ err: errorText(err) }, 'Could not write probe checks yet');
    }
  }
}

function prepare(db: Database.Database) {
  const insertCheck = db.prepare(
    'INSERT INTO probe_checks (experiment, instance, at, probe, phase, ok, latency_ms, value, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  return {
    startRun: db.prepare(
      'INSERT INTO experiment_runs (experiment, instance, started_at, settings) VALUES (?, ?, ?, ?)',
    ),
    endRun: db.prepare(
      'UPDATE experiment_runs SET ended_at = ?, end_reason = ? WHERE experiment = ? AND instance = ? AND started_at = ?',
    ),
    runs: db.prepare(
      'SELECT experiment, instance, started_at, ended_at, end_reason, settings FROM experiment_runs WHERE experiment = ? ORDER BY started_at, id',
    ),
    // The newest `limit`, read newest first and turned round.
    checks: db.prepare(
      'SELECT experiment, instance, at, probe, phase, ok, latency_ms, value, reason FROM probe_checks WHERE experiment = ? ORDER BY at DESC, id DESC LIMIT ?',
    ),
    names: db
      .prepare('SELECT experiment FROM experiment_runs GROUP BY experiment ORDER BY max(started_at) DESC LIMIT ?')
      .pluck(),
    writeChecks: db.transaction((rows: readonly ProbeCheck[]) => {
      for (const c of rows)
        insertCheck.run(
          c.experiment,
          c.instance,
          c.at,
          c.probe,
          c.phase,
          c.ok ? 1 : 0,
          c.latencyMs,
          c.value ?? null,
          c.reason,
        );
    }),
  };
}

function runOf(r: RunRow): ExperimentRun {
  return {
    experiment: r.experiment,
    instance: r.instance,
    startedAt: r.started_at,
    endedAt: r.ended_at ?? undefined,
    endReason: r.end_reason || undefined,
    settings: JSON.parse(r.settings) as Record<string, unknown>,
  };
}

function checkOf(r: CheckRow): ProbeCheck {
  return {
    experiment: r.experiment,
    instance: r.instance,
    at: r.at,
    probe: r.probe,
    phase: r.phase,
    ok: r.ok === 1,
    latencyMs: r.latency_ms,
    value: r.value ?? undefined,
    reason: r.reason,
  };
}
