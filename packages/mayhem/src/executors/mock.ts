/**
 * The article's mock restart: random latency, random failures. Reproducible with a seeded random.
 */
import { RestartFailed, type RestartExecutor } from '../core/contracts.js';
import { DONE } from '../core/settled.js';

export interface MockExecutorOptions {
  /** Latency is uniform in [0, latencyMs]; 0 resolves without touching a timer. */
  readonly latencyMs: number;
  /** Probability in [0, 1] that a restart fails with {@link RestartFailed}. */
  readonly failureRate: number;
  readonly random: () => number;
}

export class MockRestartExecutor implements RestartExecutor {
  readonly #o: MockExecutorOptions;

  constructor(options: MockExecutorOptions) {
    this.#o = options;
  }

  restart(hostname: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    const fails = this.#o.random() < this.#o.failureRate;
    const latency = this.#o.latencyMs > 0 ? this.#o.random() * this.#o.latencyMs : 0;
    if (latency === 0) return fails ? Promise.reject(new RestartFailed(`Could not restart ${hostname}`)) : DONE;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        if (fails) reject(new RestartFailed(`Could not restart ${hostname}`));
        else resolve();
      }, latency);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
