/**
 * `slow-callback`: a turn of the loop longer than the threshold. Two detectors, one report each:
 *  - promise reactions (debug mode, task tracking on): timed exactly, attributed to their task;
 *  - any callback (timers, I/O, reactions alike; the only one in production): an unref'd ticker
 *    that notices it fired late. Cheap: a few wake-ups a second.
 * Where the time went comes from the sampling profiler's samples of that window, or, when a blocking
 * API call covers the window, that call's exact site.
 */
import type { Frame, Report } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import { resolveFrame, userFrames } from '../model/frames.js';
import type { PromiseRecord } from '../model/task.js';
import { taskRef } from '../model/task.js';
import { createdAtOf } from '../model/describe.js';
import { WindowProfiler } from './profiler.js';
import { lastBlockingCall } from './blocking.js';
import { isTracking, setSlowReaction } from './tasks.js';

export interface SlowCallbackOptions {
  /** Threshold, ms (asyncio's `slow_callback_duration`, default 100). */
  readonly thresholdMs: number;
  /** Sampling interval of the profiler, µs. Debug mode samples finer than production. */
  readonly sampleIntervalUs?: number;
}

interface Watch { profiler: WindowProfiler; ticker: NodeJS.Timeout; emit: (r: Report) => void; thresholdMs: number; coveredUntil: number }
let watch: Watch | undefined;

export function watchSlow(opts: SlowCallbackOptions, emit: (r: Report) => void): void {
  unwatchSlow();
  const thresholdMs = opts.thresholdMs;
  const period = Math.max(5, Math.min(50, thresholdMs / 4));
  const profiler = new WindowProfiler(opts.sampleIntervalUs ?? 2_000);
  let lastTick = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    const late = now - lastTick - period;
    const from = lastTick;
    lastTick = now;
    if (!watch || late < thresholdMs || watch.coveredUntil >= from) return;
    watch.emit(slowReport(watch, undefined, now - late, late));
  }, period);
  ticker.unref();
  watch = { profiler, ticker, emit, thresholdMs, coveredUntil: 0 };
  if (isTracking()) setSlowReaction(thresholdMs, onSlowReaction);
}

/** Re-arms the reaction detector after task tracking (re)starts. */
export function armReactionDetector(): void {
  if (watch) setSlowReaction(watch.thresholdMs, onSlowReaction);
}

function onSlowReaction(task: PromiseRecord | undefined, startMs: number, durationMs: number): void {
  if (!watch) return;
  watch.coveredUntil = startMs + durationMs;
  // We are inside a promise hook: build the report (profiler, source maps) outside it.
  setImmediate(() => {
    if (watch) watch.emit(slowReport(watch, task, startMs, durationMs));
  });
}

function slowReport(w: Watch, task: PromiseRecord | undefined, startMs: number, durationMs: number): Report {
  const endMs = startMs + durationMs;
  let culprit: Frame | undefined;
  let stack: Frame[] = [];
  const blocking = lastBlockingCall();
  // A blocking call that took most of this turn names the exact line, column included.
  if (blocking && blocking.endMs >= startMs && blocking.endMs <= endMs + 1 && blocking.endMs - blocking.startMs >= durationMs / 2) {
    stack = userFrames(blocking.sites, 5);
    culprit = stack[0];
  } else {
    const c = w.profiler.culprit(startMs - 1, endMs + 1);
    if (c) {
      culprit = resolveFrame({ functionName: c.functionName, file: c.url, line: c.line, column: c.column });
      stack = [culprit];
    }
  }
  const ms = Math.round(durationMs);
  const who = task && !task.internal ? `task ${task.name}` : 'a callback';
  const where = culprit ? ` in ${culprit.functionName} (${formatLocation(culprit)})` : '';
  return {
    kind: 'slow-callback',
    message: `Executing ${who} took ${ms} ms${where}`,
    time: Date.now(),
    durationMs: Math.round(durationMs * 10) / 10,
    ...(task && !task.internal ? { task: taskRef(task), createdAt: createdAtOf(task) } : {}),
    ...(culprit ? { location: formatLocation(culprit), functionName: culprit.functionName } : {}),
    stack,
  };
}

export function unwatchSlow(): void {
  if (!watch) return;
  clearInterval(watch.ticker);
  watch.profiler.close();
  if (isTracking()) setSlowReaction(undefined);
  watch = undefined;
}
