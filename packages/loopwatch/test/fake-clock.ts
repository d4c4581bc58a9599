/**
 * Fake time for the unit tier. `advance(ms)` lets time pass on an idle loop (every timer fires when
 * due); `block(ms)` is a turn that ran for `ms`: time jumps, then each due timer fires once, late —
 * exactly what a blocked event loop does to real timers.
 */
import type { Clock, Timer } from '../src/instrument/clock.js';

interface Entry {
  due: number;
  readonly every: number | undefined;
  readonly fn: () => void;
  live: boolean;
}

export class FakeClock implements Clock {
  readonly origin = 1_700_000_000_000;
  #now = 1_000;
  readonly #timers: Entry[] = [];

  now(): number {
    return this.#now;
  }

  wall(): number {
    return this.origin + this.#now;
  }

  every(ms: number, fn: () => void): Timer {
    return this.#add(ms, ms, fn);
  }

  after(ms: number, fn: () => void): Timer {
    return this.#add(ms, undefined, fn);
  }

  /** Idle time: timers fire in order, each at its due time. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (let next = this.#nextDue(end); next !== undefined; next = this.#nextDue(end)) {
      this.#now = Math.max(this.#now, next.due);
      this.#fire(next);
    }
    this.#now = end;
  }

  /** A turn that kept the loop busy for `ms`: due timers fire once afterwards, late. */
  block(ms: number): void {
    this.jump(ms);
    this.runDue();
  }

  /** Time passes inside a turn that is still running: no timer can fire yet. */
  jump(ms: number): void {
    this.#now += ms;
  }

  /** The turn ended: each due timer fires once. */
  runDue(): void {
    for (const e of this.#timers.filter((t) => t.live && t.due <= this.#now)) this.#fire(e);
  }

  /** Timers still armed. */
  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }

  #add(ms: number, every: number | undefined, fn: () => void): Timer {
    const e: Entry = { due: this.#now + ms, every, fn, live: true };
    this.#timers.push(e);
    return { cancel: () => void (e.live = false) };
  }

  #nextDue(end: number): Entry | undefined {
    let best: Entry | undefined;
    for (const t of this.#timers) if (t.live && t.due <= end && (!best || t.due < best.due)) best = t;
    return best;
  }

  #fire(e: Entry): void {
    if (e.every === undefined) e.live = false;
    else e.due = this.#now + e.every;
    e.fn();
  }
}
