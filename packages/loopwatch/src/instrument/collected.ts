/**
 * Reports for task promises the garbage collector took: still pending (asyncio's "Task was destroyed
 * but it is pending!", a lost wake-up) or never awaited ("coroutine ... was never awaited").
 */
import type { Report } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import type { PromiseRecord } from '../model/task.js';
import { taskRef } from '../model/task.js';
import { createdAtOf, waitingAtOf } from '../model/describe.js';
import { isBuiltinSite, isUserFile } from '../model/frames.js';

/** Builds the report for a collected record, or nothing when the record is unremarkable. */
export function collectedReport(rec: PromiseRecord): Report | undefined {
  if (!rec.isTask || rec.internal) return undefined;
  // Most collected tasks settled and were awaited: decide that before any frame is resolved.
  if (!rec.pending && (rec.observed || !isDroppedByUser(rec))) return undefined;
  const createdAt = createdAtOf(rec);
  if (rec.pending) {
    const waitingAt = waitingAtOf(rec);
    const where = waitingAt[0] ?? createdAt[0];
    return {
      kind: 'task-destroyed-pending',
      message: `Task ${rec.name} was destroyed but it is pending: it awaited something nobody can settle any more`,
      time: Date.now(),
      task: taskRef(rec),
      ...(where ? { location: formatLocation(where), functionName: where.functionName } : {}),
      createdAt,
      stack: waitingAt,
    };
  }
  const site = createdAt[0];
  if (!site) return undefined;
  return {
    kind: 'never-awaited',
    message: `Promise from ${rec.name}() was never awaited, chained or registered as a task`,
    time: Date.now(),
    task: taskRef(rec),
    location: formatLocation(site),
    functionName: site.functionName,
    createdAt,
  };
}

/**
 * Only calls made directly by user code count: a promise dropped by node (an `EventEmitter`
 * listener, a timer callback returning a promise) or by `Array#forEach` is not the caller's
 * statement, and a call at module top level is the entry-point idiom (`void main()`).
 */
function isDroppedByUser(rec: PromiseRecord): boolean {
  const caller = rec.sites[1];
  if (caller === undefined || isBuiltinSite(caller)) return false;
  if (!isUserFile(caller.getFileName())) return false;
  return !caller.isToplevel() || caller.getFunctionName() !== null;
}
