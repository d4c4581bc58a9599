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
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { Attribution, Frame, Report } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import { isOwnFile, originOf, resolveFrame, shortLocation, toPath, userFrames } from '../model/frames.js';
import type { HotFrame, HotStack } from '../model/cpu-profile.js';
import type { PromiseRecord } from '../model/task.js';
import { taskRef } from '../model/task.js';
import { createdAtOf } from '../model/describe.js';
import { WindowProfiler } from './profiler.js';
import { lastBlockingCall } from './last-blocking-call.js';
import { isTracking, setSlowReaction } from './tasks.js';
import type { RawFrame } from './watchdog-protocol.js';

export interface SlowCallbackOptions {
  /** Threshold, ms (asyncio's `slow_callback_duration`, default 100). */
  readonly thresholdMs: number;
  /** Sampling interval of the profiler, µs. Debug mode samples finer than production. */
  readonly sampleIntervalUs?: number;
}

/** Minimum time between two full slow-callback reports, ms. */
export const REPORT_GAP_MS = 1_000;
/** Frames shown per stack. */
const STACK_LIMIT = 8;

interface Suppressed { count: number; longestMs: number; totalMs: number; sinceMs: number }
interface StartUp { turns: number; totalMs: number; longestMs: number; modules: Map<string, number>; timer: NodeJS.Timeout | undefined; reported: boolean }
/** A pause of the main thread by the watchdog's worker during a slow turn. */
interface Slice { readonly atMs: number; readonly frames: readonly RawFrame[] }
interface Watch {
  profiler: WindowProfiler;
  ticker: NodeJS.Timeout;
  /** What the ticker does; also run at exit, where the ticker never fires again. */
  tick: () => void;
  emit: (r: Report) => void;
  thresholdMs: number;
  sampleMs: number;
  coveredUntil: number;
  /** `performance.now()` of the last full report. */
  lastReportAt: number;
  suppressed: Suppressed | undefined;
  summaryTimer: NodeJS.Timeout | undefined;
  startUp: StartUp;
  slices: Slice[];
  /** loopwatch's own work: a turn that ends before this was (partly) ours. */
  ownUntil: number;
}
let watch: Watch | undefined;
/** Told when a full report was printed: the watchdog holds its pauses until the next one may be. */
let onReported: ((nextAllowedEpochMs: number) => void) | undefined;

/** Pulls the watchdog's pauses of slow turns into {@link noteSlice} (synchronously). */
let pullSlices: (() => void) | undefined;

export function setReportGate(fn: ((nextAllowedEpochMs: number) => void) | undefined, pull?: () => void): void {
  onReported = fn;
  pullSlices = pull;
}

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
  watch = {
    profiler,
    ticker,
    tick,
    emit,
    thresholdMs,
    sampleMs: (opts.sampleIntervalUs ?? 2_000) / 1000,
    coveredUntil: 0,
    lastReportAt: -Infinity,
    suppressed: undefined,
    summaryTimer: undefined,
    startUp: { turns: 0, totalMs: 0, longestMs: 0, modules: new Map(), timer: undefined, reported: false },
    slices: [],
    ownUntil: 0,
  };
  process.on('exit', flushOnExit);
  if (isTracking()) setSlowReaction(thresholdMs, onSlowReaction);
}

/** Re-arms the reaction detector after task tracking (re)starts. */
export function armReactionDetector(): void {
  if (watch) setSlowReaction(watch.thresholdMs, onSlowReaction);
}

/** The watchdog paused the main thread during a slow turn: its frames, raw (resolved here, where the source maps are). */
export function noteSlice(atEpochMs: number, frames: readonly RawFrame[]): void {
  if (!watch) return;
  watch.slices.push({ atMs: atEpochMs - performance.timeOrigin, frames });
  if (watch.slices.length > 4) watch.slices.shift();
}

function onSlowReaction(task: PromiseRecord | undefined, startMs: number, durationMs: number): void {
  if (!watch) return;
  watch.coveredUntil = startMs + durationMs;
  // We are inside a promise hook: build the report (profiler, source maps) outside it.
  setImmediate(() => {
    if (watch) onSlow(watch, task, startMs, durationMs);
  });
}

/** Analyses a slow turn: start-up goes to its own report; the rest is reported or counted (rate limit). */
function onSlow(w: Watch, task: PromiseRecord | undefined, startMs: number, durationMs: number): void {
  // A turn that was (mostly) loopwatch's own report building is not the program's.
  if (w.ownUntil >= startMs + durationMs / 2) return;
  const hot = w.profiler.hottest(startMs - 1, startMs + durationMs + 1);
  if (hot.attribution === 'module-loading') {
    noteStartUp(w, hot, durationMs);
    w.ownUntil = performance.now();
    return;
  }
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
    w.ownUntil = performance.now();
    return;
  }
  w.lastReportAt = now;
  onReported?.(performance.timeOrigin + now + REPORT_GAP_MS);
  // The watchdog's pause of this turn (if any) was posted while it ran: it is in the port already.
  pullSlices?.();
  const r = slowReport(w, task, startMs, durationMs, hot);
  const s = w.suppressed;
  w.suppressed = undefined;
  w.emit(s ? { ...r, message: `${r.message}${suppressedNote(s)}` } : r);
  w.ownUntil = performance.now();
}

function noteStartUp(w: Watch, hot: HotStack, durationMs: number): void {
  const s = w.startUp;
  s.turns++;
  s.totalMs += durationMs;
  s.longestMs = Math.max(s.longestMs, durationMs);
  for (const [file, samples] of hot.modules ?? []) s.modules.set(toPath(file), (s.modules.get(toPath(file)) ?? 0) + samples * w.sampleMs);
  if (s.reported) return;
  if (s.timer) clearTimeout(s.timer);
  // One report, once loading has quietened down (or at exit).
  s.timer = setTimeout(() => emitStartUp(w), REPORT_GAP_MS);
  s.timer.unref();
}

function emitStartUp(w: Watch): void {
  const s = w.startUp;
  if (s.reported || s.turns === 0) return;
  s.reported = true;
  if (s.timer) clearTimeout(s.timer);
  const modules = [...s.modules].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([file, ms]) => ({ file, ms: Math.round(ms) }));
  const top = modules[0];
  w.emit({
    kind: 'start-up',
    message:
      `loading modules took ${Math.round(s.totalMs)} ms in ${s.turns} slow turn${s.turns === 1 ? '' : 's'} (longest ${Math.round(s.longestMs)} ms)` +
      (top ? `; most in ${shortLocation({ functionName: '', file: top.file, line: 0, column: 0 }).replace(/:0:0$/, '')} (${top.ms} ms)` : ''),
    time: Date.now(),
    durationMs: Math.round(s.totalMs),
    attribution: 'module-loading',
    modules,
  });
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
    attribution: 'no-sample',
    stack: [],
  });
}

function flushOnExit(): void {
  if (!watch) return;
  // The turn that ends the program (a slow callback, then nothing left to do) is never followed by a tick.
  watch.tick();
  emitStartUp(watch);
  emitSummary(watch);
}

function withOrigin(f: Frame): Frame {
  const origin = originOf(f.file);
  return origin === 'user' ? f : { ...f, origin };
}

function hotFrameToFrame(f: HotFrame): Frame {
  const line = f.hotLine ?? f.lineNumber + 1;
  // A hot line carries no column: the line's first code column is found at resolution.
  return withOrigin(resolveFrame({ functionName: f.functionName || '<anonymous>', file: f.url, line, column: f.hotLine !== undefined ? 0 : f.columnNumber + 1 }));
}

function rawToFrame(f: RawFrame): Frame {
  return withOrigin(resolveFrame({ functionName: f.functionName || '<anonymous>', file: f.url, line: f.line0 + 1, column: f.column0 + 1 }));
}

const ATTRIBUTION_TEXT: Record<Attribution, string> = {
  code: '',
  'blocking-call': '',
  'garbage-collection': 'mostly in garbage collection (no code stood out in the samples)',
  compilation: 'mostly compiling code',
  'module-loading': 'loading modules',
  native: 'in native code or V8 itself (no JavaScript frame in the samples)',
  'no-sample': 'no profiler sample fell in this turn (too short, or the profiler was busy)',
};

function slowReport(w: Watch, task: PromiseRecord | undefined, startMs: number, durationMs: number, hot: HotStack): Report {
  const endMs = startMs + durationMs;
  let stack: Frame[] = [];
  let attribution: Attribution = hot.attribution;
  const blocking = lastBlockingCall();
  const slice = w.slices.find((s) => s.atMs >= startMs - 1 && s.atMs <= endMs + 1);
  // A blocking call that took most of this turn names the exact line, column included.
  if (blocking && blocking.endMs >= startMs && blocking.endMs <= endMs + 1 && blocking.endMs - blocking.startMs >= durationMs / 2) {
    stack = userFrames(blocking.sites, STACK_LIMIT);
    attribution = 'blocking-call';
  } else if (slice && (hot.attribution === 'code' || hot.attribution === 'no-sample')) {
    stack = slice.frames.filter((f) => !isOwnFile(f.url)).slice(0, STACK_LIMIT + 4).map(rawToFrame);
    attribution = 'code';
  } else if (hot.frames.length > 0) {
    stack = hot.frames.map(hotFrameToFrame);
  }
  stack = foldToUser(stack);
  const culprit = stack.find((f) => f.origin === undefined) ?? stack[0];
  const ms = Math.round(durationMs);
  const who = task && !task.internal ? `task ${task.name}` : 'a callback';
  let where = '';
  if (culprit) {
    where = ` in ${culprit.functionName} (${formatLocation(culprit)})`;
    const leaf = stack[0];
    if (leaf && leaf !== culprit) where += `, inside ${leaf.functionName} (${path.basename(leaf.file)}:${leaf.line})`;
  } else if (ATTRIBUTION_TEXT[attribution]) where = `, ${ATTRIBUTION_TEXT[attribution]}`;
  return {
    kind: 'slow-callback',
    message: `Executing ${who} took ${ms} ms${where}`,
    time: Date.now(),
    durationMs: Math.round(durationMs * 10) / 10,
    attribution,
    ...(task && !task.internal ? { task: taskRef(task), createdAt: createdAtOf(task) } : {}),
    ...(culprit ? { location: formatLocation(culprit), functionName: culprit.functionName } : {}),
    stack,
  };
}

/** At most {@link STACK_LIMIT} frames, but always down to the first of the user's own. */
function foldToUser(stack: Frame[]): Frame[] {
  if (stack.length <= STACK_LIMIT) return stack;
  const kept = stack.slice(0, STACK_LIMIT);
  if (!kept.some((f) => f.origin === undefined)) {
    const mine = stack.slice(STACK_LIMIT).find((f) => f.origin === undefined);
    if (mine) kept.push(mine);
  }
  return kept;
}

export function unwatchSlow(): void {
  if (!watch) return;
  clearInterval(watch.ticker);
  if (watch.summaryTimer) clearTimeout(watch.summaryTimer);
  if (watch.startUp.timer) clearTimeout(watch.startUp.timer);
  process.off('exit', flushOnExit);
  watch.profiler.close();
  if (isTracking()) setSlowReaction(undefined);
  watch = undefined;
}
