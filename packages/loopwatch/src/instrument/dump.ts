/** `task-dump`: every pending task, the Node twin of `for t in all_tasks(): t.print_stack(limit=5)`. */
import { performance } from 'node:perf_hooks';
import type { Report } from '../model/report.js';
import { snapshotOf } from '../model/describe.js';
import { isTracking, pendingTasks } from './tasks.js';

export interface DumpOptions {
  /** Frames per stack, like `print_stack(limit=…)`. Default 5. */
  readonly limit?: number;
}

export function buildTaskDump(opts: DumpOptions = {}): Report {
  const now = performance.now();
  const tasks = pendingTasks().map((r) => snapshotOf(r, now, opts.limit ?? 5));
  const message = isTracking()
    ? `${tasks.length} pending task${tasks.length === 1 ? '' : 's'}`
    : 'task tracking is off (enable debug mode to see async function tasks)';
  return { kind: 'task-dump', message, time: Date.now(), tasks };
}
