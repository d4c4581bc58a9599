/**
 * Turns task records into report fields: where a task was created, where it waits, who its parent is.
 * All formatting (and source-map lookups) happens here, at report time only.
 */
import type { Frame, TaskSnapshot } from '../model/report.js';
import type { PromiseRecord } from '../model/task.js';
import { userFrames } from '../source/frames.js';
import { lockWaitOf } from './locks.js';

/** Frames where the task was started: the call site, not the async function's own first line. */
export function createdAtOf(rec: PromiseRecord, limit = 5): Frame[] {
  const sites = rec.isTask && !rec.spawned ? rec.sites.slice(1) : rec.sites;
  return userFrames(sites, limit);
}

/** Where the task is defined (its function's first line), for async-function tasks. */
export function definedAtOf(rec: PromiseRecord): Frame | undefined {
  return rec.isTask ? userFrames(rec.sites.slice(0, 1), 1)[0] : undefined;
}

/** Who awaits whom among pending tasks: awaited task → the task awaiting it. */
export type Awaiters = ReadonlyMap<PromiseRecord, PromiseRecord>;

export function awaitersOf(tasks: Iterable<PromiseRecord>): Awaiters {
  const m = new Map<PromiseRecord, PromiseRecord>();
  for (const t of tasks) if (t.waitingOn?.isTask && !m.has(t.waitingOn)) m.set(t.waitingOn, t);
  return m;
}

/**
 * Where the task waits now: the `await` line of the suspended function, then the `await` lines of
 * the tasks awaiting it, innermost first (asyncio's `print_stack`). When the await site is unknown
 * (a task that awaited before tracking began), the creation frames of what it awaits.
 */
export function waitingAtOf(rec: PromiseRecord, limit = 5, awaiters?: Awaiters): Frame[] {
  const out: Frame[] = [];
  const seen = new Set<PromiseRecord>();
  for (
    let r: PromiseRecord | undefined = rec;
    r !== undefined && out.length < limit && !seen.has(r);
    r = awaiters?.get(r)
  ) {
    seen.add(r);
    if (r.awaitSite !== undefined) {
      const f = userFrames([r.awaitSite], 1)[0];
      if (f) out.push(f);
    } else if (r === rec && r.waitingOn !== undefined) {
      const on = r.waitingOn;
      // Waiting on another call: its call site (in this task) matters, not that function's first line.
      return userFrames(on.isTask && !on.spawned ? on.sites.slice(1) : on.sites, limit);
    } else break;
  }
  return out;
}

export function snapshotOf(rec: PromiseRecord, now: number, limit = 5, awaiters?: Awaiters): TaskSnapshot {
  let parent = rec.parent;
  while (parent !== undefined && (parent.internal || !parent.pending)) parent = parent.parent;
  const on = rec.waitingOn;
  // Waiting for a lock (`lockWaiting`): an edge to the task holding it, as awaiting that task would be.
  const lock = on === undefined || !on.isTask ? lockWaitOf(rec) : undefined;
  const holder = lock?.holder !== undefined && !lock.holder.internal ? lock.holder : undefined;
  return {
    id: rec.id,
    name: rec.name,
    parentId: parent?.id ?? null,
    ageMs: Math.round(now - rec.startedAt),
    createdAt: createdAtOf(rec, limit),
    waitingAt: waitingAtOf(rec, limit, awaiters),
    ...(on !== undefined && on.isTask && !on.internal && on.pending ? { awaitsId: on.id } : {}),
    ...(holder !== undefined ? { awaitsId: holder.id } : {}),
    ...(lock !== undefined ? { waitsForLock: lock.name } : {}),
  };
}

/**
 * Where a promise handed to a work unit's phase waits now: down the await graph to what it waits on
 * at the bottom, then the `await` lines back up, innermost first; a plain promise handed in shows
 * where it was made. Empty once it settled (the phase's own line then says it all).
 */
export function awaitedAtOf(rec: PromiseRecord | undefined, limit = 5): Frame[] {
  const chain: PromiseRecord[] = [];
  for (let r = rec; r !== undefined && r.pending && chain.length < 16 && !chain.includes(r); r = r.waitingOn)
    chain.push(r);
  const out: Frame[] = [];
  for (let i = chain.length - 1; i >= 0 && out.length < limit; i--) {
    const r = chain[i]!;
    if (r.awaitSite !== undefined) {
      const f = userFrames([r.awaitSite], 1)[0];
      if (f) out.push(f);
    } else if (chain.length === 1 && !r.isTask) {
      // The handed promise is a plain one: where it was made. (Awaited by a task, the await says it.)
      out.push(...userFrames(r.sites, 1));
    }
  }
  return out;
}
