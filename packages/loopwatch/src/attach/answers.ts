/**
 * The main thread's answers to attach requests, built from one {@link Loopwatch}'s instruments. Frames
 * are resolved here, where the loaders' source maps are.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Loopwatch } from '../loopwatch.js';
import type { PromiseRecord } from '../model/task.js';
import { awaitedAtOf, awaitersOf, createdAtOf, snapshotOf, type Awaiters } from '../instrument/describe.js';
import { findCycles } from '../instrument/dump.js';
import { HISTORY } from '../instrument/terminated.js';
import { phaseSites, type WorkRecord } from '../instrument/work.js';
import { userFrames } from '../source/frames.js';
import type { Frame } from '../model/report.js';
import { commandLine } from '../model/paths.js';
import type {
  AttachRequest,
  EndedRow,
  ProcessInfo,
  SlowRow,
  TaskRow,
  TopData,
  WhereData,
  WorkRow,
} from './protocol.js';

/** Tasks sent to `top` (the busiest first). */
const TOP_TASKS = 200;

export class Answers {
  #prevElu: EventLoopUtilization = performance.eventLoopUtilization();

  constructor(readonly lw: Loopwatch) {}

  answer(req: AttachRequest): unknown {
    switch (req.cmd) {
      case 'info':
        return this.info();
      case 'ps':
        return { tasks: this.#rows(), work: this.#workRows() };
      case 'pstree': {
        const tasks = this.#rows();
        return { tasks, cycles: findCycles(tasks.map((t) => ({ ...t, createdAt: [], waitingAt: [] }))) };
      }
      case 'where':
        return req.work !== undefined ? this.#whereWork(req.work) : this.#where(req.task ?? -1);
      case 'dump':
        return this.lw.dump();
      case 'top':
        return this.#top();
      case 'ended':
        return { ended: this.#ended(HISTORY), endedWork: this.lw.work.ended().map((r) => this.#workRow(r, 3)) };
    }
  }

  info(): ProcessInfo {
    const lag = this.lw.watchdog?.lag(10_000) ?? { p50Ms: 0, p99Ms: 0, maxMs: 0 };
    return {
      pid: process.pid,
      command: commandLine(),
      mode: this.lw.mode,
      uptimeMs: Math.round(performance.now()),
      node: process.version,
      lag: { p50Ms: lag.p50Ms, p99Ms: lag.p99Ms, maxMs: lag.maxMs },
      tasks: this.lw.tasks.tracking ? this.lw.tasks.pending().length : 0,
      work: this.lw.work.size,
    };
  }

  #row(rec: PromiseRecord, now: number, awaiters: Awaiters, limit = 5): TaskRow {
    const s = snapshotOf(rec, now, limit, awaiters);
    const current = this.lw.tasks.current();
    return { ...s, state: current === rec ? 'running' : 'pending', busyMs: Math.round(rec.busyMs * 10) / 10 };
  }

  #rows(limit = 5): TaskRow[] {
    const recs = this.lw.tasks.pending();
    const awaiters = awaitersOf(recs);
    const now = this.lw.clock.now();
    return recs.map((r) => this.#row(r, now, awaiters, limit));
  }

  #workRow(rec: WorkRecord, limit: number, past = false): WorkRow {
    const now = this.lw.clock.now();
    const end = rec.endedAt ?? now;
    let parent = rec.parent;
    while (parent !== undefined && parent.internal) parent = parent.parent;
    const at = (sites: NodeJS.CallSite[] | undefined, n: number) => (sites ? userFrames(sites, n) : []);
    return {
      id: rec.id,
      kind: rec.kind,
      key: rec.key,
      name: rec.name,
      phase: rec.phaseText,
      ageMs: Math.round(end - rec.startedAt),
      phaseMs: Math.round(end - rec.phaseAt),
      parentId: parent?.id ?? null,
      // What the phase waits on (when it said), then the line that set the phase.
      waitingAt: [...(rec.endedAt === undefined ? awaitedAtOf(rec.waitingOn, limit) : []), ...at(rec.sites, limit)]
        // (the awaited promise's frame and the phase's line can be the same line: said once)
        .filter((f, i, all) => i === 0 || !sameFrame(f, all[i - 1]!))
        .slice(0, limit),
      ...(rec.endedAt === undefined
        ? {}
        : {
            endedAgoMs: Math.round(now - rec.endedAt),
            outcome: rec.error === undefined ? 'done' : 'failed',
            ...(rec.error === undefined ? {} : { error: rec.error }),
          }),
      ...(past
        ? {
            past: (rec.past ?? []).map((p, i, all) => {
              const f = at(phaseSites(p), 1)[0];
              return {
                phase: p.text,
                forMs: Math.round((all[i + 1]?.at ?? rec.phaseAt) - p.at),
                ...(f ? { at: f } : {}),
              };
            }),
          }
        : {}),
    };
  }

  /** Live units, the longest in its phase first. */
  #workRows(limit = 5): WorkRow[] {
    return this.lw.work
      .live()
      .sort((a, b) => a.phaseAt - b.phaseAt)
      .map((r) => this.#workRow(r, limit));
  }

  #whereWork(id: number): WhereData {
    const rec = this.lw.work.find(id);
    const chain: WhereData['chain'][number][] = [];
    for (let p = rec?.parent; p !== undefined && chain.length < 10; p = p.parent) {
      if (!p.internal) chain.push({ id: p.id, name: p.name, createdAt: createdAtOf(p, 3) });
    }
    return { ...(rec ? { work: this.#workRow(rec, 12, true) } : {}), chain };
  }

  #ended(limit: number): EndedRow[] {
    const now = this.lw.clock.now();
    return this.lw.tasks.terminated
      .list()
      .slice(0, limit)
      .map(({ rec, outcome }) => ({
        id: rec.id,
        name: rec.name,
        endedAgoMs: Math.round(now - (rec.endedAt ?? now)),
        ageMs: Math.round((rec.endedAt ?? now) - rec.startedAt),
        busyMs: Math.round(rec.busyMs * 10) / 10,
        outcome,
        createdAt: createdAtOf(rec),
      }));
  }

  #where(id: number): WhereData {
    const recs = this.lw.tasks.pending();
    const rec = recs.find((r) => r.id === id);
    const endedRow = rec ? undefined : this.#ended(100).find((e) => e.id === id);
    const chain: WhereData['chain'][number][] = [];
    const start = rec ?? this.lw.tasks.terminated.list().find((e) => e.rec.id === id)?.rec;
    for (let p = start?.parent; p !== undefined && chain.length < 10; p = p.parent) {
      if (!p.internal) chain.push({ id: p.id, name: p.name, createdAt: createdAtOf(p, 3) });
    }
    return {
      ...(rec ? { task: this.#row(rec, this.lw.clock.now(), awaitersOf(recs), 12) } : {}),
      ...(endedRow ? { ended: endedRow } : {}),
      chain,
    };
  }

  #top(): TopData {
    const elu = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(elu, this.#prevElu).utilization;
    this.#prevElu = elu;
    const now = this.lw.clock.now();
    const slow: SlowRow[] = (this.lw.slow?.recent() ?? []).map((s) => ({
      agoMs: Math.round(now - s.atMs),
      durationMs: Math.round(s.durationMs),
      ...(s.functionName === undefined ? {} : { functionName: s.functionName }),
      ...(s.location === undefined ? {} : { location: s.location }),
      ...(s.task === undefined ? {} : { task: s.task }),
    }));
    // The busiest first, and frames resolved only for those shown.
    const recs = this.lw.tasks.pending();
    const awaiters = awaitersOf(recs);
    const tasks = recs
      .sort((a, b) => b.busyMs - a.busyMs || a.id - b.id)
      .slice(0, TOP_TASKS)
      .map((r) => this.#row(r, now, awaiters, 3));
    return {
      info: this.info(),
      utilization: Math.round(utilization * 1000) / 1000,
      slow,
      tasks,
      ended: this.#ended(20),
      work: this.#workRows(3).slice(0, TOP_TASKS),
    };
  }
}

function sameFrame(a: Frame, b: Frame): boolean {
  return a.file === b.file && a.line === b.line && a.column === b.column;
}
