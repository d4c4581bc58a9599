/**
 * Reports for task promises the garbage collector took: still pending (asyncio's "Task was destroyed
 * but it is pending!", a lost wake-up) or never awaited ("coroutine ... was never awaited").
 */
import type { Report } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import type { PromiseRecord } from '../model/task.js';
import { taskRef } from '../model/task.js';
import { createdAtOf, waitingAtOf } from './describe.js';
import { isBuiltinSite } from '../model/call-sites.js';
import { isLibraryFile } from '../model/paths.js';
import { isUserFile, siteToFrame } from '../source/frames.js';
import { valueUseAt } from '../source/call-site-source.js';

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
    time: Date.now(),
    task: taskRef(rec),
    location: formatLocation(site),
    functionName: site.functionName,
    createdAt,
  };
}

/**
 * The rules, in order (README "never-awaited: the rules"): only a promise that nobody awaited, chained
 * or returned is considered, and it is reported at the user's call site unless
 *  - the call was made by node or a builtin (an async listener called by `emit`, an async callback
 *    called by `forEach`), or by a library: that is not a line the user wrote;
 *  - it is at module top level (the entry-point idiom `main();`, ESM and CommonJS alike);
 *  - it is marked `void f()` (the ecosystem's marker for an intended fire-and-forget);
 *  - it is handed on: `return f()` or an arrow's expression body `() => f()`. What the receiver does
 *    with it is the receiver's contract, whoever that is (an EventEmitter, a timer, `forEach`).
 */
function isDroppedByUser(rec: PromiseRecord): boolean {
  const caller = rec.sites[1];
  if (caller === undefined || isBuiltinSite(caller)) return false;
  const file = caller.getFileName();
  if (!isUserFile(file) || isLibraryFile(file)) return false;
  if (isModuleTopLevel(caller)) return false;
  const use = valueUseAt(siteToFrame(caller));
  return use !== 'void' && use !== 'returned';
}

/** Module code (ESM or the CommonJS wrapper) has no name and encloses from 1:1. */
function isModuleTopLevel(site: NodeJS.CallSite): boolean {
  if (site.getFunctionName() !== null) return false;
  const s = site as NodeJS.CallSite & {
    getEnclosingLineNumber?(): number | null;
    getEnclosingColumnNumber?(): number | null;
  };
  return s.getEnclosingLineNumber?.() === 1 && s.getEnclosingColumnNumber?.() === 1;
}
