/**
 * An expected fault of something the service depends on (the machine's descriptors or memory for the
 * restart executor), told once per episode instead of once per message: one line when the first
 * failure comes, naming the dependency and the fault; one line when it has been quiet for
 * `quietMs` after the last failure (how long it lasted, how many calls failed). Successes in between
 * do not end the episode: under pressure some calls pass and some fail, and that is one episode.
 */
import type { Logger } from 'pino';

export interface FaultEpisodeOptions {
  /** What the service does meanwhile, for the first line ("restarts that could not start are retried"). */
  readonly meanwhile: string;
  /** Quiet time after the last failure that ends the episode. Default 5,000 ms. */
  readonly quietMs?: number;
  readonly now?: () => number;
}

export class FaultEpisode {
  readonly #what: string;
  readonly #log: Logger;
  readonly #meanwhile: string;
  readonly #quietMs: number;
  readonly #now: () => number;
  #since: number | undefined;
  #lastAt = 0;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;

  /** @param what the dependency, as it starts a log line: "Restart command". */
  constructor(what: string, logger: Logger, options: FaultEpisodeOptions) {
    this.#what = what;
    this.#log = logger;
    this.#meanwhile = options.meanwhile;
    this.#quietMs = options.quietMs ?? 5_000;
    this.#now = options.now ?? Date.now;
  }

  /** True while an episode is open. */
  get open(): boolean {
    return this.#since !== undefined;
  }

  /** One call failed with the fault `fault` (one line: the code and what it means). */
  failed(fault: string): void {
    const now = this.#now();
    this.#lastAt = now;
    this.#failures += 1;
    if (this.#since !== undefined) return;
    this.#since = now;
    this.#log.error(
      { dependency: this.#what.toLowerCase(), fault },
      `${this.#what} could not start: ${fault}; ${this.#meanwhile} until it can`,
    );
    this.#arm();
  }

  /** Stop the timer (at shutdown); an open episode is closed with its line. */
  close(): void {
    if (this.#since !== undefined) this.#end();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const wait = Math.max(0, this.#lastAt + this.#quietMs - this.#now());
    this.#timer = setTimeout(() => {
      if (this.#now() - this.#lastAt >= this.#quietMs) this.#end();
      else this.#arm();
    }, wait);
    this.#timer.unref();
  }

  #end(): void {
    const lasted = ((this.#lastAt - this.#since!) / 1000).toFixed(1);
    this.#log.info(
      { dependency: this.#what.toLowerCase(), failedCalls: this.#failures, lastedMs: this.#lastAt - this.#since! },
      `${this.#what} starting again: the fault lasted ${lasted} s, ${this.#failures} starts failed and were retried`,
    );
    this.#since = undefined;
    this.#failures = 0;
  }
}
