/**
 * `task-dump`: every pending task, the Node twin of `for t in all_tasks(): t.print_stack(limit=5)`.
 * At scale, tasks with the same name waiting at the same lines are folded into one group (Go's
 * goroutine profile does the same); `all: true` lists every task. Await cycles (tasks awaiting each
 * other: a deadlock) are found on the await graph, as Python 3.14's `pstree` does.
 */
import type { TaskDumpReport, TaskGroup, TaskRef, TaskSnapshot } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import { awaitersOf, snapshotOf } from './describe.js';
import type { TaskTracker } from './tasks.js';

export interface DumpOptions {
  /** Frames per stack, like `print_stack(limit=…)`. Default 5. */
  readonly limit?: number;
  /** List every task instead of folding identical ones into groups. Default false. */
  readonly all?: boolean;
}

/** Identical tasks (same name, same waiting stack) fold into one group from this many on. */
const FOLD_FROM = 2;

function groupKey(t: TaskSnapshot): string {
  return `${t.name}\n${t.waitingAt.map(formatLocation).join('\n')}`;
}

/** Cycles in the await graph (each task awaits at most one task), each listed once. */
export function findCycles(tasks: readonly TaskSnapshot[]): TaskRef[][] {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const done = new Set<number>();
  const cycles: TaskRef[][] = [];
  for (const start of tasks) {
    const path: TaskSnapshot[] = [];
    const onPath = new Map<number, number>();
    for (
      let t: TaskSnapshot | undefined = start;
      t !== undefined && !done.has(t.id);
      t = t.awaitsId === undefined ? undefined : byId.get(t.awaitsId)
    ) {
      const at = onPath.get(t.id);
      if (at !== undefined) {
        const cyc = path.slice(at).map((x) => ({ id: x.id, name: x.name }));
        cycles.push([...cyc, cyc[0]!]);
        break;
      }
      onPath.set(t.id, path.length);
      path.push(t);
    }
    for (const t of path) done.add(t.id);
  }
  return cycles;
}

export function buildTaskDump(tracker: TaskTracker, opts: DumpOptions = {}): TaskDumpReport {
  const now = tracker.clock.now();
  const time = tracker.clock.wall();
  if (!tracker.tracking) {
    return { kind: 'task-dump', tracking: false, count: 0, time, tasks: [] };
  }
  const records = tracker.pending();
  const awaiters = awaitersOf(records);
  const all = records.map((r) => snapshotOf(r, now, opts.limit ?? 5, awaiters));
  const cycles = findCycles(all);
  let tasks = all;
  const groups: TaskGroup[] = [];
  if (!opts.all) {
    // Tasks in a cycle are always listed one by one: they are the point of the dump.
    const inCycle = new Set(cycles.flat().map((t) => t.id));
    const byKey = new Map<string, TaskSnapshot[]>();
    for (const t of all) {
      if (inCycle.has(t.id)) continue;
      const k = groupKey(t);
      const list = byKey.get(k);
      if (list) list.push(t);
      else byKey.set(k, [t]);
    }
    const folded = new Set<number>();
    for (const list of byKey.values()) {
      if (list.length < FOLD_FROM) continue;
      const first = list[0]!;
      groups.push({
        name: first.name,
        count: list.length,
        oldestMs: Math.max(...list.map((t) => t.ageMs)),
        waitingAt: first.waitingAt,
        ids: list.map((t) => t.id),
      });
      for (const t of list) folded.add(t.id);
    }
    groups.sort((a, b) => b.count - a.count);
    tasks = all.filter((t) => !folded.has(t.id));
  }
  return {
    kind: 'task-dump',
    tracking: true,
    count: all.length,
    time,
    tasks,
    ...(groups.length > 0 ? { groups } : {}),
    ...(cycles.length > 0 ? { cycles } : {}),
  };
}
