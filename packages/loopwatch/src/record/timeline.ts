/**
 * The replay model: a recording's events folded into what `loopwatch top` shows, as it was at any
 * moment — pending tasks (where each waited, its busy time), work units and their phases, loop lag and
 * utilisation, the last minute's slow turns. Moving forward folds the events in between; moving back
 * folds again from the start (cheap next to a screen refresh for recordings of a few million events).
 */
import type { Frame } from '../model/report.js';
import type { EndedRow, SlowRow, TaskRow, TopData, WhereData, WorkRow } from '../attach/protocol.js';
import { eventsBetween, type RecEvent, type Recording } from './reader.js';

interface TaskState {
  readonly id: number;
  parent: number;
  def: number;
  created: number;
  name: number;
  start: number;
  site: number;
  on: number;
  busy: number;
  /** Running since (resumed, not yet suspended again). */
  ranFrom: number | undefined;
  endedAt?: number;
}

interface WorkState {
  readonly id: number;
  kind: number;
  key: string;
  parent: number;
  start: number;
  phase: number;
  phaseAt: number;
  site: number;
  readonly past: { phase: number; at: number; site: number }[];
  endedAt?: number;
  error?: number;
}

const ENDED_KEPT = 100;
const SLOW_WINDOW_MS = 60_000;
const LAG_WINDOW_MS = 10_000;

/** `function\nfile\nline\ncolumn` → a frame. */
export function frameOf(text: string | undefined): Frame | undefined {
  if (text === undefined) return undefined;
  const [functionName, file, line, column] = text.split('\n');
  if (file === undefined) return undefined;
  return { functionName: functionName ?? '<anonymous>', file, line: Number(line), column: Number(column) };
}

export class Timeline {
  readonly startMs: number;
  readonly endMs: number;
  #i = 0;
  #t = -Infinity;
  #tasks = new Map<number, TaskState>();
  #work = new Map<number, WorkState>();
  #endedTasks: TaskState[] = [];
  #endedWork: WorkState[] = [];

  constructor(readonly rec: Recording) {
    const ev = rec.events;
    this.startMs = ev[0]?.t ?? rec.meta.startMs;
    this.endMs = ev[ev.length - 1]?.t ?? this.startMs;
  }

  str(id: number): string | undefined {
    return id === 0 ? undefined : this.rec.strings.get(id);
  }

  frame(site: number): Frame | undefined {
    return frameOf(this.str(site));
  }

  /** Folds events up to `t` (inclusive). */
  seek(t: number): void {
    if (t < this.#t) {
      this.#i = 0;
      this.#tasks = new Map();
      this.#work = new Map();
      this.#endedTasks = [];
      this.#endedWork = [];
    }
    const ev = this.rec.events;
    while (this.#i < ev.length && ev[this.#i]!.t <= t) this.#apply(ev[this.#i++]!);
    this.#t = t;
  }

  #task(id: number, t: number): TaskState {
    let s = this.#tasks.get(id);
    if (s === undefined) {
      // Created before the oldest slot the ring kept: known from here on.
      s = { id, parent: 0, def: 0, created: 0, name: 0, start: t, site: 0, on: 0, busy: 0, ranFrom: undefined };
      this.#tasks.set(id, s);
    }
    return s;
  }

  #unit(id: number, t: number): WorkState {
    let s = this.#work.get(id);
    if (s === undefined) {
      s = { id, kind: 0, key: '?', parent: 0, start: t, phase: 0, phaseAt: t, site: 0, past: [] };
      this.#work.set(id, s);
    }
    return s;
  }

  // One case per event type.
  #apply(e: RecEvent): void {
    switch (e.type) {
      case 'task':
        this.#tasks.set(e.id, { ...e, name: 0, start: e.t, site: 0, on: 0, busy: 0, ranFrom: undefined });
        return;
      case 'ktask':
        if (!this.#tasks.has(e.id)) this.#tasks.set(e.id, { ...e, on: 0, ranFrom: undefined });
        return;
      case 'name':
        this.#task(e.id, e.t).name = e.name;
        return;
      case 'await': {
        const s = this.#task(e.id, e.t);
        if (s.ranFrom !== undefined) s.busy += e.t - s.ranFrom;
        s.ranFrom = undefined;
        s.site = e.site;
        s.on = e.on;
        return;
      }
      case 'resume': {
        const s = this.#task(e.id, e.t);
        s.ranFrom = e.t;
        s.site = 0;
        s.on = 0;
        return;
      }
      case 'end': {
        const s = this.#task(e.id, e.t);
        if (s.ranFrom !== undefined) s.busy += e.t - s.ranFrom;
        s.endedAt = e.t;
        this.#tasks.delete(e.id);
        this.#endedTasks.push(s);
        if (this.#endedTasks.length > ENDED_KEPT) this.#endedTasks.shift();
        return;
      }
      case 'wbegin':
        this.#work.set(e.id, { ...e, start: e.t, phase: 0, phaseAt: e.t, site: 0, past: [] });
        return;
      case 'kwork':
        if (!this.#work.has(e.id)) this.#work.set(e.id, { ...e, past: [] });
        return;
      case 'wphase': {
        const s = this.#unit(e.id, e.t);
        if (s.phase !== 0) s.past.push({ phase: s.phase, at: s.phaseAt, site: s.site });
        if (s.past.length > 8) s.past.shift();
        s.phase = e.phase;
        s.phaseAt = e.t;
        s.site = e.site;
        return;
      }
      case 'wend': {
        const s = this.#unit(e.id, e.t);
        s.endedAt = e.t;
        s.error = e.error;
        this.#work.delete(e.id);
        this.#endedWork.push(s);
        if (this.#endedWork.length > ENDED_KEPT) this.#endedWork.shift();
        return;
      }
      default:
        // slow, lag, lost: looked up by time, not folded.
        return;
    }
  }

  #taskName(s: TaskState): string {
    return this.str(s.name) ?? this.frame(s.def)?.functionName ?? `task ${s.id}`;
  }

  #taskRow(s: TaskState, t: number): TaskRow {
    const running = s.ranFrom !== undefined;
    const at = this.frame(s.site);
    const created = this.frame(s.created);
    return {
      id: s.id,
      name: this.#taskName(s),
      state: running ? 'running' : 'pending',
      ageMs: Math.round(t - s.start),
      busyMs: Math.round((s.busy + (running ? t - s.ranFrom! : 0)) * 10) / 10,
      parentId: s.parent === 0 || !this.#tasks.has(s.parent) ? null : s.parent,
      ...(s.on !== 0 && this.#tasks.has(s.on) ? { awaitsId: s.on } : {}),
      waitingAt: at ? [at] : [],
      createdAt: created ? [created] : [],
    };
  }

  #workRow(s: WorkState, t: number, past = false): WorkRow {
    const at = this.frame(s.site);
    const end = s.endedAt ?? t;
    return {
      id: s.id,
      kind: this.str(s.kind) ?? '?',
      key: s.key,
      name: `${this.str(s.kind) ?? '?'} ${s.key}`,
      phase: this.str(s.phase) ?? '',
      ageMs: Math.round(end - s.start),
      phaseMs: Math.round(end - s.phaseAt),
      parentId: s.parent === 0 ? null : s.parent,
      waitingAt: at ? [at] : [],
      ...(s.endedAt === undefined
        ? {}
        : {
            endedAgoMs: Math.round(t - s.endedAt),
            outcome: s.error ? 'failed' : 'done',
            ...(s.error ? { error: this.str(s.error) ?? '?' } : {}),
          }),
      ...(past
        ? {
            past: s.past.map((p, i) => {
              const f = this.frame(p.site);
              return {
                phase: this.str(p.phase) ?? '',
                forMs: Math.round((s.past[i + 1]?.at ?? s.phaseAt) - p.at),
                ...(f ? { at: f } : {}),
              };
            }),
          }
        : {}),
    };
  }

  #between<T extends RecEvent['type']>(type: T, from: number, to: number): Extract<RecEvent, { type: T }>[] {
    return eventsBetween(this.rec.events, type, from, to);
  }

  /** What `top` showed at `t`. */
  top(t: number): TopData {
    this.seek(t);
    const lags = this.#between('lag', t - LAG_WINDOW_MS, t);
    const p50s = lags.map((l) => l.p50).sort((a, b) => a - b);
    const slow: SlowRow[] = this.#between('slow', t - SLOW_WINDOW_MS, t + SLOW_WINDOW_MS)
      .filter((s) => s.start <= t && s.start >= t - SLOW_WINDOW_MS && !s.stall)
      .map((s) => {
        const culprit = this.str(s.culprit);
        const m = culprit === undefined ? null : /^(.*) \((.*)\)$/.exec(culprit);
        const task = this.str(s.task);
        return {
          agoMs: Math.round(t - s.start),
          durationMs: Math.round(s.dur),
          ...(m ? { functionName: m[1]!, location: m[2]! } : {}),
          ...(task === undefined ? {} : { task }),
        };
      });
    const tasks = [...this.#tasks.values()]
      .map((s) => this.#taskRow(s, t))
      .sort((a, b) => b.busyMs - a.busyMs || a.id - b.id);
    const work = [...this.#work.values()].sort((a, b) => a.phaseAt - b.phaseAt).map((s) => this.#workRow(s, t));
    const meta = this.rec.meta;
    return {
      info: {
        pid: meta.pid,
        command: meta.command,
        mode: meta.mode,
        uptimeMs: Math.round(t),
        node: meta.node,
        lag: {
          p50Ms: p50s[Math.floor(p50s.length / 2)] ?? 0,
          p99Ms: Math.max(0, ...lags.map((l) => l.p99)),
          maxMs: Math.max(0, ...lags.map((l) => l.max)),
        },
        tasks: tasks.length,
        work: work.length,
      },
      utilization: lags[lags.length - 1]?.util ?? 0,
      slow,
      tasks,
      ended: [...this.#endedTasks]
        .reverse()
        .slice(0, 20)
        .map((s) => this.#endedRow(s, t)),
      work,
    };
  }

  #endedRow(s: TaskState, t: number): EndedRow {
    const created = this.frame(s.created);
    return {
      id: s.id,
      name: this.#taskName(s),
      endedAgoMs: Math.round(t - (s.endedAt ?? t)),
      ageMs: Math.round((s.endedAt ?? t) - s.start),
      busyMs: Math.round(s.busy * 10) / 10,
      // A promise hook cannot see how a promise settled; the recording does not either.
      outcome: { state: 'unknown' },
      createdAt: created ? [created] : [],
    };
  }

  /** One task's or work unit's detail at `t` (live or recently ended). */
  where(t: number, ref: { readonly task?: number; readonly work?: number }): WhereData {
    this.seek(t);
    if (ref.work !== undefined) {
      const s = this.#work.get(ref.work) ?? this.#endedWork.find((w) => w.id === ref.work);
      return { ...(s ? { work: this.#workRow(s, t, true) } : {}), chain: [] };
    }
    const live = ref.task === undefined ? undefined : this.#tasks.get(ref.task);
    const ended = live ? undefined : this.#endedTasks.find((s) => s.id === ref.task);
    const chain: WhereData['chain'][number][] = [];
    for (let p = this.#tasks.get((live ?? ended)?.parent ?? 0); p && chain.length < 10; p = this.#tasks.get(p.parent)) {
      const f = this.frame(p.created);
      chain.push({ id: p.id, name: this.#taskName(p), createdAt: f ? [f] : [] });
    }
    return {
      ...(live ? { task: this.#taskRow(live, t) } : {}),
      ...(ended ? { ended: this.#endedRow(ended, t) } : {}),
      chain,
    };
  }

  /** Start times of the slow turns, for stepping from one to the next. */
  slowTurns(): number[] {
    return this.#between('slow', -Infinity, Infinity)
      .filter((s) => !s.stall)
      .map((s) => s.start)
      .sort((a, b) => a - b);
  }
}
