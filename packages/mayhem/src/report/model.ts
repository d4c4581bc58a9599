/**
 * One experiment's report as data, built from what storage keeps: its runs, its rows of the audit
 * trail (every decision about a restart, the stop conditions), the fleet-wide pauses in its span,
 * and the probes' checks. The md, json and html renderers all read this one model.
 */
import type { ExperimentRun, ProbeCheck } from '../core/experiment.js';
import type { AuditEntry } from '../core/rails.js';

export interface ProbeSummary {
  readonly name: string;
  readonly checks: number;
  readonly failures: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly max: number };
  /** Every check kept (oldest first), for the charts. */
  readonly series: readonly { at: number; ok: boolean; latencyMs: number; value?: number | undefined }[];
}

export interface HostTimeline {
  readonly host: string;
  readonly instanceName: string;
  readonly events: readonly { at: number; outcome: string; reason: string; messageId: string }[];
}

export interface SteadyState {
  /** undefined: not checked (no probes, or the run has not ended). */
  readonly holds: boolean | undefined;
  readonly checks: readonly { probe: string; ok: boolean; reason: string; at: number }[];
}

export interface ReportModel {
  readonly experiment: string;
  readonly generatedAt: number;
  readonly startedAt: number;
  /** undefined while a run is still going. */
  readonly endedAt: number | undefined;
  readonly runs: readonly ExperimentRun[];
  readonly verdict: {
    /** `held`: steady before and after, no stop condition; `violated`; `not started`; `running`. */
    readonly summary: 'held' | 'violated' | 'not started' | 'running' | 'no probes';
    readonly before: SteadyState;
    readonly after: SteadyState;
    readonly stopConditions: readonly { at: number; instance: string; reason: string }[];
    readonly recoveries: readonly { at: number; instance: string; reason: string }[];
    readonly pauses: readonly { at: number; by: string; outcome: string; reason: string }[];
  };
  readonly outcomes: readonly { outcome: string; count: number }[];
  readonly hosts: readonly HostTimeline[];
  readonly probes: readonly ProbeSummary[];
  /** The audit rows read hit the limit: counts and timelines cover the newest of them. */
  readonly truncated: boolean;
}

export interface ReportInput {
  readonly experiment: string;
  readonly runs: readonly ExperimentRun[];
  /** The experiment's audit rows, newest first. */
  readonly audit: readonly AuditEntry[];
  /** Fleet-wide rows (host '*') in its span, of anyone: pauses and resumes by people. */
  readonly fleet: readonly AuditEntry[];
  readonly checks: readonly ProbeCheck[];
  readonly truncated: boolean;
  readonly now: number;
}

const FLEET_OUTCOMES = new Set(['paused', 'resumed', 'probe-failed', 'probe-recovered']);

export function buildReport(i: ReportInput): ReportModel {
  const startedAt = Math.min(...i.runs.map((r) => r.startedAt));
  const running = i.runs.some((r) => r.endedAt === undefined);
  const endedAt = running ? undefined : Math.max(...i.runs.map((r) => r.endedAt ?? 0));
  const decisions = [...i.audit].reverse().filter((e) => !FLEET_OUTCOMES.has(e.outcome));
  const counts = new Map<string, number>();
  for (const e of decisions) counts.set(e.outcome, (counts.get(e.outcome) ?? 0) + 1);
  const hosts = new Map<string, HostTimeline & { events: HostTimeline['events'][number][] }>();
  for (const e of decisions) {
    let h = hosts.get(e.host);
    if (h === undefined) hosts.set(e.host, (h = { host: e.host, instanceName: e.instanceName ?? '', events: [] }));
    h.events.push({ at: e.at, outcome: e.outcome, reason: e.reason, messageId: e.messageId });
  }
  const own = [...i.audit].reverse();
  const stopConditions = own.filter((e) => e.outcome === 'probe-failed');
  const recoveries = own.filter((e) => e.outcome === 'probe-recovered');
  const end = endedAt ?? i.now;
  const pauses = i.fleet
    .filter((e) => (e.outcome === 'paused' || e.outcome === 'resumed') && e.at >= startedAt && e.at <= end)
    .sort((a, b) => a.at - b.at);
  const before = steady(i.checks.filter((c) => c.phase === 'before'));
  const after = steady(i.checks.filter((c) => c.phase === 'after'));
  const hasProbes = i.checks.length > 0;
  const summary: ReportModel['verdict']['summary'] = !hasProbes
    ? 'no probes'
    : before.holds === false
      ? 'not started'
      : running
        ? stopConditions.length > 0
          ? 'violated'
          : 'running'
        : stopConditions.length > 0 || after.holds === false
          ? 'violated'
          : 'held';
  return {
    experiment: i.experiment,
    generatedAt: i.now,
    startedAt,
    endedAt,
    runs: i.runs,
    verdict: {
      summary,
      before,
      after,
      stopConditions: stopConditions.map((e) => ({ at: e.at, instance: e.instance, reason: e.reason })),
      recoveries: recoveries.map((e) => ({ at: e.at, instance: e.instance, reason: e.reason })),
      pauses: pauses.map((e) => ({ at: e.at, by: e.instance, outcome: e.outcome, reason: e.reason })),
    },
    outcomes: [...counts].map(([outcome, count]) => ({ outcome, count })).sort((a, b) => b.count - a.count),
    hosts: [...hosts.values()].sort((a, b) => a.host.localeCompare(b.host)),
    probes: probeSummaries(i.checks),
    truncated: i.truncated,
  };
}

function steady(checks: readonly ProbeCheck[]): SteadyState {
  if (checks.length === 0) return { holds: undefined, checks: [] };
  return {
    holds: checks.every((c) => c.ok),
    checks: checks.map((c) => ({ probe: c.probe, ok: c.ok, reason: c.reason, at: c.at })),
  };
}

function probeSummaries(checks: readonly ProbeCheck[]): ProbeSummary[] {
  const by = new Map<string, ProbeCheck[]>();
  for (const c of checks) {
    let list = by.get(c.probe);
    if (list === undefined) by.set(c.probe, (list = []));
    list.push(c);
  }
  return [...by].map(([name, list]) => {
    const lat = list.map((c) => c.latencyMs).sort((a, b) => a - b);
    const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
    return {
      name,
      checks: list.length,
      failures: list.filter((c) => !c.ok).length,
      latencyMs: { p50: q(0.5), p95: q(0.95), max: lat.at(-1) ?? 0 },
      series: list.map((c) => ({ at: c.at, ok: c.ok, latencyMs: c.latencyMs, value: c.value })),
    };
  });
}
