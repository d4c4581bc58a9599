/**
 * Turns task records into report fields: where a task was created, where it waits, who its parent is.
 * All formatting (and source-map lookups) happens here, at report time only.
 */
import type { Frame, TaskSnapshot } from './report.js';
import type { PromiseRecord } from './task.js';
import { userFrames } from './frames.js';

/** Frames where the task was started: the call site, not the async function's own first line. */
export function createdAtOf(rec: PromiseRecord, limit = 5): Frame[] {
  const sites = rec.isTask && !rec.spawned ? rec.sites.slice(1) : rec.sites;
  return userFrames(sites, limit);
}

/** Where the task is defined (its function's first line), for async-function tasks. */
export function definedAtOf(rec: PromiseRecord): Frame | undefined {
  return rec.isTask ? userFrames(rec.sites.slice(0, 1), 1)[0] : undefined;
}

/**
 * Where the task waits now: the creation frames of the promise it awaited last. For
 * `await sleep(10)` that is `sleep`'s `new Promise` and, below it, the awaiting line.
 */
export function waitingAtOf(rec: PromiseRecord, limit = 5): Frame[] {
  const on = rec.waitingOn;
  if (on === undefined) return [];
  // Waiting on another call: its call site (in this task) matters, not that function's first line.
  return userFrames(on.isTask && !on.spawned ? on.sites.slice(1) : on.sites, limit);
}

export function snapshotOf(rec: PromiseRecord, now: number, limit = 5): TaskSnapshot {
  let parent = rec.parent;
  while (parent !== undefined && (parent.internal || !parent.pending)) parent = parent.parent;
  return {
    id: rec.id,
    name: rec.name,
    parentId: parent?.id ?? null,
    ageMs: Math.round(now - rec.startedAt),
    createdAt: createdAtOf(rec, limit),
    waitingAt: waitingAtOf(rec, limit),
  };
}
