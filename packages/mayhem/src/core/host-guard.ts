/**
 * The in-process per-host guard: a keyed mutex. Storage adapters shared by several instances
 * (PostgreSQL) provide one that also works across processes.
 */
import type { HostGuard } from './contracts.js';
import { DONE } from './settled.js';

export class LocalHostGuard implements HostGuard {
  // A key is present while its host is held; the array holds the waiters in arrival order.
  readonly #held = new Map<string, Array<() => void>>();

  /** Hosts currently held (for tests and status). */
  get size(): number {
    return this.#held.size;
  }

  acquire(hostname: string, signal: AbortSignal): Promise<void> {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the contract: the signal's own reason
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.tryAcquire(hostname)) return DONE;
    const waiters = this.#held.get(hostname) as Array<() => void>;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = waiters.indexOf(wake);
        if (i >= 0) waiters.splice(i, 1);
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(signal.reason);
      };
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      waiters.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Take `hostname` if nobody holds it (then {@link release} it); never waits. */
  tryAcquire(hostname: string): boolean {
    if (this.#held.has(hostname)) return false;
    this.#held.set(hostname, []);
    return true;
  }

  release(hostname: string): void {
    const waiters = this.#held.get(hostname);
    const next = waiters?.shift();
    // Ownership passes straight to the next waiter, so nobody can barge in between.
    if (next) next();
    else this.#held.delete(hostname);
  }
}

/** Run `fn` holding `hostname` on `guard`; released however `fn` ends. */
export async function withHost<T>(
  guard: HostGuard,
  hostname: string,
  signal: AbortSignal,
  fn: () => Promise<T>,
): Promise<T> {
  await guard.acquire(hostname, signal);
  try {
    return await fn();
  } finally {
    guard.release(hostname);
  }
}
