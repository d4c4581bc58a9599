/**
 * loopwatch: asyncio's debug mode, aiodebug and task dumps for any Node.js program.
 *
 * No code change: `node --import loopwatch/register app.js` with `LOOPWATCH=debug|production`.
 * From code: the functions below, with the same options.
 */
import type { TaskDumpReport } from './model/report.js';
import type { DumpOptions } from './instrument/dump.js';
import { startTaskMonitor, type MonitorTasksOptions } from './instrument/monitor.js';
import { spawnTask, type TaskHandle } from './instrument/spawn.js';
import { assertMainThread } from './instrument/thread-guard.js';
import { loopwatch, report } from './lifecycle.js';
import { textSink as textSinkLazy } from './sinks/text.js';

export type {
  Frame,
  Report,
  ReportKind,
  ReportOf,
  ReportLine,
  Sink,
  TaskRef,
  TaskSnapshot,
  LoopLagFigures,
  TaskDumpReport,
  UnhandledTaskErrorReport,
  TaskDestroyedPendingReport,
  NeverAwaitedReport,
  SlowCallbackReport,
  StallReport,
  LoopLagReport,
  ThreadAffinityReport,
  StartUpReport,
  SummaryReport,
} from './model/report.js';
export { reportMessage } from './sinks/words.js';
export { trackWork, NO_WORK, type WorkUnit } from './work.js';
export {
  lockWaiting,
  lockHeld,
  watchMutex,
  NO_CLAIM,
  type LockClaim,
  type MutexLike,
  type SemaphoreLike,
} from './locks.js';
export type { EnableOptions } from './lifecycle.js';
export { enableDebug, enableProduction, disable, activeMode } from './lifecycle.js';
export type { TaskHandle } from './instrument/spawn.js';
export { Loopwatch, type LoopwatchParts } from './loopwatch.js';
export { runInWorker, setWorkerPoolSize, closeWorkerPool } from './instrument/worker-pool.js';
export { ThreadAffinityError } from './instrument/thread-guard.js';
export {
  monitorLoopLagTo as monitorLoopLag,
  type LoopLagOptions,
  type LoopLagMonitor,
  type StatsDLike,
} from './loop-lag-outputs.js';
export {
  startStallWatchdog,
  type StallWatchdogOptions,
  type StallWatchdog,
  type StallEvent,
} from './instrument/watchdog.js';
export { optionsFromEnv, attachSettingOf, OptionsError, type LoopwatchOptions } from './options.js';
export type { AttachSetting } from './attach/protocol.js';
export { formatText } from './sinks/text.js';
export { formatJson } from './sinks/json.js';
export type { DumpOptions, MonitorTasksOptions };

/**
 * Every pending task (async function invocations still running and named tasks), as a tree with
 * where each was created and where it waits. Prints it (like `print_stack`) unless `print: false`.
 * Without debug mode only the message says tracking is off.
 */
export function dumpTasks(opts: DumpOptions & { readonly print?: boolean } = {}): TaskDumpReport {
  assertMainThread('dumpTasks');
  const r = loopwatch.dump(opts);
  if (opts.print !== false) report(r);
  return r;
}

/** Dumps the pending tasks every `intervalMs` (the article's `monitor_tasks`). */
export function monitorTasks(opts: MonitorTasksOptions): { stop(): void } {
  assertMainThread('monitorTasks');
  return startTaskMonitor(loopwatch.tasks, opts, report);
}

/**
 * Logs every turn of the loop longer than `thresholdMs` with where the time went (the
 * `aiodebug.log_slow_callbacks.enable(0.05)` twin). In debug mode promise reactions are also
 * attributed to their task.
 */
export function watchSlowCallbacks(opts: { readonly thresholdMs: number }): { stop(): void } {
  assertMainThread('watchSlowCallbacks');
  loopwatch.bus.sink ??= textSinkLazy();
  loopwatch.watchSlow(opts.thresholdMs);
  return { stop: () => loopwatch.unwatchSlow() };
}

/**
 * Starts `fn` as a named task (the `asyncio.create_task(coro, name=…)` twin). It shows in task dumps
 * under `name`, with where it was spawned and where it waits; `abort()` aborts the signal it receives.
 */
export function spawn<T>(name: string, fn: (signal: AbortSignal) => Promise<T>): TaskHandle<T> {
  return spawnTask(loopwatch.tasks, name, fn);
}

/**
 * Declares `fn` (a program's asynchronous start-up: opening databases, reading config) as start-up:
 * blocking calls made while it runs are not reported, as those of the first turn are not. Without
 * it, start-up is the first turn of the loop and module evaluation.
 */
export function startup<T>(fn: () => Promise<T>): Promise<T> {
  return loopwatch.startup(fn);
}
