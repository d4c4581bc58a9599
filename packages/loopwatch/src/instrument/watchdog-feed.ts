/**
 * Main-thread feed of stalls the watchdog's heartbeat measured. The loop-lag monitor subscribes, since
 * `monitorEventLoopDelay` sees a whole stall as a single late sample. One feed per loopwatch instance
 * (the functional API's watchdog and loop-lag monitor share the default one).
 */

/** A stall as the main thread measured it: how late its heartbeat ran. */
export interface StallEvent {
  /** `performance.now()` when the loop stopped making progress (estimated). */
  readonly startMs: number;
  /** `performance.now()` when it made progress again. */
  readonly endMs: number;
  readonly durationMs: number;
}

type Listener = (e: StallEvent) => void;

export class StallFeed {
  readonly #listeners = new Set<Listener>();
  readonly #pollers = new Set<() => void>();

  /** Calls `listener` for every stall measured from now on; returns the unsubscribe function. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Delivers a measured stall to every subscriber; a subscriber that throws does not stop the rest. */
  publish(e: StallEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e);
      } catch {
        // A broken subscriber must not break the heartbeat.
      }
    }
  }

  /** A running watchdog registers a poller so a reader can settle a stall that just ended before its timer ran. */
  registerPoller(poll: () => void): () => void {
    this.#pollers.add(poll);
    return () => this.#pollers.delete(poll);
  }

  /** Publishes a stall that has ended but whose heartbeat has not run yet (call before reading figures). */
  poll(): void {
    for (const p of this.#pollers) p();
  }

  /** Whether a running watchdog is timing stalls (otherwise the loop-lag monitor times them itself). */
  get hasSource(): boolean {
    return this.#pollers.size > 0;
  }
}

/** The feed shared by `startStallWatchdog` and `monitorLoopLag` when none is given. */
export const defaultStallFeed = new StallFeed();

/** Calls `listener` for every stall the default feed carries; returns the unsubscribe function. */
export function subscribeStalls(listener: Listener): () => void {
  return defaultStallFeed.subscribe(listener);
}
