/**
 * Turning instruments on and off. `index.ts` is the public face; this module owns the state, so
 * `disable()` can undo exactly what was enabled.
 */
import type { Report, Sink } from './model/report.js';
import { formatLocation } from './model/report.js';
import type { Format, LoopwatchOptions } from './options.js';
import { DEFAULT_SLOW_MS } from './options.js';
import { ReportBus, type ReportPolicy } from './reporting.js';
import { setIgnoredPaths } from './model/frames.js';
import { trackLineStarts, untrackLineStarts } from './sinks/stderr.js';
import { textSink } from './sinks/text.js';
import { jsonSink } from './sinks/json.js';
import { currentTask, startTaskTracking, stopTaskTracking } from './instrument/tasks.js';
import { installCurrentTaskProbe, uninstallCurrentTaskProbe } from './instrument/current-task.js';
import { createdAtOf } from './model/describe.js';
import { collectedReport } from './instrument/collected.js';
import { unwatchUnhandled, watchUnhandled } from './instrument/unhandled.js';
import { unwatchBlockingCalls, watchBlockingCalls } from './instrument/blocking.js';
import { armReactionDetector, noteSlice, setReportGate, unwatchSlow, watchSlow } from './instrument/slow.js';
import { buildTaskDump } from './instrument/dump.js';
import { startTaskMonitor } from './instrument/monitor.js';
import { assertMainThread } from './instrument/thread-guard.js';
import { startStallWatchdog } from './instrument/watchdog.js';
import { monitorLoopLag } from './instrument/loop-lag.js';

/** Options shared by `enableDebug`, `enableProduction` and the environment. */
export interface EnableOptions extends ReportPolicy {
  /** Write a summary (counts by kind and by site) at exit when anything was reported. Default true. */
  readonly summary?: boolean;
  /** Slow-callback threshold, ms. Default 100 (asyncio's). */
  readonly slowMs?: number;
  /** Stall watchdog threshold, ms. Default max(1000, 5 × slowMs). */
  readonly stallMs?: number;
  /** Report format on stderr. Default text. Ignored when `sink` is given. */
  readonly format?: Format;
  /** Where reports go instead of stderr. */
  readonly sink?: Sink;
  /** Periodic task dump (debug) and loop-lag interval, ms. */
  readonly monitorMs?: number;
  /** `host:port` of StatsD for loop-lag figures. */
  readonly statsd?: string;
}

type Stopper = () => void | Promise<void>;
const stoppers: Stopper[] = [];
let mode: 'off' | 'debug' | 'production' = 'off';
const bus = new ReportBus();
const emit = (r: Report): void => bus.emit(r);
const writeSummary = (): void => bus.writeSummary();

export function activeMode(): typeof mode {
  return mode;
}

function useSink(opts: EnableOptions): void {
  if (opts.sink) bus.sink = opts.sink;
  else if (opts.format || !bus.sink) bus.sink = opts.format === 'json' ? jsonSink() : textSink();
  bus.configure(opts);
  setIgnoredPaths(opts.ignore ?? []);
  if (!opts.sink) {
    trackLineStarts();
    stoppers.push(untrackLineStarts);
  }
}

/** Last of the `exit` listeners: instruments flush their last reports (a slow turn right before exit) first. */
function armSummary(opts: EnableOptions): void {
  if (opts.summary === false) return;
  process.on('exit', writeSummary);
  stoppers.push(() => void process.off('exit', writeSummary));
}

function onSigusr2(): void {
  emit(buildTaskDump());
}

function startProductionSet(opts: EnableOptions, slowMs: number, sampleIntervalUs: number): void {
  watchSlow({ thresholdMs: slowMs, sampleIntervalUs }, emit);
  stoppers.push(unwatchSlow);
  // The heartbeat runs as often as the slow-callback ticker, so a slow turn is seen (and paused once
  // for its exact frames) while it still runs.
  const watchdog = startStallWatchdog({
    thresholdMs: opts.stallMs ?? Math.max(1000, 5 * slowMs),
    heartbeatMs: Math.max(5, Math.min(50, slowMs / 4)),
    sliceMs: slowMs,
    onSlice: noteSlice,
    emit,
    format: opts.format === 'json' ? 'json' : 'text',
  });
  stoppers.push(() => watchdog.stop());
  setReportGate(
    (at) => watchdog.holdSlices(at),
    () => watchdog.drainSlices(),
  );
  stoppers.push(() => setReportGate(undefined));
  if (opts.statsd !== undefined || opts.monitorMs !== undefined) {
    const lag = monitorLoopLag({
      ...(opts.monitorMs === undefined ? {} : { intervalMs: opts.monitorMs }),
      ...(opts.statsd === undefined ? {} : { statsd: opts.statsd }),
      emit,
    });
    stoppers.push(() => lag.stop());
  }
}

/**
 * Full debug mode (the `PYTHONASYNCIODEBUG=1` twin): task tracking and dumps, unhandled task errors
 * with their source traceback, destroyed-pending and never-awaited tasks, slow callbacks, blocking
 * calls on the main thread, and the production set (stall watchdog, loop lag when configured).
 */
export function enableDebug(opts: EnableOptions = {}): void {
  assertMainThread('enableDebug');
  if (mode !== 'off') void Promise.all(disableSync());
  process.setSourceMapsEnabled(true);
  useSink(opts);
  const slowMs = opts.slowMs ?? DEFAULT_SLOW_MS;
  startTaskTracking({
    onCollected: (rec) => {
      const r = collectedReport(rec);
      if (r) emit(r);
    },
  });
  stoppers.push(stopTaskTracking);
  installCurrentTaskProbe(() => {
    const t = currentTask();
    return t && !t.internal ? { id: t.id, name: t.name, createdAt: createdAtOf(t).map(formatLocation) } : undefined;
  });
  stoppers.push(uninstallCurrentTaskProbe);
  watchUnhandled(emit);
  stoppers.push(unwatchUnhandled);
  watchBlockingCalls(emit);
  stoppers.push(unwatchBlockingCalls);
  // 5 ms samples: ≥ 20 in any slow turn, enough to name its function and line; 1 ms cost a few % more.
  startProductionSet(opts, slowMs, 5_000);
  armReactionDetector();
  process.on('SIGUSR2', onSigusr2);
  stoppers.push(() => void process.off('SIGUSR2', onSigusr2));
  if (opts.monitorMs !== undefined) {
    const m = startTaskMonitor({ intervalMs: opts.monitorMs }, emit);
    stoppers.push(() => m.stop());
  }
  armSummary(opts);
  mode = 'debug';
}

/**
 * The cheap set for production (the aiodebug twin): slow callbacks from a late-ticker plus a coarse
 * sampling profiler, the stall watchdog, and loop lag when `statsd` or `monitorMs` is set.
 */
export function enableProduction(opts: EnableOptions = {}): void {
  assertMainThread('enableProduction');
  if (mode !== 'off') void Promise.all(disableSync());
  process.setSourceMapsEnabled(true);
  useSink(opts);
  startProductionSet(opts, opts.slowMs ?? DEFAULT_SLOW_MS, 10_000);
  armSummary(opts);
  mode = 'production';
}

/** Emits a report through the configured sink (text on stderr unless configured). */
export function report(r: Report): void {
  bus.sink ??= textSink();
  emit(r);
}

/** What `loopwatch/register` calls with the options read from the environment. */
export function enableFromOptions(opts: LoopwatchOptions): void {
  const common: EnableOptions = {
    slowMs: opts.slowMs,
    format: opts.format,
    ...(opts.monitorMs === undefined ? {} : { monitorMs: opts.monitorMs }),
    ...(opts.statsd === undefined ? {} : { statsd: opts.statsd }),
    ...(opts.kinds ? { kinds: opts.kinds } : {}),
    ...(opts.ignore ? { ignore: opts.ignore } : {}),
    ...(opts.silence ? { silence: opts.silence } : {}),
    ...(opts.summary === false ? { summary: false } : {}),
  };
  if (opts.mode === 'debug') enableDebug(common);
  else if (opts.mode === 'production') enableProduction(common);
}

function disableSync(): Promise<void>[] {
  const pending: Promise<void>[] = [];
  for (const stop of stoppers.splice(0).reverse()) {
    try {
      const r = stop();
      if (r) pending.push(r);
    } catch {
      // Keep undoing the rest.
    }
  }
  mode = 'off';
  return pending;
}

/** Turns every instrument off and restores what loopwatch patched. */
export async function disable(): Promise<void> {
  await Promise.all(disableSync());
  const sink = bus.sink;
  bus.sink = undefined;
  bus.reset();
  await sink?.close?.();
}
