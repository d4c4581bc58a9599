/** `monitorTasks`: the article's `monitor_tasks()` coroutine, as an unref'd timer. */
import type { Report } from '../model/report.js';
import { buildTaskDump, type DumpOptions } from './dump.js';

export interface MonitorTasksOptions extends DumpOptions {
  /** How often to dump, ms. */
  readonly intervalMs: number;
}

export function startTaskMonitor(opts: MonitorTasksOptions, emit: (r: Report) => void): { stop(): void } {
  const timer = setInterval(() => emit(buildTaskDump(opts)), opts.intervalMs);
  // Watching must not keep a finished program alive.
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
