/**
 * `loopwatch export <file> --format chrome-trace`: a recording as the Trace Event Format (the JSON
 * that Perfetto, chrome://tracing and Chrome DevTools' performance panel open):
 *  - every task and work unit is a nestable async slice (`b`/`e`, its own track in Perfetto), with
 *    a nested slice per `await` (named by its line) or per phase;
 *  - slow turns are complete events (`X`) on the main thread's track, stalls on a track of their own;
 *  - loop lag (p50/p99/max, ms) and utilisation (%) are counter tracks (`C`).
 * Times are µs since the recording's first event; every `b` has its `e` (still pending at the end:
 * closed there, with `args.pending`).
 */
import type { Recording } from './reader.js';
import { frameOf } from './timeline.js';
import { shortLocation } from '../model/paths.js';

export interface TraceEvent {
  readonly name: string;
  readonly ph: 'M' | 'X' | 'b' | 'e' | 'C' | 'i';
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
  readonly cat?: string;
  readonly id?: string;
  readonly dur?: number;
  readonly s?: 'g' | 'p' | 't';
  readonly args?: Record<string, unknown>;
}

export interface ChromeTrace {
  readonly traceEvents: TraceEvent[];
  readonly displayTimeUnit: 'ms';
  readonly otherData: Record<string, unknown>;
}

const MAIN = 1;
const STALLS = 2;

interface Open {
  readonly id: string;
  readonly name: string;
  readonly cat: 'task' | 'work';
  /** The nested slice (an await, a phase) open now. */
  inner: string | undefined;
}

export function toChromeTrace(rec: Recording): ChromeTrace {
  const pid = rec.meta.pid;
  const t0 = rec.events[0]?.t ?? rec.meta.startMs;
  const tEnd = rec.events[rec.events.length - 1]?.t ?? t0;
  const ts = (t: number): number => Math.round(Math.max(0, t - t0) * 1000 * 1000) / 1000;
  const str = (id: number): string | undefined => (id === 0 ? undefined : rec.strings.get(id));
  const where = (site: number): string | undefined => {
    const f = frameOf(str(site));
    return f ? `${f.functionName} (${shortLocation(f)})` : undefined;
  };
  const out: TraceEvent[] = [
    { name: 'process_name', ph: 'M', ts: 0, pid, tid: MAIN, args: { name: `${rec.meta.command} (pid ${pid})` } },
    { name: 'thread_name', ph: 'M', ts: 0, pid, tid: MAIN, args: { name: 'main thread (event loop)' } },
    { name: 'thread_name', ph: 'M', ts: 0, pid, tid: STALLS, args: { name: 'stalls (watchdog)' } },
  ];
  const open = new Map<string, Open>();
  // A `spawn` names its task right after the task began: the slice takes the final name.
  const names = new Map<number, string>();
  for (const e of rec.events) if (e.type === 'name' && str(e.name) !== undefined) names.set(e.id, str(e.name)!);
  const begin = (slice: Omit<Open, 'inner'>, t: number, args: Record<string, unknown>): Open => {
    const o: Open = { ...slice, inner: undefined };
    open.set(o.id, o);
    out.push({ name: o.name, ph: 'b', cat: o.cat, id: o.id, ts: ts(t), pid, tid: MAIN, args });
    return o;
  };
  const known = (id: string, cat: 'task' | 'work', t: number, name: () => string): Open =>
    open.get(id) ?? begin({ id, cat, name: name() }, t, { startedBeforeRecording: true });
  const inner = (o: Open, name: string | undefined, t: number): void => {
    if (o.inner !== undefined) out.push({ name: o.inner, ph: 'e', cat: o.cat, id: o.id, ts: ts(t), pid, tid: MAIN });
    o.inner = name;
    if (name !== undefined) out.push({ name, ph: 'b', cat: o.cat, id: o.id, ts: ts(t), pid, tid: MAIN });
  };
  const end = (o: Open, t: number, args?: Record<string, unknown>): void => {
    inner(o, undefined, t);
    open.delete(o.id);
    out.push({ name: o.name, ph: 'e', cat: o.cat, id: o.id, ts: ts(t), pid, tid: MAIN, ...(args ? { args } : {}) });
  };
  const taskName = (id: number): string => names.get(id) ?? `task ${id}`;
  const turns: { start: number; dur: number; name: string; stall: boolean; args: Record<string, unknown> }[] = [];
  for (const e of rec.events) {
    switch (e.type) {
      case 'task':
      case 'ktask': {
        const name =
          names.get(e.id) ??
          (e.type === 'ktask' ? str(e.name) : undefined) ??
          frameOf(str(e.def))?.functionName ??
          `task ${e.id}`;
        names.set(e.id, name);
        if (!open.has(`task-${e.id}`)) {
          const start = e.type === 'ktask' ? e.start : e.t;
          begin({ id: `task-${e.id}`, cat: 'task', name }, start, {
            task: e.id,
            ...(where(e.created) ? { createdAt: where(e.created) } : {}),
            ...(e.parent ? { parent: e.parent } : {}),
            ...(start < t0 ? { startedBeforeRecording: true } : {}),
          });
          if (e.type === 'ktask' && e.site !== 0)
            inner(open.get(`task-${e.id}`)!, `await ${where(e.site) ?? '?'}`, e.t);
        }
        break;
      }
      case 'await':
        inner(
          known(`task-${e.id}`, 'task', e.t, () => taskName(e.id)),
          `await ${where(e.site) ?? '?'}`,
          e.t,
        );
        break;
      case 'resume':
        inner(
          known(`task-${e.id}`, 'task', e.t, () => taskName(e.id)),
          undefined,
          e.t,
        );
        break;
      case 'end':
        end(
          known(`task-${e.id}`, 'task', e.t, () => taskName(e.id)),
          e.t,
        );
        break;
      case 'wbegin':
      case 'kwork': {
        const key = `work-${e.id}`;
        if (open.has(key)) break;
        const start = e.type === 'kwork' ? e.start : e.t;
        const o = begin({ id: key, cat: 'work', name: `${str(e.kind) ?? '?'} ${e.key}` }, start, {
          work: e.id,
          ...(e.parent ? { parent: e.parent } : {}),
          ...(start < t0 ? { startedBeforeRecording: true } : {}),
        });
        if (e.type === 'kwork' && e.phase !== 0) inner(o, str(e.phase), e.t);
        break;
      }
      case 'wphase':
        inner(
          known(`work-${e.id}`, 'work', e.t, () => `work ${e.id}`),
          str(e.phase) ?? '?',
          e.t,
        );
        break;
      case 'wend': {
        const o = known(`work-${e.id}`, 'work', e.t, () => `work ${e.id}`);
        end(o, e.t, e.error ? { failed: str(e.error) } : undefined);
        break;
      }
      case 'slow':
        turns.push({
          start: e.start,
          dur: e.dur,
          stall: e.stall,
          name: `${e.stall ? 'stall' : 'slow turn'}${str(e.culprit) ? `: ${str(e.culprit)}` : ''}`,
          args: { durationMs: Math.round(e.dur * 10) / 10, ...(str(e.task) ? { task: str(e.task) } : {}) },
        });
        break;
      case 'lag':
        out.push({
          name: 'loop lag (ms)',
          ph: 'C',
          ts: ts(e.t),
          pid,
          tid: MAIN,
          args: { p50: e.p50, p99: e.p99, max: e.max },
        });
        out.push({
          name: 'loop utilisation (%)',
          ph: 'C',
          ts: ts(e.t),
          pid,
          tid: MAIN,
          args: { utilisation: Math.round(e.util * 1000) / 10 },
        });
        break;
      case 'lost':
        out.push({ name: `recording lost ${e.bytes} bytes`, ph: 'i', s: 'p', ts: ts(e.t), pid, tid: MAIN });
        break;
    }
  }
  for (const o of [...open.values()]) end(o, tEnd, { pending: true });
  // Turns on one track must nest or follow each other: clip the rare overlap two detectors leave.
  for (const stall of [false, true]) {
    let until = -Infinity;
    for (const r of turns.filter((x) => x.stall === stall).sort((a, b) => a.start - b.start)) {
      const start = Math.max(r.start, until);
      const dur = r.start + r.dur - start;
      if (dur <= 0) continue;
      until = start + dur;
      out.push({
        name: r.name,
        ph: 'X',
        cat: 'loop',
        ts: ts(start),
        dur: Math.round(dur * 1000),
        pid,
        tid: stall ? STALLS : MAIN,
        args: r.args,
      });
    }
  }
  // Stable: a `b` and the `e` of the same instant keep their order.
  const order = new Map(out.map((e, i) => [e, i]));
  out.sort((a, b) => (a.ph === 'M' ? -1 : 0) - (b.ph === 'M' ? -1 : 0) || a.ts - b.ts || order.get(a)! - order.get(b)!);
  return {
    traceEvents: out,
    displayTimeUnit: 'ms',
    otherData: {
      ...rec.meta,
      timeOrigin: rec.timeOrigin,
      firstEventMs: t0,
      lostBytes: rec.lostBytes,
      source: 'loopwatch',
    },
  };
}
