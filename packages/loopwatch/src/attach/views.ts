/**
 * The `loopwatch` command's text views of attach answers: tables like Python's `asyncio ps`, the
 * await tree like its `pstree`, one task's stacks like aiomonitor's `where`. Plain text, no colour:
 * these are read, piped and pasted into issues.
 */
import type { Frame, TaskRef } from '../model/report.js';
import { shortLocation } from '../model/paths.js';
import { findCycles } from '../instrument/dump.js';
import type { AttachAnswer, BusyInfo, EndedRow, ProcessInfo, TaskRow, WhereData, WorkRow } from './protocol.js';

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
  return `${Math.floor(ms / 3_600_000)}h${String(Math.floor((ms % 3_600_000) / 60_000)).padStart(2, '0')}m`;
}

/** `file:line:col` with the file relative to the working directory when below it. */
export function shortLoc(location: string): string {
  const m = /^(.*):(\d+):(\d+)$/.exec(location);
  return m ? shortLocation({ functionName: '', file: m[1]!, line: Number(m[2]), column: Number(m[3]) }) : location;
}

export function at(f: Frame | undefined): string {
  return f ? shortLocation(f) : '-';
}

/** A table with a header, columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** "main thread busy for 4.2 s in rebuildIndex (src/search/index.ts:88:3)" and where the answer comes from. */
export function busyLine(b: BusyInfo, staleAgeMs: number | undefined): string {
  const user = b.stack.find((f) => f.origin === undefined && !f.file.startsWith('node:')) ?? b.stack[0];
  const where = user ? ` in ${user.functionName} (${shortLocation(user)})` : b.note ? ` (${b.note})` : '';
  const task = b.task ? `, running task ${b.task.name} (#${b.task.id})` : '';
  const last =
    staleAgeMs === undefined ? '; no earlier snapshot' : `; below: the last snapshot, ${duration(staleAgeMs)} old`;
  return `main thread busy for ${duration(b.forMs)}${where}${task}${last}\n`;
}

export interface PsFilter {
  readonly name?: RegExp;
  readonly olderThanMs?: number;
  readonly all?: boolean;
}

export function psView(tasks: readonly TaskRow[], f: PsFilter = {}, work: readonly WorkRow[] = []): string {
  const shown = tasks.filter(
    (t) => (!f.name || f.name.test(t.name)) && (f.olderThanMs === undefined || t.ageMs >= f.olderThanMs),
  );
  const rows: string[][] = [];
  const groups = new Map<string, TaskRow[]>();
  for (const t of shown) {
    const key = f.all ? `#${t.id}` : `${t.name}\n${t.waitingAt.map(shortLocation).join('\n')}`;
    const g = groups.get(key);
    if (g) g.push(t);
    else groups.set(key, [t]);
  }
  for (const g of groups.values()) {
    const t = g[0]!;
    const id = g.length > 1 ? `${g.length} ×` : String(t.id);
    const age = g.length > 1 ? `≤${duration(Math.max(...g.map((x) => x.ageMs)))}` : duration(t.ageMs);
    const busy = g.reduce((s, x) => s + x.busyMs, 0);
    rows.push([
      id,
      t.name,
      t.state,
      age,
      busy.toFixed(1),
      at(t.waitingAt[0]),
      g.length > 1 ? '-' : t.parentId === null ? '-' : `#${t.parentId}`,
    ]);
  }
  const units = workView(work, f);
  // Production mode tracks no tasks: a program that names its work shows only that.
  if (tasks.length === 0 && units !== '') return units;
  return (
    table(['ID', 'NAME', 'STATE', 'AGE', 'BUSY ms', 'WAITING AT', 'PARENT'], rows) +
    `${shown.length} task${shown.length === 1 ? '' : 's'}${shown.length < tasks.length ? ` (of ${tasks.length})` : ''}\n` +
    (units === '' ? '' : `\n${units}`)
  );
}

/** A key as shown in tables: long ids (UUIDs) cut to their first 8 characters. */
export function shortKey(key: string): string {
  return key.length > 12 ? `${key.slice(0, 8)}…` : key;
}

/** `w3`: work units' ids on the command line and in tables (tasks have plain numbers). */
export const workRef = (id: number): string => `w${id}`;

/**
 * Units of work (`trackWork`), like tasks: what phase each is in, for how long, and where that phase
 * was set. Units of one kind in the same phase at the same line fold into one row (not with --all).
 */
export function workView(work: readonly WorkRow[], f: PsFilter = {}): string {
  const shown = work.filter(
    (w) => (!f.name || f.name.test(w.name)) && (f.olderThanMs === undefined || w.ageMs >= f.olderThanMs),
  );
  if (work.length === 0) return '';
  const groups = new Map<string, WorkRow[]>();
  for (const w of shown) {
    const key = f.all ? `#${w.id}` : `${w.kind}\n${w.phase}\n${w.waitingAt.map(shortLocation).join('\n')}`;
    const g = groups.get(key);
    if (g) g.push(w);
    else groups.set(key, [w]);
  }
  const rows = [...groups.values()].map((g) => {
    const w = g[0]!;
    const many = g.length > 1;
    return [
      many ? `${g.length} ×` : workRef(w.id),
      many ? w.kind : `${w.kind} ${shortKey(w.key)}`,
      w.phase === '' ? '(no phase yet)' : w.phase,
      // reduce, not Math.max(...): a fold can hold more units than a call takes arguments.
      many ? `≤${duration(g.reduce((m, x) => Math.max(m, x.phaseMs), 0))}` : duration(w.phaseMs),
      many ? `≤${duration(g.reduce((m, x) => Math.max(m, x.ageMs), 0))}` : duration(w.ageMs),
      at(w.waitingAt[0]),
      many || w.parentId === null ? '-' : `#${w.parentId}`,
    ];
  });
  return (
    table(['ID', 'WORK', 'PHASE', 'SINCE', 'AGE', 'WAITING AT', 'PARENT'], rows) +
    `${shown.length} work unit${shown.length === 1 ? '' : 's'}${shown.length < work.length ? ` (of ${work.length})` : ''}\n`
  );
}

export function endedWorkView(ended: readonly WorkRow[]): string {
  if (ended.length === 0) return '';
  const rows = ended.map((w) => [
    workRef(w.id),
    `${w.kind} ${shortKey(w.key)}`,
    w.outcome === 'failed' ? `failed: ${w.error ?? ''}` : 'done',
    `${duration(w.endedAgoMs ?? 0)} ago`,
    duration(w.ageMs),
    w.phase === '' ? '-' : w.phase,
  ]);
  return table(['ID', 'WORK', 'ENDED', 'WHEN', 'LIVED', 'LAST PHASE'], rows);
}

export function endedView(ended: readonly EndedRow[]): string {
  const rows = ended.map((e) => [
    String(e.id),
    e.name,
    e.outcome.abortedBy
      ? `aborted (${e.outcome.abortedBy.reason})`
      : e.outcome.state === 'rejected'
        ? `rejected: ${e.outcome.error ?? ''}`
        : e.outcome.state,
    `${duration(e.endedAgoMs)} ago`,
    duration(e.ageMs),
    e.busyMs.toFixed(1),
    e.outcome.abortedBy?.at[0] ?? at(e.createdAt[0]),
  ]);
  return table(['ID', 'NAME', 'ENDED', 'WHEN', 'LIVED', 'BUSY ms', 'ABORTED AT / CREATED AT'], rows);
}

function lockText(t: TaskRow): string {
  if (t.waitsForLock === undefined) return '';
  return `  waits for lock "${t.waitsForLock}"${t.awaitsId !== undefined ? `, held by #${t.awaitsId}` : ''}`;
}

/** A cycle, each hop by await or (`lockWaiting`) by a lock the next task holds. */
function cycleText(c: readonly TaskRef[], byId: ReadonlyMap<number, TaskRow>): string {
  return c
    .map((t, i) => {
      const lock = i < c.length - 1 ? byId.get(t.id)?.waitsForLock : undefined;
      return `${t.name} (#${t.id})${i === c.length - 1 ? '' : lock !== undefined ? ` → [lock "${lock}"] →` : ' →'}`;
    })
    .join(' ');
}

/** Who awaits whom: a task's children are the tasks awaiting it is not; the tasks it awaits are. */
export function pstreeView(tasks: readonly TaskRow[]): string {
  const cycles = findCycles(tasks.map((t) => ({ ...t, createdAt: [], waitingAt: [] })));
  const byId = new Map(tasks.map((t) => [t.id, t]));
  if (cycles.length > 0) {
    return (
      [
        'ERROR: await-graph contains cycles - cannot print a tree!',
        '',
        ...cycles.map((c) => `cycle: ${cycleText(c, byId)}`),
      ].join('\n') + '\n'
    );
  }
  const awaitedBy = new Map<number, number>();
  for (const t of tasks) if (t.awaitsId !== undefined && byId.has(t.awaitsId)) awaitedBy.set(t.awaitsId, t.id);
  const out: string[] = [];
  const walk = (t: TaskRow, prefix: string, last: boolean, root: boolean): void => {
    out.push(
      `${root ? '' : `${prefix}${last ? '└── ' : '├── '}`}(T) ${t.name} #${t.id}${t.waitingAt[0] ? `  ${at(t.waitingAt[0])}` : ''}${lockText(t)}`,
    );
    const next = t.awaitsId === undefined ? undefined : byId.get(t.awaitsId);
    if (next) walk(next, root ? '' : `${prefix}${last ? '    ' : '│   '}`, true, false);
  };
  for (const t of tasks) if (!awaitedBy.has(t.id)) walk(t, '', true, true);
  return out.join('\n') + (out.length ? '\n' : '');
}

function frames(title: string, list: readonly Frame[]): string[] {
  return list.length === 0 ? [] : [`${title}:`, ...list.map((f) => `  at ${f.functionName} (${shortLocation(f)})`)];
}

export function whereView(d: WhereData, id: number | string): string {
  const lines: string[] = [];
  if (d.work) {
    const w = d.work;
    const state =
      w.endedAgoMs === undefined
        ? `${w.phase === '' ? 'no phase yet' : w.phase} for ${duration(w.phaseMs)}`
        : `${w.outcome === 'failed' ? `failed: ${w.error ?? ''}` : 'done'} ${duration(w.endedAgoMs)} ago, last phase ${w.phase === '' ? '-' : w.phase}`;
    lines.push(`Work ${workRef(w.id)} ${w.kind} ${w.key}: ${state}, age ${duration(w.ageMs)}`);
    lines.push(
      ...frames(
        w.endedAgoMs === undefined
          ? 'waiting at (what the phase waits on, if it said, then where it was set)'
          : 'last phase set at',
        w.waitingAt,
      ),
    );
    if (w.past && w.past.length > 0)
      lines.push(
        'earlier phases:',
        ...w.past.map((p) => `  ${p.phase} for ${duration(p.forMs)}${p.at ? ` (${shortLocation(p.at)})` : ''}`),
      );
  } else if (d.task) {
    const t = d.task;
    lines.push(
      `Task #${t.id} ${t.name}: ${t.state}, age ${duration(t.ageMs)}, busy ${t.busyMs.toFixed(1)} ms${t.awaitsId !== undefined ? `, awaits #${t.awaitsId}` : ''}`,
    );
    lines.push(...frames('waiting at', t.waitingAt), ...frames('created at (source_traceback)', t.createdAt));
  } else if (d.ended) {
    const e = d.ended;
    const how = e.outcome.abortedBy
      ? `aborted (${e.outcome.abortedBy.reason}) at ${e.outcome.abortedBy.at.join(' ← ')}${(e.outcome.abortedBy.via ?? []).map((v) => `, via ${v}`).join('')}`
      : e.outcome.state === 'rejected'
        ? `rejected: ${e.outcome.error ?? ''}`
        : e.outcome.state;
    lines.push(
      `Task #${e.id} ${e.name}: ended ${duration(e.endedAgoMs)} ago, ${how}; lived ${duration(e.ageMs)}, busy ${e.busyMs.toFixed(1)} ms`,
    );
    lines.push(...frames('created at (source_traceback)', e.createdAt));
  } else
    return typeof id === 'string'
      ? `no work unit ${id} (live or recently ended)\n`
      : `no task #${id} (pending or recently ended)\n`;
  for (const p of d.chain) lines.push(...frames(`started by #${p.id} ${p.name}, created at`, p.createdAt));
  return lines.join('\n') + '\n';
}

export function listView(rows: readonly { pid: number; info?: ProcessInfo; note?: string }[]): string {
  return table(
    ['PID', 'MODE', 'UPTIME', 'LAG p99', 'TASKS', 'COMMAND'],
    rows.map((r) =>
      r.info
        ? [
            String(r.pid),
            r.info.mode,
            duration(r.info.uptimeMs),
            `${r.info.lag.p99Ms.toFixed(1)} ms`,
            r.info.work ? `${r.info.tasks} + ${r.info.work} work` : String(r.info.tasks),
            r.info.command,
          ]
        : [String(r.pid), '?', '?', '?', '?', r.note ?? ''],
    ),
  );
}

/** The answer's data, fresh or the last one (with the busy line first). */
export function dataOf<T>(a: AttachAnswer): { data: T | undefined; head: string } {
  if (!a.busy) return { data: a.data as T, head: '' };
  return { data: a.stale?.data as T | undefined, head: busyLine(a.busy, a.stale?.ageMs) };
}
