/**
 * `slow-callback`: a turn of the loop longer than the threshold. Two detectors, one report each:
 *  - promise reactions (debug mode, task tracking on): timed exactly, attributed to their task;
 *  - any callback (timers, I/O, reactions alike; the only one in production): an unref'd ticker
 *    that notices it fired late. Cheap: a few wake-ups a second.
 * Where the time went, best source first: a blocking API call that covers the turn (its exact line),
 * the stall watchdog's pause of the main thread while the turn was still running (every frame's exact
 * line, through the loader's source maps), the sampling profiler's hottest stack of that window (the
 * leaf's hot line, callers at their function), or what the samples were (garbage collection, module
 * loading, native code), or that no sample fell in it.
 *
 * Turns spent loading modules are start-up, not slow callbacks: they are gathered into one `start-up`
 * report and never use the report budget. loopwatch's own work (building a report) is never reported.
 *
 * Reporting must never become the slow part: at most one report per {@link REPORT_GAP_MS} is printed;
 * slow turns in between are counted, and the next report (or, when the burst is over, one summary
 * line) says how many there were and how long the longest took.
 */
import type { Report } from '../model/report.js';
import { isOwnFile } from '../source/frames.js';
import { originOf, toPath } from '../model/paths.js';
import type { HotStack } from '../model/cpu-profile.js';
import type { PromiseRecord } from '../model/task.js';
import type { BlockingCall } from './blocking.js';
import type { RawFrame } from './watchdog-protocol.js';
import { coversTurn, slowReport, type Slice } from './slow-report.js';
import type { Clock, Timer } from './clock.js';

/** Minimum time between two full slow-callback reports, ms. */
export const REPORT_GAP_MS = 1_000;
/** Slow turns remembered for `loopwatch top` (the last minute's). */
const RECENT_MS = 60_000;

/** The part of the sampling profiler the watcher uses (a fake one in the unit tier). */
export interface WindowSampler {
  /** Hottest stack of [startMs, endMs] (clock times). */
  hottest(startMs: number, endMs: number): HotStack;
  close(): void;
  /** When sampling began (clock ms); undefined while a deferred start waits for its turn. */
  begunAt?(): number | undefined;
}

export interface SlowCallbackDeps {
  /** Threshold, ms (asyncio's `slow_callback_duration`, default 100). */
  readonly thresholdMs: number;
  /** Sampling interval of the profiler, ms (module-loading time is counted in samples). */
  readonly sampleMs: number;
  readonly clock: Clock;
  readonly sampler: WindowSampler;
  readonly emit: (r: Report) => void;
  /** The last blocking call that returned (debug mode), whose exact line beats any sample. */
  readonly lastBlockingCall?: () => BlockingCall | undefined;
  /** Told when a full report was printed: the watchdog holds its pauses until the next one may be. */
  readonly onReported?: (nextAllowedEpochMs: number) => void;
  /** Pulls the watchdog's pauses of slow turns into {@link SlowCallbackWatcher.noteSlice} (synchronously). */
  readonly pullSlices?: () => void;
  /** Every slow turn as it is noted (the recording). */
  readonly onTurn?: (r: RecentSlow) => void;
  /**
   * CPU time this thread (or process) has used, ms: a slow turn during which it barely ran was the machine's
   * (the OS gave the CPU to others), not the program's. Absent on fake time.
   */
  readonly cpuMs?: () => number;
}

/** Below this share of CPU over a slow turn's wall time, the thread was starved rather than busy. */
export const STARVED_CPU_SHARE = 0.5;

interface Suppressed {
  count: number;
  longestMs: number;
  totalMs: number;
  sinceMs: number;
}
interface StartUp {
  turns: number;
  totalMs: number;
  longestMs: number;
  modules: Map<string, number>;
  timer: Timer | undefined;
  reported: boolean;
}

/** A slow turn, for `loopwatch top`. */
export interface RecentSlow {
  readonly atMs: number;
  readonly durationMs: number;
  /** The culprit, when the turn was analysed (one a second is). */
  readonly functionName?: string;
  readonly location?: string;
  readonly task?: string;
  /** The thread was mostly off the CPU (the machine was busy): not reported. */
  readonly starved?: boolean;
}

/**
 * One slow-callback watcher: the late-ticker, the rate limit, the start-up gathering. Its state is
 * its own, so it runs on fake time in the unit tier.
 */
export class SlowCallbackWatcher {
  readonly #d: SlowCallbackDeps;
  readonly #period: number;
  readonly #ticker: Timer;
  #lastTick: number;
  /** CPU used at the last tick (when `cpuMs` is given). */
  #lastCpu: number | undefined;
  #coveredUntil = 0;
  /** Clock time of the last full report. */
  #lastReportAt = -Infinity;
  #suppressed: Suppressed | undefined;
  #summaryTimer: Timer | undefined;
  readonly #startUp: StartUp = {
    turns: 0,
    totalMs: 0,
    longestMs: 0,
    modules: new Map(),
    timer: undefined,
    reported: false,
  };
  readonly #slices: Slice[] = [];
  /** loopwatch's own work: a turn that ends before this was (partly) ours. */
  #ownUntil = 0;
  #stopped = false;
  readonly #recent: RecentSlow[] = [];

  constructor(deps: SlowCallbackDeps) {
    this.#d = deps;
    this.#period = Math.max(5, Math.min(50, deps.thresholdMs / 4));
    this.#lastTick = deps.clock.now();
    this.#lastCpu = deps.cpuMs?.();
    this.#ticker = deps.clock.every(this.#period, this.tick);
  }

  get thresholdMs(): number {
    return this.#d.thresholdMs;
  }

  /** What the ticker does; also run at exit, where the ticker never fires again. */
  readonly tick = (): void => {
    const now = this.#d.clock.now();
    const late = now - this.#lastTick - this.#period;
    const from = this.#lastTick;
    const cpuFrom = this.#lastCpu;
    this.#lastTick = now;
    this.#lastCpu = this.#d.cpuMs?.();
    if (this.#stopped || late < this.#d.thresholdMs || this.#coveredUntil >= from) return;
    this.#onSlow(undefined, now - late, late, this.#starved(cpuFrom, this.#lastCpu, now - from));
  };

  /** Whether the thread ran for less than {@link STARVED_CPU_SHARE} of `wallMs` between two CPU readings. */
  #starved(cpuFrom: number | undefined, cpuTo: number | undefined, wallMs: number): boolean {
    if (cpuFrom === undefined || cpuTo === undefined || wallMs <= 0) return false;
    return (cpuTo - cpuFrom) / wallMs < STARVED_CPU_SHARE;
  }

  /** The watchdog paused the main thread during a slow turn: its frames, raw (resolved here, where the source maps are). */
  noteSlice(atEpochMs: number, frames: readonly RawFrame[]): void {
    this.#slices.push({ atMs: atEpochMs - this.#d.clock.origin, frames });
    if (this.#slices.length > 4) this.#slices.shift();
  }

  /** A promise reaction the task tracker timed (debug mode): exact, and attributed to its task. */
  readonly onSlowReaction = (task: PromiseRecord | undefined, startMs: number, durationMs: number): void => {
    if (this.#stopped) return;
    this.#coveredUntil = startMs + durationMs;
    // We are inside a promise hook: build the report (profiler, source maps) outside it.
    // CPU since the last tick (before the reaction began) against the wall time since then.
    const starved = this.#starved(this.#lastCpu, this.#d.cpuMs?.(), this.#d.clock.now() - this.#lastTick);
    setImmediate(() => {
      if (!this.#stopped) this.#onSlow(task, startMs, durationMs, starved);
    });
  };

  /** Slow turns of the last minute, newest last. */
  recent(): readonly RecentSlow[] {
    const since = this.#d.clock.now() - RECENT_MS;
    while (this.#recent.length > 0 && this.#recent[0]!.atMs < since) this.#recent.shift();
    return this.#recent;
  }

  #remember(r: RecentSlow): void {
    this.#d.onTurn?.(r);
    this.#recent.push(r);
    if (this.#recent.length > 200) this.#recent.shift();
  }

  /** Analyses a slow turn: start-up goes to its own report; the rest is reported or counted (rate limit). */
  #onSlow(task: PromiseRecord | undefined, startMs: number, durationMs: number, starved: boolean): void {
    const { clock } = this.#d;
    // A turn that was (mostly) loopwatch's own report building is not the program's.
    if (this.#ownUntil >= startMs + durationMs / 2) return;
    const blocking = this.#d.lastBlockingCall?.();
    // The OS kept the thread off the CPU for most of the turn and no blocking call explains the wait: on a
    // loaded machine a 5 ms turn of node's own code can take 300. Unless the turn's stack names the program's
    // own code (a busy loop sharing the CPU is still the program's), it has no line to change: kept for `top`,
    // not reported, not counted.
    const explained = coversTurn(blocking, startMs, durationMs);
    const hot = this.#d.sampler.hottest(startMs - 1, startMs + durationMs + 1);
    // A deferred sampler begins in the first timer turn: a turn before it is the program's start
    // (its modules' evaluation), start-up whether or not a sample names the modules.
    const begun = this.#d.sampler.begunAt ? this.#d.sampler.begunAt() : -Infinity;
    if (hot.attribution === 'module-loading' || begun === undefined || startMs < begun) {
      this.#noteStartUp(hot, durationMs);
      this.#ownUntil = clock.now();
      return;
    }
    const now = clock.now();
    if (starved && !explained && !hot.frames.some((f) => originOf(f.url) !== 'node' && !isOwnFile(f.url))) {
      this.#remember({ atMs: startMs, durationMs, starved: true });
      this.#ownUntil = clock.now();
      return;
    }
    if (now - this.#lastReportAt < REPORT_GAP_MS) {
      this.#suppress(durationMs, now);
      this.#remember({ atMs: startMs, durationMs, ...(task && !task.internal ? { task: task.name } : {}) });
      this.#ownUntil = clock.now();
      return;
    }
    this.#lastReportAt = now;
    this.#d.onReported?.(clock.origin + now + REPORT_GAP_MS);
    // The watchdog's pause of this turn (if any) was posted while it ran: it is in the port already.
    this.#d.pullSlices?.();
    const r = slowReport({
      task,
      startMs,
      durationMs,
      hot,
      blocking,
      slices: this.#slices,
      time: clock.wall(),
    });
    const s = this.#suppressed;
    this.#suppressed = undefined;
    this.#remember({
      atMs: startMs,
      durationMs,
      ...(r.functionName === undefined ? {} : { functionName: r.functionName }),
      ...(r.location === undefined ? {} : { location: r.location }),
      ...(r.task ? { task: r.task.name } : {}),
    });
    this.#d.emit(s ? { ...r, suppressed: { ...s } } : r);
    this.#ownUntil = clock.now();
  }

  #suppress(durationMs: number, now: number): void {
    const s = (this.#suppressed ??= { count: 0, longestMs: 0, totalMs: 0, sinceMs: this.#d.clock.wall() });
    s.count++;
    s.totalMs += durationMs;
    s.longestMs = Math.max(s.longestMs, durationMs);
    if (this.#summaryTimer) return;
    // If the burst ends here, one line still says what was left out.
    this.#summaryTimer = this.#d.clock.after(REPORT_GAP_MS - (now - this.#lastReportAt) + 1, () => {
      this.#summaryTimer = undefined;
      if (!this.#stopped && this.#d.clock.now() - this.#lastReportAt >= REPORT_GAP_MS) this.#emitSummary();
    });
  }

  #noteStartUp(hot: HotStack, durationMs: number): void {
    const s = this.#startUp;
    s.turns++;
    s.totalMs += durationMs;
    s.longestMs = Math.max(s.longestMs, durationMs);
    for (const [file, samples] of hot.modules ?? [])
      s.modules.set(toPath(file), (s.modules.get(toPath(file)) ?? 0) + samples * this.#d.sampleMs);
    if (s.reported) return;
    s.timer?.cancel();
    // One report, once loading has quietened down (or at exit).
    s.timer = this.#d.clock.after(REPORT_GAP_MS, () => this.#emitStartUp());
  }

  #emitStartUp(): void {
    const s = this.#startUp;
    if (s.reported || s.turns === 0) return;
    s.reported = true;
    s.timer?.cancel();
    const modules = [...s.modules]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5)
      .map(([file, ms]) => ({ file, ms: Math.round(ms) }));
    this.#d.emit({
      kind: 'start-up',
      time: this.#d.clock.wall(),
      durationMs: Math.round(s.totalMs),
      turns: s.turns,
      longestMs: Math.round(s.longestMs),
      attribution: 'module-loading',
      modules,
    });
  }

  #emitSummary(): void {
    const s = this.#suppressed;
    if (!s) return;
    this.#suppressed = undefined;
    this.#lastReportAt = this.#d.clock.now();
    this.#d.emit({
      kind: 'slow-callback',
      burst: { ...s },
      time: this.#d.clock.wall(),
      durationMs: Math.round(s.longestMs * 10) / 10,
      attribution: 'no-sample',
      stack: [],
    });
  }

  /** At exit: the turn that ends the program (a slow callback, then nothing left to do) is never followed by a tick. */
  readonly flush = (): void => {
    if (this.#stopped) return;
    this.tick();
    this.#emitStartUp();
    this.#emitSummary();
  };

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#ticker.cancel();
    this.#summaryTimer?.cancel();
    this.#startUp.timer?.cancel();
    this.#d.sampler.close();
  }
}
