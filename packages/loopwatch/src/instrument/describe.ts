/**
 * Turns task records into report fields: where a task was created, where it waits, who its parent is.
 * All formatting (and source-map lookups) happens here, at report time only.
 */
import type { Frame, TaskSnapshot } from '../model/report.js';
import type { PromiseRecord } from '../model/task.js';
import { userFrames } from '../source/frames.js';

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
  return {
    id: rec.id,
    name: rec.name,
    parentId: parent?.id ?? null,
    ageMs: Math.round(now - rec.startedAt),
    createdAt: createdAtOf(rec, limit),
    waitingAt: waitingAtOf(rec, limit, awaiters),
    ...(on !== undefined && on.isTask && !on.internal && on.pending ? { awaitsId: on.id } : {}),
  };
}
