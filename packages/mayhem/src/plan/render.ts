/**
 * The plan as a person reads it (a table: one row per decision, each rail's answer in a column, then
 * what each request would act on) and as JSON (`--json`, every field).
 */
import type { RailCheck, RailName } from '../core/rails.js';
import { describeTarget, type RestartTarget } from '../executors/target.js';
import type { PlanEntry, PlanStep } from './simulate.js';

export interface PlanReport {
  /** Where the requests came from, one line. */
  readonly source: string;
  /** Which settings, one line. */
  readonly settings: string;
  readonly start: number;
  readonly restartMs: number;
  /** The fleet is leashed: what would be restarted is only recorded. */
  readonly leashed: boolean;
  readonly entries: readonly PlanEntry[];
  readonly targets: readonly RestartTarget[];
  /** Payloads the run would dead-letter at once. */
  readonly malformed: readonly { readonly where: string; readonly error: string }[];
}

const RAIL_HEADER: Record<RailName, string> = {
  hosts: 'hosts',
  pause: 'pause',
  leash: 'leash',
  window: 'window',
  interval: 'interval',
  concurrency: 'slots',
  blast: 'blast',
};

export function renderPlanText(r: PlanReport): string {
  const out: string[] = [];
  out.push(`Plan of ${r.entries.length} request(s) ${r.source}, simulated from ${iso(r.start)}.`);
  out.push(`Settings: ${r.settings}. A restart is taken to last ${span(r.restartMs)} (--preview-restart-time).`);
  if (r.leashed) out.push("Leashed: the fleet restarts nothing; each restart below would be recorded as 'leashed'.");
  out.push('');
  // A column per rail that had a say (the rails not set never do).
  const asked = new Set(
    r.entries.flatMap((e) => e.steps.flatMap((s) => (s.kind === 'decided' ? s.checks.map((c) => c.rail) : []))),
  );
  const rails = (Object.keys(RAIL_HEADER) as RailName[]).filter((x) => asked.has(x));
  const head = ['#', 'at', 'message', 'host', ...rails.map((x) => RAIL_HEADER[x]), 'decision'];
  const rows: string[][] = [];
  r.entries.forEach((e, i) => {
    const id = shortId(e.input.request.messageId);
    e.steps.forEach((s, k) => {
      const first = k === 0;
      rows.push([
        String(i + 1),
        offset(s.at - r.start),
        first ? id : '',
        first ? e.input.host : '',
        ...rails.map((rail) => (s.kind === 'decided' ? cell(s.checks, rail) : '')),
        decision(s, r),
      ]);
    });
    if (e.end?.kind === 'waiting' && e.steps.at(-1)?.kind !== 'held')
      rows.push([String(i + 1), '', '', '', ...rails.map(() => ''), `waiting: ${e.end.why}`]);
  });
  out.push(...table(head, rows));
  out.push('', 'What each request would act on:');
  r.entries.forEach((e, i) => {
    const end = e.end;
    const note =
      end?.kind === 'restart'
        ? r.leashed
          ? 'would be recorded as leashed'
          : `at ${offset(end.at - r.start)}`
        : end?.kind === 'skip'
          ? 'never (skipped)'
          : 'not within the plan';
    out.push(`${String(i + 1).padStart(3)}  ${e.input.host}  ${describeTarget(r.targets[i]!)}  [${note}]`);
  });
  if (r.malformed.length > 0) {
    out.push('', 'Malformed (the run dead-letters them at once):');
    for (const m of r.malformed) out.push(`  ${m.where}: ${m.error}`);
  }
  return out.join('\n') + '\n';
}

export function renderPlanJson(r: PlanReport): string {
  return (
    JSON.stringify({
      source: r.source,
      settings: r.settings,
      start: iso(r.start),
      restartMs: r.restartMs,
      leashed: r.leashed,
      requests: r.entries.map((e, i) => ({
        ...(e.input.seq !== undefined ? { seq: e.input.seq } : {}),
        messageId: e.input.request.messageId,
        instanceName: e.input.request.instanceName,
        host: e.input.host,
        target: r.targets[i],
        steps: e.steps.map((s) => stepJson(s, r.start)),
        end: e.end === undefined ? undefined : { ...e.end, ...times(e.end, r.start) },
      })),
      malformed: r.malformed,
    }) + '\n'
  );
}

function stepJson(s: PlanStep, start: number): Record<string, unknown> {
  const base = { kind: s.kind, at: iso(s.at), offsetMs: s.at - start };
  switch (s.kind) {
    case 'decided':
      return {
        ...base,
        outcome: s.outcome,
        ...(s.verdict ? { action: s.verdict.action, reason: s.verdict.reason } : {}),
        ...(s.verdict?.action === 'defer' ? { until: iso(s.at + s.verdict.delayMs) } : {}),
        rails: s.checks.map((c) => ({
          rail: c.rail,
          decision: c.verdict?.action ?? 'go',
          ...(c.verdict ? { outcome: c.verdict.outcome, reason: c.verdict.reason } : {}),
        })),
      };
    case 'held':
      return { ...base, why: s.why, until: s.until === undefined ? null : iso(s.until) };
    case 'waited':
      return { ...base, why: 'its host is being restarted', until: iso(s.until) };
  }
}

function times(end: NonNullable<PlanEntry['end']>, start: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if ('at' in end) out.at = iso(end.at);
  if ('until' in end && end.until !== undefined) out.until = iso(end.until);
  if ('at' in end) out.offsetMs = end.at - start;
  return out;
}

function cell(checks: readonly RailCheck[], rail: RailName): string {
  const c = checks.find((x) => x.rail === rail);
  if (c === undefined) return '·';
  return c.verdict === undefined ? 'go' : c.verdict.action;
}

function decision(s: PlanStep, r: PlanReport): string {
  switch (s.kind) {
    case 'held':
      return `held: ${s.why}${s.until !== undefined ? `; pulled at ${offset(s.until - r.start)}` : ''}`;
    case 'waited':
      return `waits for its host until ${offset(s.until - r.start)}`;
    case 'decided':
      if (s.verdict === undefined)
        return `${r.leashed ? 'leashed (would restart)' : 'restart'}, until ${offset(s.at + r.restartMs - r.start)}`;
      return s.verdict.action === 'defer'
        ? `${s.outcome} until ${offset(s.at + s.verdict.delayMs - r.start)}: ${s.verdict.reason}`
        : `${s.outcome}: ${s.verdict.reason}`;
  }
}

function table(head: readonly string[], rows: readonly string[][]): string[] {
  const widths = head.map((h, i) => (i === head.length - 1 ? 0 : Math.max(h.length, ...rows.map((r) => r[i]!.length))));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)];
}

function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** `+0s`, `+2.5s`, `+1m 30s`, `+3h 12m`, `+2d 4h`: simulated time from the start. */
export function offset(ms: number): string {
  return `+${span(ms)}`;
}

function span(ms: number): string {
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  const s = Math.round(ms / 1000);
  const parts = [
    [Math.floor(s / 86_400), 'd'],
    [Math.floor(s / 3600) % 24, 'h'],
    [Math.floor(s / 60) % 60, 'm'],
    [s % 60, 's'],
  ] as const;
  // From the largest unit present, down to the seconds: `1h 0m 4s`, `2d 3h 0m 0s`.
  const first = parts.findIndex(([n]) => n > 0);
  return parts
    .slice(first)
    .map(([n, u]) => `${n}${u}`)
    .join(' ');
}
