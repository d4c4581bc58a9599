/**
 * The in-process per-host guard: a keyed mutex. Storage adapters shared by several instances
 * (PostgreSQL) provide one that also works across processes.
 */
import type { HostGuard } from './contracts.js';

export class LocalHostGuard implements HostGuard {
  // A key is present while its host is held; the array holds the waiters in arrival order.
  readonly #held = new Map<string, Array<() => void>>();

  /** Hosts currently held (for tests and status). */
  get size(): number {
    return this.#held.size;
  }

  withHost<T>(hostname: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const waiters = this.#held.get(hostname);
    if (waiters !== undefined) return this.#wait(waiters, signal).then(() => this.#run(hostname, fn));
    this.#held.set(hostname, []);
    return this.#run(hostname, fn);
  }

  // Promise chains rather than an async function: with 100k messages in flight, a suspended
  // async frame per message is memory we would rather not hold.
  #run<T>(hostname: string, fn: () => Promise<T>): Promise<T> {
    let result: Promise<T>;
    try {
      result = fn();
    } catch (err) {
      this.#release(hostname);
      // Pass on exactly what fn threw, as an async function would.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      return Promise.reject(err);
    }
    return result.then(
      (value) => {
        this.#release(hostname);
        return value;
      },
      (err: unknown) => {
        this.#release(hostname);
        throw err;
      },
    );
  }

  #wait(waiters: Array<() => void>, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = waiters.indexOf(wake);
        if (i >= 0) waiters.splice(i, 1);
        reject(signal.reason as Error);
      };
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      waiters.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #release(hostname: string): void {
    const waiters = this.#held.get(hostname);
    const next = waiters?.shift();
    // Ownership passes straight to the next waiter, so nobody can barge in between.
    if (next) next();
    else this.#held.delete(hostname);
  }
}
