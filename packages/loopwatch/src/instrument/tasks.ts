/**
 * Task tracking on `v8.promiseHooks` (async_hooks' hooks cost ~4-5× as much per promise: bench/micro/claims.bench.ts). Every promise
 * created without a parent gets one raw stack capture of six frames (that is how an async function
 * call is told from a `new Promise`, and where it was created); chained promises (`await`, `.then`)
 * get none, only a couple of symbol-property writes. Only tasks are put in a FinalizationRegistry.
 *
 * "Current task": inside a promise reaction it is the task that registered the reaction; during the
 * synchronous start of an async call it is that call (a small stack, popped once somebody chains the
 * call's promise, which can only happen after its synchronous part ended).
 *
 * Busy time (tokio-console's "Busy"): the time the reactions that resume a task ran, i.e. its own code
 * after each `await`. Its synchronous start runs inside its caller's reaction and counts there.
 *
 * All state lives on one {@link TaskTracker}; promise tags are symbols shared by every tracker.
 */
import { promiseHooks } from 'node:v8';
import { HOOK_DISPATCH, PromiseRecord } from '../model/task.js';
import { CAPTURE_LIMIT, captureRaw, captureSites, isInternalFile } from '../source/frames.js';
import { isBuiltinSite, isRawSites } from '../model/call-sites.js';
import { TerminatedTasks } from './terminated.js';
import { realClock, type Clock } from './clock.js';

const REC = Symbol('loopwatch.record');
const VIA = Symbol('loopwatch.via');
const OWNER = Symbol('loopwatch.owner');
/** Marks the promise of an `await` with the await's number (its reaction resumes the task). */
const AWAIT = Symbol('loopwatch.await');

type Tagged = Promise<unknown> & {
  [REC]?: PromiseRecord;
  [VIA]?: PromiseRecord;
  [OWNER]?: PromiseRecord;
  [AWAIT]?: number;
};

export interface TrackerEvents {
  /** A user task's promise was collected; the record says whether it was still pending / never observed. */
  onCollected?(record: PromiseRecord): void;
  /** A promise reaction ran longer than `slowMs` (only when set). */
  onSlowReaction?(task: PromiseRecord | undefined, startMs: number, durationMs: number): void;
  slowMs?: number;
}

/** Told of each user task's life as it happens (the recorder); every call is on the hot path. */
export interface TaskObserver {
  taskStarted(rec: PromiseRecord): void;
  taskNamed(rec: PromiseRecord): void;
  /** `rec` suspended at `site`, awaiting `on`. */
  taskAwaited(rec: PromiseRecord, site: NodeJS.CallSite, on: PromiseRecord | undefined): void;
  taskResumed(rec: PromiseRecord): void;
  taskEnded(rec: PromiseRecord): void;
}

function isModuleEvaluation(site: NodeJS.CallSite): boolean {
  return site.getFunctionName() === null && site.getLineNumber() === 1 && site.getColumnNumber() === 1;
}

/** The record of a promise (its own, or the one it was chained from). */
export function recordOf(promise: unknown): PromiseRecord | undefined {
  if (typeof promise !== 'object' || promise === null) return undefined;
  const p = promise as Tagged;
  return p[REC] ?? p[VIA];
}

export class TaskTracker {
  readonly terminated = new TerminatedTasks();
  observer: TaskObserver | undefined = undefined;
  #nextId = 1;
  #stop: (() => void) | undefined;
  #events: TrackerEvents = {};
  /** User tasks still pending, by id (records only: promises stay collectable). */
  readonly #pending = new Map<number, PromiseRecord>();
  /** Async calls whose synchronous part is still running, innermost last. */
  readonly #syncStack: PromiseRecord[] = [];
  #reactionTask: PromiseRecord | undefined;
  /** The running reaction resumes its task's own code after an `await` (not a `.then` callback). */
  #resumed = false;
  #reactionStart = 0;
  #awaits = 0;
  readonly #registry = new FinalizationRegistry<PromiseRecord>((rec) => {
    this.#pending.delete(rec.id);
    this.#events.onCollected?.(rec);
  });

  constructor(readonly clock: Clock = realClock) {}

  /** Starts tracking. Idempotent; `events` replaces the previous callbacks. */
  start(events: TrackerEvents = {}): void {
    this.#events = events;
    if (this.#stop) return;
    this.#stop = promiseHooks.createHook({
      init: this.#init,
      before: this.#before,
      after: this.#after,
      settled: this.#settled,
    }) as () => void;
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
    this.#events = {};
    this.#pending.clear();
    this.#syncStack.length = 0;
    this.#reactionTask = undefined;
  }

  get tracking(): boolean {
    return this.#stop !== undefined;
  }

  /** Updates the slow-reaction threshold without restarting the hooks. */
  setSlowReaction(slowMs: number | undefined, cb?: TrackerEvents['onSlowReaction']): void {
    this.#events = { ...this.#events, slowMs, onSlowReaction: cb };
  }

  /** The task running right now, if any. */
  current(): PromiseRecord | undefined {
    const stack = this.#syncStack;
    for (let i = stack.length - 1; i >= 0; i--) {
      const r = stack[i];
      if (r !== undefined && !r.internal) return r;
    }
    return this.#reactionTask;
  }

  /** User tasks still pending, oldest first. */
  pending(): PromiseRecord[] {
    return [...this.#pending.values()];
  }

  /** Marks a promise as a named task (used by `spawn`). */
  nameTask(promise: Promise<unknown>, name: string): PromiseRecord | undefined {
    const rec = (promise as Tagged)[REC];
    if (rec === undefined) return undefined;
    rec.name = name;
    rec.spawned = true;
    rec.observed = true;
    rec.internal = false;
    if (!rec.isTask) {
      rec.isTask = true;
      if (rec.pending) {
        this.#pending.set(rec.id, rec);
        this.#registry.register(promise, rec);
      }
    }
    this.observer?.taskNamed(rec);
    return rec;
  }

  /** The synchronous part of a call is over (its caller has the promise back). */
  endSyncPart(promise: Promise<unknown>): void {
    const rec = (promise as Tagged)[REC];
    const i = rec === undefined ? -1 : this.#syncStack.lastIndexOf(rec);
    if (i >= 0) this.#syncStack.length = i;
  }

  /** Raw call sites of the code that made the promise, the hook dispatcher's frame dropped. */
  #callerSites(limit: number): NodeJS.CallSite[] {
    const sites = captureSites(this.#init, limit + 1);
    if (sites[0]?.getFileName() === HOOK_DISPATCH) sites.shift();
    else if (sites.length > limit) sites.length = limit;
    return sites;
  }

  /**
   * Whether the chaining that creates a promise now is an `await` (the awaiting async function's own
   * frame is on top) rather than a `.then()`/`Promise.all` (a builtin frame is on top); its site if so.
   */
  #awaitSite(): NodeJS.CallSite | undefined {
    const top = this.#callerSites(1)[0];
    return top === undefined || isBuiltinSite(top) ? undefined : top;
  }

  readonly #init = (promise: Promise<unknown>, parent: Promise<unknown> | undefined): void => {
    const p = promise as Tagged;
    if (parent === undefined) {
      this.#initRoot(p);
      return;
    }
    const par = parent as Tagged;
    const pr = par[REC] ?? par[VIA];
    const stack = this.#syncStack;
    if (pr !== undefined) {
      pr.observed = true;
      p[VIA] = pr;
      // Chaining a call's promise means that call's synchronous part (and any after it) is over.
      const i = stack.lastIndexOf(pr);
      if (i >= 0) stack.length = i;
    }
    if (stack.length > 0) {
      const cur = stack[stack.length - 1]!;
      p[OWNER] = cur;
      if (pr === cur) return;
      // An async call's synchronous start: whether this is its `await` must be known now, since an
      // `await` ends that start (what its caller does next is the caller's), so look at the top frame.
      const site = this.#awaitSite();
      if (site === undefined) return;
      this.#suspend(cur, p, pr, site);
      stack.pop();
      return;
    }
    const cur = this.#reactionTask;
    if (cur === undefined) return;
    p[OWNER] = cur;
    // A `.then` callback is plain code: it cannot `await`. The task's own code, resumed after an
    // `await`, runs until its next `await` or its end, so the last promise it chains in this reaction
    // is that `await` (a `.then` before it is superseded by number), told apart without looking at the
    // stack; its line is captured raw and formatted only if a dump asks.
    if (!this.#resumed || pr === cur) return;
    if (this.observer !== undefined && !cur.internal) {
      // A recording writes the await's line now.
      const site = this.#awaitSite();
      if (site !== undefined) this.#suspend(cur, p, pr, site);
      return;
    }
    this.#suspend(cur, p, pr, captureRaw(this.#init, 2));
  };

  /** `cur` suspends at an `await` (site `at`) of `pr`, through promise `p`. */
  #suspend(cur: PromiseRecord, p: Tagged, pr: PromiseRecord | undefined, at: PromiseRecord['awaitAt']): void {
    const n = ++this.#awaits;
    cur.awaitSeq = n;
    cur.awaitAt = at;
    cur.waitingOn = pr;
    p[AWAIT] = n;
    if (!cur.internal && this.observer !== undefined && at !== undefined && !isRawSites(at))
      this.observer.taskAwaited(cur, at, pr);
  }

  #initRoot(p: Tagged): void {
    // One capture, raw call sites only: the top frame tells an async function's own frame from a
    // builtin (`new Promise`, `Promise.resolve`); the frames below say where it was created (and, for
    // a plain promise, where whoever awaits it waits). Names, paths and source maps: at report time.
    const sites = this.#callerSites(CAPTURE_LIMIT);
    const top = sites[0];
    const file = top === undefined || top.isNative() ? null : top.getFileName();
    const isTask = file !== null && file !== undefined && file !== '';
    // A module's own evaluation (top-level await) is "defined" at 1:1 with no name: not a user task.
    const internal = !isTask || isInternalFile(file) || isModuleEvaluation(top!);
    const rec = new PromiseRecord(this.#nextId++, sites, isTask, internal, this.clock.now(), this.current());
    p[REC] = rec;
    if (!isTask) return;
    this.#syncStack.push(rec);
    if (!internal) {
      this.#pending.set(rec.id, rec);
      this.#registry.register(p, rec);
      this.observer?.taskStarted(rec);
    }
  }

  readonly #before = (promise: Promise<unknown>): void => {
    // (`length = 0` is a builtin call even when there is nothing to drop.)
    if (this.#syncStack.length !== 0) this.#syncStack.length = 0;
    const p = promise as Tagged;
    const owner = p[OWNER];
    this.#reactionTask = owner;
    // The task resumes after its `await`: it waits on nothing until it awaits again.
    this.#resumed = owner !== undefined && p[AWAIT] !== undefined && p[AWAIT] === owner.awaitSeq;
    if (this.#resumed) {
      owner!.awaitSeq = 0;
      owner!.waitingOn = undefined;
      owner!.awaitAt = undefined;
      if (!owner!.internal) this.observer?.taskResumed(owner!);
    }
    this.#reactionStart = this.clock.now();
  };

  readonly #after = (_promise: Promise<unknown>): void => {
    const dur = this.clock.now() - this.#reactionStart;
    const task = this.#reactionTask;
    if (task !== undefined) task.busyMs += dur;
    const slowMs = this.#events.slowMs;
    if (slowMs !== undefined && dur >= slowMs) this.#events.onSlowReaction?.(task, this.#reactionStart, dur);
    if (this.#syncStack.length !== 0) this.#syncStack.length = 0;
    this.#reactionTask = undefined;
    this.#resumed = false;
  };

  readonly #settled = (promise: Promise<unknown>): void => {
    const rec = (promise as Tagged)[REC];
    if (rec === undefined) return;
    rec.pending = false;
    if (!rec.isTask) return;
    this.#pending.delete(rec.id);
    if (this.#syncStack[this.#syncStack.length - 1] === rec) this.#syncStack.pop();
    if (!rec.internal) {
      rec.endedAt = this.clock.now();
      this.terminated.add(rec, promise);
      this.observer?.taskEnded(rec);
    }
  };
}
