/**
 * The experiments' journal in PostgreSQL (schema v6), shared by the fleet: `experiment_runs` (one
 * row per instance run) and `probe_checks`, written in batches off the hot path and retried while
 * the database is out (bounded: past it the oldest checks go).
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { errorText } from '../../core/errors.js';
import type { CheckPhase, ExperimentRun, ExperimentStore, ProbeCheck } from '../../core/experiment.js';

const PENDING_MAX = 10_000;

const WRITE_CHECKS_SQL = `INSERT INTO probe_checks (experiment, instance, at, probe, phase, ok, latency_ms, value, reason)
  SELECT experiment, instance, to_timestamp(at / 1000.0), probe, phase, ok, latency_ms, value, reason
  FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[], $6::bool[], $7::float8[], $8::float8[], $9::text[])
    AS t(experiment, instance, at, probe, phase, ok, latency_ms, value, reason)`;

export class PgExperimentStore implements ExperimentStore {
  readonly #pool: pg.Pool;
  readonly #log: Logger;
  #pending: ProbeCheck[] = [];
  #writing: Promise<void> | undefined;

  constructor(pool: pg.Pool, logger: Logger) {
    this.#pool = pool;
    this.#log = logger;
  }

  async startRun(run: ExperimentRun): Promise<void> {
    await this.#pool.query(
      'INSERT INTO experiment_runs (experiment, instance, started_at, settings) VALUES ($1, $2, to_timestamp($3 / 1000.0), $4)',
      [run.experiment, run.instance, run.startedAt, JSON.stringify(run.settings)],
    );
  }

  async endRun(
    experiment: string,
    instance: string,
    startedAt: number,
    endedAt: number,
    reason: string,
  ): Promise<void> {
    await this.#pool.query(
      `UPDATE experiment_runs SET ended_at = to_timestamp($1 / 1000.0), end_reason = $2
        WHERE experiment = $3 AND instance = $4 AND started_at = to_timestamp($5 / 1000.0)`,
      [endedAt, reason, experiment, instance, startedAt],
    );
  }

  recordCheck(check: ProbeCheck): void {
    if (this.#pending.length >= PENDING_MAX) this.#pending.shift();
    this.#pending.push(check);
    this.#writing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.#write());
  }

  async runs(experiment: string): Promise<ExperimentRun[]> {
    const { rows } = await this.#pool.query<{
      experiment: string;
      instance: string;
      started_at: string;
      ended_at: string | null;
      end_reason: string;
      settings: Record<string, unknown>;
    }>(
      `SELECT experiment, instance, extract(epoch FROM started_at) * 1000 AS started_at,
         extract(epoch FROM ended_at) * 1000 AS ended_at, end_reason, settings
       FROM experiment_runs WHERE experiment = $1 ORDER BY started_at, id`,
      [experiment],
    );
    return rows.map((r) => ({
      experiment: r.experiment,
      instance: r.instance,
      startedAt: Math.round(Number(r.started_at)),
      endedAt: r.ended_at === null ? undefined : Math.round(Number(r.ended_at)),
      endReason: r.end_reason || undefined,
      settings: r.settings,
    }));
  }

  async checks(experiment: string, limit: number): Promise<ProbeCheck[]> {
    await this.flush();
    const { rows } = await this.#pool.query<{
      experiment: string;
      instance: string;
      at: string;
      probe: string;
      phase: CheckPhase;
      ok: boolean;
      latency_ms: number;
      value: number | null;
      reason: string;
    }>(
      `SELECT experiment, instance, extract(epoch FROM at) * 1000 AS at, probe, phase, ok, latency_ms, value, reason
       FROM probe_checks WHERE experiment = $1 ORDER BY at DESC, id DESC LIMIT $2`,
      [experiment, limit],
    );
    return rows
      .map((r) => ({
        experiment: r.experiment,
        instance: r.instance,
        at: Math.round(Number(r.at)),
        probe: r.probe,
        phase: r.phase,
        ok: r.ok,
        latencyMs: r.latency_ms,
        value: r.value ?? undefined,
        reason: r.reason,
      }))
      .reverse();
  }

  async names(limit: number): Promise<string[]> {
    const { rows } = await this.#pool.query<{ experiment: string }>(
      'SELECT experiment FROM experiment_runs GROUP BY experiment ORDER BY max(started_at) DESC LIMIT $1',
      [limit],
    );
    return rows.map((r) => r.experiment);
  }

  async flush(): Promise<void> {
    await this.#writing;
    if (this.#pending.length > 0) await this.#write();
  }

  async #write(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    try {
      if (batch.length > 0)
        await this.#pool.query(WRITE_CHECKS_SQL, [
          batch.map((c) => c.experiment),
          batch.map((c) => c.instance),
          batch.map((c) => c.at),
          batch.map((c) => c.probe),
          batch.map((c) => c.phase),
          batch.map((c) => c.ok),
          batch.map((c) => c.latencyMs),
          batch.map((c) => c.value ?? null),
          batch.map((c) => c.reason),
        ]);
    } catch (err) {
      // Out: they go back in front, for the next check (or flush) to try again.
      this.#pending = batch.concat(this.#pending).slice(-PENDING_MAX);
      this.#log.debug({ err: errorText(err) }, 'Could not write probe checks yet');
    } finally {
      this.#writing = undefined;
    }
  }
}
