/**
 * The health of one dependency (the database, the broker), judged from the outcomes of the calls the
 * service makes to it anyway — no probes of its own. It turns a fault into three kinds of log line
 * instead of one line per failed call:
 *
 *   - one line when it goes bad: what, since when, and what the service does meanwhile;
 *   - a summary every `summaryEveryMs` while it stays bad, with counts;
 *   - one line when it recovers, with how long it was out.
 *
 * Bad means "failing": calls fail and none has succeeded for `downAfterMs` (random failures among
 * successes — fault injection, a bad row — are not an outage), or "not answering": calls are waiting
 * and none has finished for `stallAfterMs` (a lock, a frozen server). While bad, `down` is true: the
 * consumer pauses intake, and callers log their per-call lines at debug level only.
 */
import type { Logger } from 'pino';
import { errorText } from './errors.js';

export interface DependencyHealthOptions {
  /** Failing with no success for this long makes it down. Default 1000 ms. */
  readonly downAfterMs?: number;
  /** Calls waiting with none finished for this long makes it down. Default 5000 ms. */
  readonly stallAfterMs?: number;
  /** Summary line interval while down. Default 10,000 ms. */
  readonly summaryEveryMs?: number;
  /** What the service does while it is down, for the lines ("pausing intake"). */
  readonly whileDown: string;
  /** How many messages are waiting on it, for the lines. */
  readonly waiting?: () => number;
  readonly now?: () => number;
}

type State = 'up' | 'failing' | 'not answering';

// Per-call warn lines allowed each second while the dependency is up (see callLogLevel).
const CALL_LINES_PER_SECOND = 10;
// Failures in a row, with no success between, that make the dependency suspect (see suspect).
const SUSPECT_AFTER_FAILURES = 5;

export class DependencyHealth {
  readonly #name: string;
  readonly #log: Logger;
  readonly #downAfterMs: number;
  readonly #stallAfterMs: number;
  readonly #summaryEveryMs: number;
  readonly #whileDown: string;
  readonly #waiting: () => number;
  readonly #now: () => number;
  #state: State = 'up';
  #lastOkAt: number;
  #lastFinishedAt: number;
  #pending = 0;
  #failuresSinceOk = 0;
  #lastError = '';
  #downSince = 0;
  #lastSummaryAt = 0;
  #upWaiters: (() => void)[] = [];
  #callLinesSecond = 0;
  #callLines = 0;
  #ticker: ReturnType<typeof setInterval> | undefined;

  /** @param name capitalised, as it starts a log line: "Database", "Broker". */
  constructor(name: string, logger: Logger, options: DependencyHealthOptions) {
    this.#name = name;
    this.#log = logger;
    this.#downAfterMs = options.downAfterMs ?? 1000;
    this.#stallAfterMs = options.stallAfterMs ?? 5000;
    this.#summaryEveryMs = options.summaryEveryMs ?? 10_000;
    this.#whileDown = options.whileDown;
    this.#waiting = options.waiting ?? (() => 0);
    this.#now = options.now ?? (() => performance.now());
    this.#lastOkAt = this.#lastFinishedAt = this.#now();
  }

  /** True while the dependency is failing or not answering. */
  get down(): boolean {
    return this.#state !== 'up';
  }

  /**
   * Down, or on its way: several calls in a row failed with no success between them. Random
   * failures among successes (fault injection, one bad row) rarely do that; an outage does at once,
   * before `downAfterMs` has passed. Callers stop spending a message's attempts on it.
   */
  get suspect(): boolean {
    return this.#state !== 'up' || this.#failuresSinceOk >= SUSPECT_AFTER_FAILURES;
  }

  /** A call is about to be made (pair with {@link ok} or {@link failed}, or {@link settled}). */
  started(): void {
    this.#pending += 1;
    this.#tick();
  }

  /** A call started with {@link started} ended with a cancellation: neither success nor failure. */
  settled(): void {
    this.#pending = Math.max(0, this.#pending - 1);
    this.#lastFinishedAt = this.#now();
  }

  /** A call succeeded. */
  ok(): void {
    this.settled();
    this.#lastOkAt = this.#lastFinishedAt;
    if (this.#state !== 'up') this.#recovered();
    this.#failuresSinceOk = 0;
  }

  /** A call failed (not a cancellation). Returns whether the dependency is now down. */
  failed(error: unknown): boolean {
    this.settled();
    this.#failuresSinceOk += 1;
    this.#lastError = errorText(error);
    this.#check();
    return this.down;
  }

  /**
   * The level for a per-call line (one message's failed call): `warn` for the first few each second
   * while the dependency is up (a failure here and there is worth seeing), `debug` past that and
   * while it is down — then this object's own lines say it, once.
   */
  callLogLevel(): 'warn' | 'debug' {
    if (this.down) return 'debug';
    const second = Math.floor(this.#now() / 1000);
    if (second !== this.#callLinesSecond) {
      this.#callLinesSecond = second;
      this.#callLines = 0;
    }
    return ++this.#callLines <= CALL_LINES_PER_SECOND ? 'warn' : 'debug';
  }

  /** Resolves when the dependency is up again, after `ms` at most, or when `signal` aborts. */
  whenUp(ms: number, signal: AbortSignal): Promise<void> {
    if (!this.down || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        const i = this.#upWaiters.indexOf(done);
        if (i >= 0) this.#upWaiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.#upWaiters.push(done);
    });
  }

  /** Stop the ticker (at shutdown). */
  close(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  // A stall produces no outcome to react to, so a timer looks while calls are pending or it is down.
  #tick(): void {
    if (this.#ticker !== undefined) return;
    this.#ticker = setInterval(() => {
      this.#check();
      if (this.#pending === 0 && this.#state === 'up') this.close();
    }, 1000);
    this.#ticker.unref();
  }

  #check(): void {
    const now = this.#now();
    if (this.#state === 'up') {
      if (this.#failuresSinceOk > 0 && now - this.#lastOkAt >= this.#downAfterMs) this.#wentDown('failing', now);
      else if (this.#pending > 0 && now - this.#lastFinishedAt >= this.#stallAfterMs)
        this.#wentDown('not answering', now);
      return;
    }
    // A stalled dependency whose calls have since been failing is failing now; the lines say the state.
    if (this.#state === 'not answering' && this.#failuresSinceOk > 0) this.#state = 'failing';
    if (now - this.#lastSummaryAt >= this.#summaryEveryMs) {
      this.#lastSummaryAt = now;
      this.#log.warn(
        {
          dependency: this.#name.toLowerCase(),
          state: this.#state,
          downForMs: Math.round(now - this.#downSince),
          failedCalls: this.#failuresSinceOk,
          waitingCalls: this.#pending,
          waitingMessages: this.#waiting(),
          lastError: this.#lastError || undefined,
        },
        `${this.#name} still ${this.#describe()} after ${seconds(now - this.#downSince)}: ${this.#failuresSinceOk} calls failed, ${this.#pending} waiting, ${this.#waiting()} messages in flight; ${this.#whileDown}`,
      );
    }
  }

  #wentDown(state: State, now: number): void {
    this.#state = state;
    this.#downSince = state === 'failing' ? this.#lastOkAt : this.#lastFinishedAt;
    this.#lastSummaryAt = now;
    this.#tick();
    this.#log.error(
      {
        dependency: this.#name.toLowerCase(),
        state,
        sinceMs: Math.round(now - this.#downSince),
        lastError: this.#lastError || undefined,
        waitingMessages: this.#waiting(),
      },
      `${this.#name} ${this.#describe()} for ${seconds(now - this.#downSince)}${this.#lastError ? ` (${this.#lastError})` : ''}; ${this.#whileDown} until it recovers`,
    );
  }

  #recovered(): void {
    const now = this.#now();
    this.#log.info(
      {
        dependency: this.#name.toLowerCase(),
        downForMs: Math.round(now - this.#downSince),
        failedCalls: this.#failuresSinceOk,
      },
      `${this.#name} available again after ${seconds(now - this.#downSince)} (${this.#failuresSinceOk} calls failed meanwhile); resuming`,
    );
    this.#state = 'up';
    const waiters = this.#upWaiters;
    this.#upWaiters = [];
    for (const w of waiters) w();
  }

  #describe(): string {
    return this.#state === 'failing' ? 'unavailable' : 'not answering';
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
