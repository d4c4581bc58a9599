/** `monitorTasks`: the article's `monitor_tasks()` coroutine, as an unref'd timer. */
import type { Report } from '../model/report.js';
import { buildTaskDump, type DumpOptions } from './dump.js';
import type { TaskTracker } from './tasks.js';

export interface MonitorTasksOptions extends DumpOptions {
  /** How often to dump, ms. */
  readonly intervalMs: number;
}

export function startTaskMonitor(
  tracker: TaskTracker,
  opts: MonitorTasksOptions,
  emit: (r: Report) => void,
): { stop(): void } {
  // Unref'd (the clock's timers are): watching must not keep a finished program alive.
  const timer = tracker.clock.every(opts.intervalMs, () => emit(buildTaskDump(tracker, opts)));
  return { stop: () => timer.cancel() };
}
