/**
 * `slow-callback`: a turn of the loop longer than the threshold. Two detectors, one report each:
 *  - promise reactions (debug mode, task tracking on): timed exactly, attributed to their task;
 *  - any callback (timers, I/O, reactions alike; the only one in production): an unref'd ticker
 *    that notices it fired late. Cheap: a few wake-ups a second.
 * Where the time went comes from the sampling profiler's samples of that window, or, when a blocking
 * API call covers the window, that call's exact site.
 *
 * Reporting must never become the slow part: at most one report per {@link REPORT_GAP_MS} looks up
 * its culprit and is printed; slow turns in between are counted, and the next report (or, when the
 * burst is over, one summary line) says how many there were and how long the longest took.
 */
import { performance } from 'node:perf_hooks';
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

/** Minimum time between two full slow-callback reports, ms. */
export const REPORT_GAP_MS = 1_000;

interface Suppressed { count: number; longestMs: number; totalMs: number; sinceMs: number }
interface Watch {
  profiler: WindowProfiler;
  ticker: NodeJS.Timeout;
  /** What the ticker does; also run at exit, where the ticker never fires again. */
  tick: () => void;
  emit: (r: Report) => void;
  thresholdMs: number;
  coveredUntil: number;
  /** `performance.now()` of the last full report. */
  lastReportAt: number;
  suppressed: Suppressed | undefined;
  summaryTimer: NodeJS.Timeout | undefined;
}
let watch: Watch | undefined;

export function watchSlow(opts: SlowCallbackOptions, emit: (r: Report) => void): void {
  unwatchSlow();
  const thresholdMs = opts.thresholdMs;
  const period = Math.max(5, Math.min(50, thresholdMs / 4));
  const profiler = new WindowProfiler(opts.sampleIntervalUs ?? 2_000);
  let lastTick = performance.now();
  const tick = (): void => {
    const now = performance.now();
    const late = now - lastTick - period;
    const from = lastTick;
    lastTick = now;
    if (!watch || late < thresholdMs || watch.coveredUntil >= from) return;
    onSlow(watch, undefined, now - late, late);
  };
  const ticker = setInterval(tick, period);
  ticker.unref();
  watch = { profiler, ticker, tick, emit, thresholdMs, coveredUntil: 0, lastReportAt: -Infinity, suppressed: undefined, summaryTimer: undefined };
  process.on('exit', flushOnExit);
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
    if (watch) onSlow(watch, task, startMs, durationMs);
  });
}

/** Reports a slow turn, or counts it when the last report was less than {@link REPORT_GAP_MS} ago. */
function onSlow(w: Watch, task: PromiseRecord | undefined, startMs: number, durationMs: number): void {
  const now = performance.now();
  if (now - w.lastReportAt < REPORT_GAP_MS) {
    const s = (w.suppressed ??= { count: 0, longestMs: 0, totalMs: 0, sinceMs: Date.now() });
    s.count++;
    s.totalMs += durationMs;
    s.longestMs = Math.max(s.longestMs, durationMs);
    if (!w.summaryTimer) {
      // If the burst ends here, one line still says what was left out.
      w.summaryTimer = setTimeout(() => {
        w.summaryTimer = undefined;
        if (watch === w && performance.now() - w.lastReportAt >= REPORT_GAP_MS) emitSummary(w);
      }, REPORT_GAP_MS - (now - w.lastReportAt) + 1);
      w.summaryTimer.unref();
    }
    return;
  }
  w.lastReportAt = now;
  const r = slowReport(w, task, startMs, durationMs);
  const s = w.suppressed;
  w.suppressed = undefined;
  w.emit(s ? { ...r, message: `${r.message}${suppressedNote(s)}` } : r);
}

function suppressedNote(s: Suppressed): string {
  return ` (plus ${s.count} more slow callback${s.count === 1 ? '' : 's'} since the previous report, longest ${Math.round(s.longestMs)} ms, not analysed: reports are rate-limited)`;
}

function emitSummary(w: Watch): void {
  const s = w.suppressed;
  if (!s) return;
  w.suppressed = undefined;
  w.lastReportAt = performance.now();
  w.emit({
    kind: 'slow-callback',
    message: `${s.count} more slow callback${s.count === 1 ? '' : 's'} since ${new Date(s.sinceMs).toISOString()}, longest ${Math.round(s.longestMs)} ms, ${Math.round(s.totalMs)} ms in all (not analysed: reports are rate-limited)`,
    time: Date.now(),
    durationMs: Math.round(s.longestMs * 10) / 10,
    stack: [],
  });
}

function flushOnExit(): void {
  if (!watch) return;
  // The turn that ends the program (a slow callback, then nothing left to do) is never followed by a tick.
  watch.tick();
  emitSummary(watch);
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
  if (watch.summaryTimer) clearTimeout(watch.summaryTimer);
  process.off('exit', flushOnExit);
  watch.profiler.close();
  if (isTracking()) setSlowReaction(undefined);
  watch = undefined;
}
