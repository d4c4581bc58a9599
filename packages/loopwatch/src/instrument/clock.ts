/**
 * Time and timers, as the instruments see them. Injected, so the task model, slow-callback accounting
 * and the heartbeat run on fake time in the unit tier (test/fake-clock.ts) and on the real clock here.
 * Every timer an instrument starts is unref'd: watching must never keep a finished program alive.
 */
// perf_hooks' own `performance`: the global one is a lazy accessor that runs a check on every read.
import { performance } from 'node:perf_hooks';

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Monotonic ms (`performance.now()`). */
  now(): number;
  /** Epoch ms of `now() === 0` (`performance.timeOrigin`). */
  readonly origin: number;
  /** Wall-clock epoch ms for report times (`Date.now()`). */
  wall(): number;
  /** An unref'd interval. */
  every(ms: number, fn: () => void): Timer;
  /** An unref'd timeout. */
  after(ms: number, fn: () => void): Timer;
}

export const realClock: Clock = {
  now: () => performance.now(),
  origin: performance.timeOrigin,
  wall: () => Date.now(),
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};
