/**
 * Task tracking on `v8.promiseHooks` (async_hooks costs ~4× more). Every promise created without a
 * parent gets one raw stack capture of six frames (that is how an async function
 * call is told from a `new Promise`, and where it was created); chained promises (`await`, `.then`)
 * get none, only a couple of symbol-property writes. Only tasks are put in a FinalizationRegistry.
 *
 * "Current task": inside a promise reaction it is the task that registered the reaction; during the
 * synchronous start of an async call it is that call (a small stack, popped once somebody chains the
 * call's promise, which can only happen after its synchronous part ended).
 */
import { promiseHooks } from 'node:v8';
import { performance } from 'node:perf_hooks';
import { PromiseRecord } from '../model/task.js';
import { CAPTURE_LIMIT, captureSites, isBuiltinSite, isInternalFile } from '../model/frames.js';

/** `performance` from perf_hooks: the global one is a lazy accessor that runs a check on every read. */
const now = (): number => performance.now();

const REC = Symbol('loopwatch.record');
const VIA = Symbol('loopwatch.via');
const OWNER = Symbol('loopwatch.owner');
/** Marks the promise of an `await` (its reaction resumes the task). */
const AWAIT = Symbol('loopwatch.await');

type Tagged = Promise<unknown> & { [REC]?: PromiseRecord; [VIA]?: PromiseRecord; [OWNER]?: PromiseRecord; [AWAIT]?: boolean };

export interface TrackerEvents {
  /** A user task's promise was collected; the record says whether it was still pending / never observed. */
  onCollected?(record: PromiseRecord): void;
  /** A promise reaction ran longer than `slowMs` (only when set). */
  onSlowReaction?(task: PromiseRecord | undefined, startMs: number, durationMs: number): void;
  slowMs?: number;
}

let nextId = 1;
let stop: (() => void) | undefined;
let events: TrackerEvents = {};
/** User tasks still pending, by id (records only: promises stay collectable). */
const pending = new Map<number, PromiseRecord>();
/** Async calls whose synchronous part is still running, innermost last. */
const syncStack: PromiseRecord[] = [];
let reactionTask: PromiseRecord | undefined;
let reactionStart = 0;
const registry = new FinalizationRegistry<PromiseRecord>((rec) => {
  pending.delete(rec.id);
  events.onCollected?.(rec);
});

/**
 * With another promise hook installed (AsyncLocalStorage, `async_hooks.createHook`, the node:test
 * runner), node calls every hook through its own dispatcher: one extra frame above the program's.
 */
const HOOK_DISPATCH = 'node:internal/promise_hooks';

/** Raw call sites of the code that made the promise, the hook dispatcher's frame dropped. */
function callerSites(limit: number): NodeJS.CallSite[] {
  const sites = captureSites(init, limit + 1);
  if (sites[0]?.getFileName() === HOOK_DISPATCH) sites.shift();
  else if (sites.length > limit) sites.length = limit;
  return sites;
}

/**
 * Whether the chaining that creates a promise now is an `await` (the awaiting async function's own
 * frame is on top) rather than a `.then()`/`Promise.all` (a builtin frame is on top); its site if so.
 */
function awaitSite(): NodeJS.CallSite | undefined {
  const top = callerSites(1)[0];
  return top === undefined || isBuiltinSite(top) ? undefined : top;
}

function init(promise: Promise<unknown>, parent: Promise<unknown> | undefined): void {
  const p = promise as Tagged;
  if (parent === undefined) {
    // One capture, raw call sites only: the top frame tells an async function's own frame from a
    // builtin (`new Promise`, `Promise.resolve`); the frames below say where it was created (and, for
    // a plain promise, where whoever awaits it waits). Names, paths and source maps: at report time.
    const sites = callerSites(CAPTURE_LIMIT);
    const top = sites[0];
    const file = top === undefined || top.isNative() ? null : top.getFileName();
    const isTask = file !== null && file !== undefined && file !== '';
    // A module's own evaluation (top-level await) is "defined" at 1:1 with no name: not a user task.
    const internal = !isTask || isInternalFile(file) || isModuleEvaluation(top!);
    const rec = new PromiseRecord(nextId++, sites, isTask, internal, now(), currentTask());
    p[REC] = rec;
    if (isTask) {
      syncStack.push(rec);
      if (!internal) {
        pending.set(rec.id, rec);
        registry.register(promise, rec);
      }
    }
    return;
  }
  const par = parent as Tagged;
  const pr = par[REC] ?? par[VIA];
  if (pr !== undefined) {
    pr.observed = true;
    p[VIA] = pr;
    // Chaining a call's promise means that call's synchronous part (and any after it) is over.
    const i = syncStack.lastIndexOf(pr);
    if (i >= 0) syncStack.length = i;
  }
  const cur = syncStack.length > 0 ? syncStack[syncStack.length - 1] : reactionTask;
  if (cur !== undefined) {
    if (pr !== cur) {
      const site = awaitSite();
      if (site !== undefined) {
        // `await` in the running async function: it suspends here, so its synchronous part is over
        // (a call made next by its caller is the caller's child, not this one's).
        cur.awaitSite = site;
        cur.waitingOn = pr;
        p[AWAIT] = true;
        if (syncStack.length > 0 && syncStack[syncStack.length - 1] === cur) syncStack.pop();
      }
    }
    p[OWNER] = cur;
  }
}

function isModuleEvaluation(site: NodeJS.CallSite): boolean {
  return site.getFunctionName() === null && site.getLineNumber() === 1 && site.getColumnNumber() === 1;
}

/** The synchronous part of a call is over (its caller has the promise back). */
export function endSyncPart(promise: Promise<unknown>): void {
  const rec = (promise as Tagged)[REC];
  const i = rec === undefined ? -1 : syncStack.lastIndexOf(rec);
  if (i >= 0) syncStack.length = i;
}

function before(promise: Promise<unknown>): void {
  // (`length = 0` is a builtin call even when there is nothing to drop.)
  if (syncStack.length !== 0) syncStack.length = 0;
  const p = promise as Tagged;
  const owner = p[OWNER];
  reactionTask = owner;
  // The task resumes after its `await`: it waits on nothing until it awaits again.
  if (owner !== undefined && p[AWAIT] === true) {
    owner.waitingOn = undefined;
    owner.awaitSite = undefined;
  }
  if (events.slowMs !== undefined) reactionStart = now();
}

function after(_promise: Promise<unknown>): void {
  if (events.slowMs !== undefined) {
    const dur = now() - reactionStart;
    if (dur >= events.slowMs) events.onSlowReaction?.(reactionTask, reactionStart, dur);
  }
  if (syncStack.length !== 0) syncStack.length = 0;
  reactionTask = undefined;
}

function settled(promise: Promise<unknown>): void {
  const rec = (promise as Tagged)[REC];
  if (rec === undefined) return;
  rec.pending = false;
  if (rec.isTask) {
    pending.delete(rec.id);
    if (syncStack[syncStack.length - 1] === rec) syncStack.pop();
  }
}

/** Starts tracking. Idempotent; `opts` replaces the previous callbacks. */
export function startTaskTracking(opts: TrackerEvents = {}): void {
  events = opts;
  if (stop) return;
  stop = promiseHooks.createHook({ init, before, after, settled }) as () => void;
}

export function stopTaskTracking(): void {
  stop?.();
  stop = undefined;
  events = {};
  pending.clear();
  syncStack.length = 0;
  reactionTask = undefined;
}

export function isTracking(): boolean {
  return stop !== undefined;
}

/** Updates the slow-reaction threshold without restarting the hooks. */
export function setSlowReaction(slowMs: number | undefined, cb?: TrackerEvents['onSlowReaction']): void {
  events = { ...events, slowMs, onSlowReaction: cb };
}

/** The task running right now, if any. */
export function currentTask(): PromiseRecord | undefined {
  for (let i = syncStack.length - 1; i >= 0; i--) {
    const r = syncStack[i];
    if (r !== undefined && !r.internal) return r;
  }
  return reactionTask;
}

/** User tasks still pending, oldest first. */
export function pendingTasks(): PromiseRecord[] {
  return [...pending.values()];
}

/** The record of a promise (its own, or the one it was chained from). */
export function recordOf(promise: unknown): PromiseRecord | undefined {
  if (typeof promise !== 'object' || promise === null) return undefined;
  const p = promise as Tagged;
  return p[REC] ?? p[VIA];
}

/** Marks a promise as a named task (used by `spawn`). */
export function nameTask(promise: Promise<unknown>, name: string): PromiseRecord | undefined {
  const rec = (promise as Tagged)[REC];
  if (rec === undefined) return undefined;
  rec.name = name;
  rec.spawned = true;
  rec.observed = true;
  rec.internal = false;
  if (!rec.isTask) {
    rec.isTask = true;
    if (rec.pending) {
      pending.set(rec.id, rec);
      registry.register(promise, rec);
    }
  }
  return rec;
}
