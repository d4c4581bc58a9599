/**
 * Units of work that are not async functions (a message moving through a continuation-passing
 * pipeline, a job in a queue): a name and a current phase, shown by `loopwatch ps`/`top`/`where` like
 * a task. The protocol lives on a process-wide symbol so that every copy of loopwatch in a process
 * (register's, and the one a library or the program imports) reaches the one that is enabled.
 */

/** Where the enabled loopwatch puts its tracker; absent while loopwatch is off. */
export const WORK_TRACKER = Symbol.for('loopwatch.work.v1');

/** One unit of work, as `trackWork` hands it out. */
export interface WorkUnit {
  /** False on the shared no-op unit (loopwatch off) and once the unit ended: skip building costly phase texts. */
  readonly live: boolean;
  /**
   * The unit's current phase (`restarting web-3 (attempt 2)`); debug mode also keeps where it was set.
   * `waitingOn`: the promise this phase waits on (a call's result). In debug mode the dump then shows
   * the line that promise waits at — the `await` an async function is suspended at, innermost first,
   * or where a plain promise was made — before the line that set the phase. Only loopwatch's record
   * of it is kept, never the promise.
   */
  phase(text: string, waitingOn?: PromiseLike<unknown>): void;
  /** The unit is done: it leaves the live table for the ended history. */
  end(): void;
  /** The unit ended with an error (kept, as text, in the ended history). */
  fail(error: unknown): void;
}

/** What the enabled loopwatch installs on {@link WORK_TRACKER}. */
export interface WorkTracker {
  begin(kind: string, key: string): WorkUnit;
}
