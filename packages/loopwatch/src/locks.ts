/**
 * `loopwatch/locks` (also exported by `loopwatch`): lock-like primitives say who holds them and who
 * waits, so that two tasks each waiting for a lock the other holds show as a cycle in `loopwatch
 * pstree` and in task dumps, as tasks awaiting each other do.
 *
 * Costless when loopwatch is off (or in production mode, which tracks no task): each call is one
 * property read and returns a shared frozen no-op claim. This module imports nothing else of
 * loopwatch, so importing it loads no instrument either.
 */
import { LOCK_TRACKER, type LockClaim, type LockTracker } from './model/locks.js';

export type { LockClaim } from './model/locks.js';
export { watchMutex, type MutexLike, type SemaphoreLike } from './locks/async-mutex.js';

const noop = (): void => undefined;

/** The claim every call gets while loopwatch is not tracking tasks. */
export const NO_CLAIM: LockClaim = Object.freeze({ live: false, held: noop, heldFor: noop, release: noop });

function tracker(): LockTracker | undefined {
  return (globalThis as { [LOCK_TRACKER]?: LockTracker })[LOCK_TRACKER];
}

/**
 * The running task asks for `lock` (any object that stands for it) and waits for it. Call `held()` on
 * the claim when the lock is granted (from whatever turn grants it: the claim remembers the task), and
 * `release()` when the task lets go or stops waiting. `name` is shown in `pstree` (default: `lock`).
 */
export function lockWaiting(lock: object, name?: string): LockClaim {
  const t = tracker();
  return t === undefined ? NO_CLAIM : t.claim(lock, name, false);
}

/** The running task holds `lock` now (taken without waiting). `release()` the claim when it lets go. */
export function lockHeld(lock: object, name?: string): LockClaim {
  const t = tracker();
  return t === undefined ? NO_CLAIM : t.claim(lock, name, true);
}
