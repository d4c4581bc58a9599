/**
 * Main-thread feed of stalls the watchdog's heartbeat measured. The loop-lag monitor subscribes, since
 * `monitorEventLoopDelay` sees a whole stall as a single late sample. Module-level so the two
 * monitors meet without the caller wiring them together.
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

const listeners = new Set<Listener>();
const pollers = new Set<() => void>();

/** Calls `listener` for every stall measured from now on; returns the unsubscribe function. */
export function subscribeStalls(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Delivers a measured stall to every subscriber. Listeners must not throw; if one does, the rest still run. */
export function publishStall(e: StallEvent): void {
  for (const l of listeners) {
    try {
      l(e);
    } catch {
      // A broken subscriber must not break the heartbeat.
    }
  }
}

/** A running watchdog registers a poller so a reader can settle a stall that just ended before its timer ran. */
export function registerStallPoller(poll: () => void): () => void {
  pollers.add(poll);
  return () => pollers.delete(poll);
}

/** Publishes a stall that has ended but whose heartbeat has not run yet (call before reading figures). */
export function pollStalls(): void {
  for (const p of pollers) p();
}

/** Whether a running watchdog is timing stalls (otherwise the loop-lag monitor times them itself). */
export function hasStallSource(): boolean {
  return pollers.size > 0;
}
