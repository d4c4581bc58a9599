/**
 * The article's mock restart: random latency, random failures. Reproducible with a seeded random.
 *
 * With `MAYHEM_MOCK_JOURNAL=<file>` every mock restart that takes effect appends `<host>\n` to that
 * file with a synchronous append, before the restart resolves — so the file shows every restart that
 * "happened", even from a process SIGKILLed a moment later. Fault tests count double restarts with it.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { RestartExecutor } from '../core/contracts.js';
import { cancelled, notRestarted, RESTARTED, type RestartOutcome } from '../core/restart-outcome.js';

export interface MockExecutorOptions {
  /** Latency is uniform in [0, latencyMs]; 0 resolves without touching a timer. */
  readonly latencyMs: number;
  /** Probability in [0, 1] that a restart fails (`not-restarted`). */
  readonly failureRate: number;
  readonly random: () => number;
  /** Append each host restarted to this file (see the module comment). Default: `MAYHEM_MOCK_JOURNAL`. */
  readonly journal?: string;
}

export class MockRestartExecutor implements RestartExecutor {
  readonly #o: MockExecutorOptions;
  readonly #journal: number | undefined;

  constructor(options: MockExecutorOptions) {
    this.#o = options;
    const journal = options.journal ?? process.env['MAYHEM_MOCK_JOURNAL'];
    // O_APPEND: lines from several processes never interleave mid-line. Left open for the process's life.
    this.#journal = journal ? openSync(journal, 'a') : undefined;
  }

  #tookEffect(hostname: string): void {
    if (this.#journal !== undefined) writeSync(this.#journal, `${hostname}\n`);
  }

  /** Close the journal, if any (tests that make many executors). */
  close(): void {
    if (this.#journal !== undefined) closeSync(this.#journal);
  }

  restart(hostname: string, signal: AbortSignal): Promise<RestartOutcome> {
    // A mock restart takes effect only when its latency is over: stopped before, it did not happen.
    if (signal.aborted) return Promise.resolve(stopped(hostname));
    const fails = this.#o.random() < this.#o.failureRate;
    const latency = this.#o.latencyMs > 0 ? this.#o.random() * this.#o.latencyMs : 0;
    if (latency === 0) {
      if (fails) return Promise.resolve(failed(hostname));
      this.#tookEffect(hostname);
      // One settled promise for every instant restart: the benches' hot path allocates nothing here.
      return RESTARTED_NOW;
    }
    return new Promise((resolve) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve(stopped(hostname));
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(this.#end(hostname, fails));
      }, latency);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #end(hostname: string, fails: boolean): RestartOutcome {
    if (fails) return failed(hostname);
    this.#tookEffect(hostname);
    return RESTARTED;
  }
}

const RESTARTED_NOW = Promise.resolve(RESTARTED);

function failed(hostname: string): RestartOutcome {
  return notRestarted(`Could not restart ${hostname}`);
}

function stopped(hostname: string): RestartOutcome {
  return cancelled(`Restart of ${hostname} cancelled before it took effect`);
}
