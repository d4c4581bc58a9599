/**
 * The adapter for async-mutex's `Mutex` and `Semaphore` (and anything with the same `acquire` /
 * `release` / `runExclusive`): `watchMutex(new Mutex(), 'accounts')` reports who holds it and who
 * waits. It imports nothing of async-mutex: it wraps the instance's own methods, and while loopwatch
 * is not tracking tasks each wrapped call is the original plus one property read.
 */
import type { LockClaim } from '../model/locks.js';
import { LOCK_TRACKER, type LockTracker } from '../model/locks.js';

type Releaser = () => void;

/** async-mutex's `MutexInterface`: `acquire()` resolves to a releaser. */
export interface MutexLike {
  acquire(...args: never[]): Promise<Releaser>;
  release(): void;
  runExclusive<T>(callback: () => T | Promise<T>, ...args: never[]): Promise<T>;
}

/** async-mutex's `SemaphoreInterface`: `acquire()` resolves to `[value, releaser]`. */
export interface SemaphoreLike {
  acquire(...args: never[]): Promise<[number, Releaser]>;
  release(...args: never[]): void;
  runExclusive<T>(callback: (value: number) => T | Promise<T>, ...args: never[]): Promise<T>;
}

type Acquired = Releaser | [number, Releaser];
interface Loose {
  acquire(...args: unknown[]): Promise<Acquired>;
  release(...args: unknown[]): void;
  runExclusive(callback: (value?: number) => unknown, ...args: unknown[]): Promise<unknown>;
}

/** The claim behind each releaser handed out (for `runExclusive`'s callback to take it over). */
const claimOf = new WeakMap<Releaser, LockClaim>();

const releaserOf = (a: Acquired): Releaser => (Array.isArray(a) ? a[1] : a);

/** Wraps `mutex`'s methods in place (and returns it) so that its holders and waiters are known. */
export function watchMutex<M extends MutexLike | SemaphoreLike>(mutex: M, name?: string): M {
  const m = mutex as unknown as Loose;
  const acquire = m.acquire.bind(m);
  const release = m.release.bind(m);
  // Claims granted and not yet released, oldest first: `release()` without a releaser lets go of the oldest.
  const holding: LockClaim[] = [];
  const letGo = (claim: LockClaim): void => {
    const i = holding.indexOf(claim);
    if (i >= 0) holding.splice(i, 1);
    claim.release();
  };
  const grant = (claim: LockClaim, a: Acquired): Acquired => {
    claim.held();
    holding.push(claim);
    const r = releaserOf(a);
    const wrapped = (): void => {
      letGo(claim);
      r();
    };
    claimOf.set(wrapped, claim);
    return Array.isArray(a) ? [a[0], wrapped] : wrapped;
  };
  m.acquire = (...args) => {
    const t = (globalThis as { [LOCK_TRACKER]?: LockTracker })[LOCK_TRACKER];
    if (t === undefined) return acquire(...args);
    const claim = t.claim(mutex, name, false);
    return acquire(...args).then(
      (a) => grant(claim, a),
      (err: unknown) => {
        claim.release();
        throw err;
      },
    );
  };
  m.release = (...args) => {
    const oldest = holding.shift();
    if (oldest) oldest.release();
    release(...args);
  };
  // Through the wrapped `acquire`; an async callback's task is the holder while it runs. Same contract as the original.
  m.runExclusive = (callback, ...args) =>
    m.acquire(...args).then((a) => {
      const r = releaserOf(a);
      let out: unknown;
      try {
        out = callback(Array.isArray(a) ? a[0] : undefined);
      } catch (err) {
        r();
        throw err;
      }
      if (out instanceof Promise) claimOf.get(r)?.heldFor(out);
      return Promise.resolve(out).finally(r);
    });
  return mutex;
}
