/**
 * Lock-like primitives (mutexes, semaphores, read-write locks) tell loopwatch who holds them and who
 * waits, so that a deadlock through locks shows in `pstree` as an await cycle does. The protocol lives
 * on a process-wide symbol, as `trackWork`'s does: every copy of loopwatch in a process reaches the one
 * that is enabled.
 */

/** Where the enabled loopwatch (debug mode) puts its lock table; absent otherwise. */
export const LOCK_TRACKER = Symbol.for('loopwatch.locks.v1');

/** One task's claim on one lock, from the moment it asks until it lets go. */
export interface LockClaim {
  /** False on the shared no-op claim (loopwatch off, or not in debug mode) and once released. */
  readonly live: boolean;
  /** The lock is granted: the task that asked now holds it (even when granted from another task's turn). */
  held(): void;
  /**
   * The lock is held on behalf of `call` (the promise of an async callback run under it, as a
   * `runExclusive(cb)` does): that call's task is shown as the holder, rather than the task that asked.
   */
  heldFor(call: PromiseLike<unknown>): void;
  /** Let go of the lock, or gave up waiting for it. */
  release(): void;
}

/** What the enabled loopwatch installs on {@link LOCK_TRACKER}. */
export interface LockTracker {
  claim(lock: object, name: string | undefined, held: boolean): LockClaim;
}
