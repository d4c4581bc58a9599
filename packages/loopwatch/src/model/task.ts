/**
 * What task tracking remembers per promise. Records hold call sites, never the promise itself, so a
 * promise can still be collected (that is how `task-destroyed-pending` and `never-awaited` are seen).
 */
import type { TaskRef } from './report.js';

export interface PromiseRecord {
  readonly id: number;
  /** Call sites at creation: for an async function, [the function itself, its caller, ...]. */
  readonly sites: NodeJS.CallSite[];
  /** An async function invocation (or a spawned task), not a plain `new Promise`. */
  isTask: boolean;
  /** A task of node's own or loopwatch's: tracked for attribution, never reported. */
  internal: boolean;
  name: string;
  /** Named by `spawn()`. */
  spawned: boolean;
  /** `performance.now()` at creation. */
  readonly startedAt: number;
  readonly parent: PromiseRecord | undefined;
  pending: boolean;
  /** Somebody awaited it, chained it, returned it, or registered it as a task. */
  observed: boolean;
  /** The promise this task awaited last (its creation frames say where the task waits). */
  waitingOn: PromiseRecord | undefined;
  /** Promise id counter when its current synchronous run first chained something (0: not yet). */
  waitSince: number;
}

export function taskRef(r: PromiseRecord): TaskRef {
  return { id: r.id, name: r.name };
}
