/**
 * An experiment as a unit (`mayhem run --experiment NAME`): each instance's run of it (start, end,
 * the settings it ran with) and the probes' checks over time. Kept by the storage the fleet shares,
 * beside the audit trail every row of which carries the experiment's name; `mayhem report` reads
 * both back (src/report/).
 */
import type { FleetControl } from './rails.js';

/** One instance's run of an experiment. */
export interface ExperimentRun {
  readonly experiment: string;
  /** The mayhem instance (host:pid unless named). */
  readonly instance: string;
  /** ms since epoch. */
  readonly startedAt: number;
  /** ms since epoch; undefined while it runs (or when its process died without saying). */
  readonly endedAt?: number | undefined;
  /** Why it ended: the shutdown's reason, or why it never began (the steady state did not hold). */
  readonly endReason?: string | undefined;
  /** The settings it ran with, as plain data (probes, rails): shown by the report. */
  readonly settings: Readonly<Record<string, unknown>>;
}

/**
 * When a check ran: `before` the first restart (the steady state must hold to begin), `during` the
 * run (every --probe-every), `after` the last message (at shutdown).
 */
export type CheckPhase = 'before' | 'during' | 'after';

/** One probe check, as recorded. */
export interface ProbeCheck {
  readonly experiment: string;
  readonly instance: string;
  /** ms since epoch. */
  readonly at: number;
  readonly probe: string;
  readonly phase: CheckPhase;
  readonly ok: boolean;
  readonly latencyMs: number;
  /** What was measured, where a probe measures a number (a Prometheus query's value). */
  readonly value?: number | undefined;
  /** One line: why it failed, or what it saw. */
  readonly reason: string;
}

/**
 * The experiments' journal a storage keeps (SQLite file, PostgreSQL, memory). Checks are kept as
 * long as the audit trail (`--dead-letter-retention`).
 */
export interface ExperimentStore {
  /** Record that this instance's run of an experiment began. */
  startRun(run: ExperimentRun): Promise<void>;
  /** Record how it ended (the run started by this instance at `startedAt`). */
  endRun(experiment: string, instance: string, startedAt: number, endedAt: number, reason: string): Promise<void>;
  /** Append a check. Batched and retried by the adapter; never throws here. */
  recordCheck(check: ProbeCheck): void;
  /** Every run of an experiment, oldest first. */
  runs(experiment: string): Promise<ExperimentRun[]>;
  /** Its checks, oldest first, at most `limit` (the newest kept when there are more). */
  checks(experiment: string, limit: number): Promise<ProbeCheck[]>;
  /** Names of the experiments on record, newest first (at most `limit`). */
  names(limit: number): Promise<string[]>;
  /** Write what is pending. */
  flush(): Promise<void>;
}

/** An experiment name: what a person types and a file name can hold. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Why `name` is not an experiment name, or undefined when it is. */
export function experimentNameProblem(name: string): string | undefined {
  return NAME_RE.test(name)
    ? undefined
    : 'expected 1 to 100 letters, digits, ".", "_" or "-", starting with a letter or digit';
}

/** `control` whose every audit row carries the experiment's name (the rest goes straight through). */
export function stampExperiment(control: FleetControl, experiment: string): FleetControl {
  return {
    pauseState: () => control.pauseState(),
    settingsState: () => control.settingsState(),
    refresh: () => control.refresh(),
    writeSettings: (next, expected) => control.writeSettings(next, expected),
    setPause: (state) => control.setPause(state),
    lastRestart: (host) => control.lastRestart(host),
    stampRestart: (host, at) => control.stampRestart(host, at),
    takeSlot: (max) => control.takeSlot(max),
    releaseSlot: () => control.releaseSlot(),
    takeBlast: (host, at, since, cap) => control.takeBlast(host, at, since, cap),
    restartedSince: (since) => control.restartedSince(since),
    hostsSeenSince: (since) => control.hostsSeenSince(since),
    audit: (entry) => control.audit({ ...entry, experiment }),
    readAudit: (query) => control.readAudit(query),
    close: () => control.close(),
  };
}
