/** Named tasks: `spawn(name, fn)` is the `asyncio.create_task(coro, name=…)` twin, with cancellation. */
import { threadId } from 'node:worker_threads';
import type { TaskTracker } from './tasks.js';
import { captureSites, userFrames } from '../source/frames.js';
import { formatLocation } from '../model/report.js';
import { errorText } from '../model/error-text.js';
import { assertOwnThread } from './thread-guard.js';

/** A running named task. */
export interface TaskHandle<T> {
  readonly name: string;
  /** Task id in dumps and reports (0 when task tracking is off). */
  readonly id: number;
  /** Settles with the task; awaiting it counts as handling its errors. */
  readonly promise: Promise<T>;
  readonly signal: AbortSignal;
  /** Asks the task to stop (the signal aborts); the task decides how. */
  abort(reason?: unknown): void;
}

/**
 * Starts `fn` as a named task. It shows in task dumps under `name`, with where it was spawned and
 * where it waits; `abort()` aborts the signal it receives.
 */
export function spawnTask<T>(
  tracker: TaskTracker,
  name: string,
  fn: (signal: AbortSignal) => Promise<T>,
): TaskHandle<T> {
  const owner = threadId;
  const controller = new AbortController();
  const promise = fn(controller.signal);
  const rec = tracker.nameTask(promise, name);
  tracker.endSyncPart(promise);
  const abort = (reason?: unknown): void => {
    assertOwnThread(owner, `task ${name}`);
    // Who aborted it, for the terminated-task history (aiomonitor's "who cancelled it").
    if (rec && rec.pending && rec.abortedBy === undefined) {
      const at = userFrames(captureSites(abort, 4), 3).map(formatLocation);
      rec.abortedBy = { reason: reason === undefined ? 'aborted' : errorText(reason), at };
    }
    controller.abort(reason);
  };
  return { name, id: rec?.id ?? 0, promise, signal: controller.signal, abort };
}
