/**
 * The one global the stall watchdog reads while the main thread is paused (via
 * `Debugger.evaluateOnCallFrame`): a function returning the task that is running right now.
 * Task tracking installs it; without tracking it is absent and stalls report no task.
 */
import type { TaskRef } from '../model/report.js';

export const CURRENT_TASK_GLOBAL = '__loopwatchCurrentTask';

/** What the watchdog gets back: the task plus where it was created, already formatted (cheap to JSON). */
export interface CurrentTaskInfo extends TaskRef {
  /** `file:line:col` frames where the task was created, innermost first. */
  readonly createdAt: readonly string[];
}

export type CurrentTaskProbe = () => CurrentTaskInfo | undefined;

export function installCurrentTaskProbe(probe: CurrentTaskProbe): void {
  (globalThis as Record<string, unknown>)[CURRENT_TASK_GLOBAL] = probe;
}

export function uninstallCurrentTaskProbe(): void {
  delete (globalThis as Record<string, unknown>)[CURRENT_TASK_GLOBAL];
}
