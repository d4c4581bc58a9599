/**
 * The main thread's half of the stall watchdog: a cheap unref'd timer that writes "I am alive" (epoch
 * ms) into a shared cell the watchdog's worker reads, and measures how late it ran itself. A beat that
 * ran later than the threshold ends a stall: it is published on the feed (the loop-lag monitor
 * listens) and handed to `onStall`.
 */
import type { Clock, Timer } from './clock.js';
import type { StallEvent, StallFeed } from './watchdog-feed.js';

export interface HeartbeatOptions {
  readonly clock: Clock;
  readonly heartbeatMs: number;
  readonly thresholdMs: number;
  readonly feed: StallFeed;
  /** BigInt64Array cell 0: the last beat, epoch ms. */
  readonly cell: BigInt64Array;
  readonly onStall?: (e: StallEvent) => void;
}

/** Beats remembered for lag figures on request (`loopwatch top`): a minute at the fastest beat. */
const LATENESS_KEPT = 12_000;

export class Heartbeat {
  /** The last stall measured (the worker's report is matched against it). */
  lastStall: StallEvent | undefined;
  /** How late each recent beat ran, ms, with when (clock ms): loop lag at no extra timer. */
  readonly #late: { at: number; ms: number }[] = [];
  readonly #o: HeartbeatOptions;
  #last: number;
  readonly #timer: Timer;
  readonly #unregister: () => void;

  constructor(o: HeartbeatOptions) {
    this.#o = o;
    this.#last = o.clock.now();
    Atomics.store(o.cell, 0, BigInt(Math.round(o.clock.origin + this.#last)));
    this.#timer = o.clock.every(o.heartbeatMs, this.beat);
    // A reader about to close an interval beats first, so a stall that just ended lands in its figures.
    this.#unregister = o.feed.registerPoller(() => {
      if (o.clock.now() - this.#last - o.heartbeatMs >= o.thresholdMs) this.beat();
    });
  }

  readonly beat = (): void => {
    const { clock, heartbeatMs, thresholdMs } = this.#o;
    const now = clock.now();
    const late = now - this.#last - heartbeatMs;
    this.#last = now;
    Atomics.store(this.#o.cell, 0, BigInt(Math.round(clock.origin + now)));
    this.#late.push({ at: now, ms: Math.max(0, late) });
    if (this.#late.length > LATENESS_KEPT) this.#late.splice(0, LATENESS_KEPT / 2);
    if (late < thresholdMs) return;
    const e: StallEvent = { startMs: now - late, endMs: now, durationMs: late };
    this.lastStall = e;
    this.#o.feed.publish(e);
    this.#o.onStall?.(e);
  };

  /** Loop lag over the last `windowMs`: how late the beats ran (p50, p99, max), ms. */
  lag(windowMs: number): { p50Ms: number; p99Ms: number; maxMs: number; samples: number } {
    const since = this.#o.clock.now() - windowMs;
    const ms = this.#late
      .filter((b) => b.at >= since)
      .map((b) => b.ms)
      .sort((a, b) => a - b);
    const at = (q: number): number => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0;
    return { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: ms[ms.length - 1] ?? 0, samples: ms.length };
  }

  stop(): void {
    this.#timer.cancel();
    this.#unregister();
  }
}
