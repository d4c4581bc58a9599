/**
 * The last tasks that ended (aiomonitor's `ps-terminated`): how each ended — resolved, rejected with
 * what, aborted by whom. A promise hook cannot see whether a promise resolved or rejected, and asking V8
 * (promise-state.ts, bench/micro/claims.bench.ts) costs µs, too much for every task: the promise is kept and asked only when the
 * history is read. Awaited tasks are held strongly (their value would be kept by the awaiter anyway;
 * never-awaited and destroyed-pending reports cannot concern them), the last {@link STRONG} only; a task
 * nobody awaited is held weakly, so keeping history never delays a never-awaited report.
 */
import { promiseState } from './promise-state.js';
import { abortOriginOf } from './abort-chain.js';
import type { PromiseRecord } from '../model/task.js';
import type { TerminatedOutcome } from '../model/report.js';

/** Ended tasks remembered. */
export const HISTORY = 100;
/** Of those, held strongly (their outcome is certain to be known). */
const STRONG = 32;

interface Ended {
  readonly rec: PromiseRecord;
  strong: Promise<unknown> | undefined;
  readonly weak: WeakRef<Promise<unknown>>;
}

/** Reads a settled promise's outcome without touching it (no `.then`: that would mark it handled). */
export function outcomeOf(promise: Promise<unknown> | undefined): TerminatedOutcome {
  if (promise === undefined) return { state: 'unknown' };
  const st = promiseState(promise);
  // A history entry is a task that ended: a pending one here would be a bug in the hooks, not a state to show.
  if (st.state === 'pending') return { state: 'unknown' };
  if (st.state === 'resolved') return st;
  const origin = abortOriginOf(st.reason);
  return { state: 'rejected', error: st.error, ...(origin ? { abortedBy: origin } : {}) };
}

export class TerminatedTasks {
  readonly #ring: Ended[] = [];
  /** The entries holding their promise strongly, oldest first. */
  readonly #strong: Ended[] = [];

  add(rec: PromiseRecord, promise: Promise<unknown>): void {
    const e: Ended = { rec, strong: undefined, weak: new WeakRef(promise) };
    if (rec.observed) {
      e.strong = promise;
      this.#strong.push(e);
      if (this.#strong.length > STRONG) this.#strong.shift()!.strong = undefined;
    }
    this.#ring.push(e);
    if (this.#ring.length > HISTORY) {
      const old = this.#ring.shift()!;
      if (old.strong) {
        old.strong = undefined;
        this.#strong.splice(this.#strong.indexOf(old), 1);
      }
    }
  }

  /** Newest first. */
  list(): { rec: PromiseRecord; outcome: TerminatedOutcome }[] {
    return [...this.#ring].reverse().map((e) => {
      const p = e.strong ?? e.weak.deref();
      let outcome = p === undefined ? ({ state: 'unknown' } as TerminatedOutcome) : outcomeOf(p);
      // A spawned task's own abort() is the first cause; a signal's origin the next best.
      if (e.rec.abortedBy !== undefined) outcome = { ...outcome, abortedBy: e.rec.abortedBy };
      return { rec: e.rec, outcome };
    });
  }

  clear(): void {
    this.#ring.length = 0;
    this.#strong.length = 0;
  }
}
