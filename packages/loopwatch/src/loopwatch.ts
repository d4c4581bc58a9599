/**
 * One loopwatch: every instrument's state, owned by one object (as asyncio keeps `_debug` and
 * `slow_callback_duration` on the loop). `lifecycle.ts` holds the process's instance for the
 * functional API and `register`; the unit tier builds its own on fake time.
 *
 * Turning a mode on starts instruments and pushes their stoppers; `disable()` runs them in reverse,
 * so exactly what was enabled is undone.
 */
import { formatLocation, type Report, type Sink, type TaskDumpReport } from './model/report.js';
import { DEFAULT_SLOW_MS, type Format } from './options.js';
import { ReportBus, type ReportPolicy } from './reporting.js';
import { setIgnoredPaths } from './source/frames.js';
import { createdAtOf } from './instrument/describe.js';
import { trackLineStarts, untrackLineStarts } from './sinks/stderr.js';
import { textSink } from './sinks/text.js';
import { jsonSink } from './sinks/json.js';
import { realClock, type Clock } from './instrument/clock.js';
import { recordOf, TaskTracker } from './instrument/tasks.js';
import { WorkTable } from './instrument/work.js';
import { installLockTable } from './instrument/locks.js';
import { installCurrentTaskProbe, uninstallCurrentTaskProbe } from './instrument/current-task.js';
import { collectedReport } from './instrument/collected.js';
import { UnhandledWatcher } from './instrument/unhandled.js';
import { BlockingCallWatcher } from './instrument/blocking.js';
import { startAbortChains, stopAbortChains } from './instrument/abort-chain.js';
import { SlowCallbackWatcher, type WindowSampler } from './instrument/slow.js';
import { WindowProfiler } from './instrument/profiler.js';
import { buildTaskDump, type DumpOptions } from './instrument/dump.js';
import { startTaskMonitor } from './instrument/monitor.js';
import { startStallWatchdog, type StallWatchdog } from './instrument/watchdog.js';
import { StallFeed } from './instrument/watchdog-feed.js';
import { monitorLoopLagTo } from './loop-lag-outputs.js';
import { AttachEndpoint, type AttachSetting } from './attach/endpoint.js';
import { Answers } from './attach/answers.js';
import { errorText } from './model/error-text.js';
import { writeStderr } from './sinks/stderr.js';
import type { Recorder } from './record/recorder.js';
import { openRecording } from './recording.js';
import { threadCpuMs } from './instrument/cpu-time.js';

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
  /** Record the timeline to this file (`LOOPWATCH_RECORD`): `loopwatch replay|export <file>`. */
  readonly record?: string;
  /** The recording's size cap, bytes (a ring: the oldest is overwritten). Default 64 MiB. */
  readonly recordMaxBytes?: number;
  /** Periodic task dump (debug) and loop-lag interval, ms. */
  readonly monitorMs?: number;
  /** `host:port` of StatsD for loop-lag figures. */
  readonly statsd?: string;
  /**
   * Open the attach endpoint (`loopwatch ps|top <pid>`): `true`/`'unix'` for the owner-only socket,
   * `{ tcp: { host, port } }` for TCP with a token. Default off from code; on under `register`.
   */
  readonly attach?: AttachSetting;
}

export type Mode = 'off' | 'debug' | 'production';
type Stopper = () => void | Promise<void>;

/** What a {@link Loopwatch} is built from; the defaults are the real thing. */
export interface LoopwatchParts {
  readonly clock?: Clock;
  /** The sampling profiler behind slow-callback attribution (interval in µs). */
  readonly sampler?: (intervalUs: number) => WindowSampler;
  /** Start the stall watchdog (a worker thread) with the production set. Default true. */
  readonly watchdog?: boolean;
}

export class Loopwatch {
  readonly bus = new ReportBus();
  readonly clock: Clock;
  readonly tasks: TaskTracker;
  /** Units of work named through `trackWork` (both modes). */
  readonly work: WorkTable;
  readonly stalls = new StallFeed();
  slow: SlowCallbackWatcher | undefined;
  blocking: BlockingCallWatcher | undefined;
  watchdog: StallWatchdog | undefined;
  attach: AttachEndpoint | undefined;
  #recorder: Recorder | undefined;
  #mode: Mode = 'off';
  /** Open `startup()` windows: a program's asynchronous start (opening files, loading config). */
  #startupWindows = 0;
  readonly #stoppers: Stopper[] = [];
  readonly #parts: LoopwatchParts;

  constructor(parts: LoopwatchParts = {}) {
    this.#parts = parts;
    this.clock = parts.clock ?? realClock;
    this.tasks = new TaskTracker(this.clock);
    this.work = new WorkTable(this.clock, () => this.tasks.current(), recordOf);
  }

  get mode(): Mode {
    return this.#mode;
  }

  /** Emits through the bus (kinds, ignore, silence, one per site); a stall is also recorded. Nothing: nothing. */
  readonly emit = (r: Report | undefined): void => {
    if (r === undefined) return;
    if (r.kind === 'stall' && this.#recorder && r.durationMs !== undefined)
      this.#recorder.stall(
        r.durationMs,
        r.functionName === undefined ? undefined : `${r.functionName} (${r.location ?? '?'})`,
      );
    this.bus.emit(r);
  };

  /** Emits through the configured sink, text on stderr when none is set. */
  report(r: Report): void {
    this.bus.sink ??= textSink();
    this.emit(r);
  }

  dump(opts: DumpOptions = {}): TaskDumpReport {
    return buildTaskDump(this.tasks, opts);
  }

  /** Runs `fn` as start-up: its blocking calls are not `thread-affinity` reports. */
  async startup<T>(fn: () => Promise<T>): Promise<T> {
    this.#startupWindows += 1;
    try {
      return await fn();
    } finally {
      this.#startupWindows -= 1;
    }
  }

  /**
   * Full debug mode (the `PYTHONASYNCIODEBUG=1` twin): task tracking and dumps, unhandled task errors
   * with their source traceback, destroyed-pending and never-awaited tasks, slow callbacks, blocking
   * calls on the main thread, and the production set (stall watchdog, loop lag when configured).
   */
  enableDebug(opts: EnableOptions = {}): void {
    this.#restart(opts);
    const slowMs = opts.slowMs ?? DEFAULT_SLOW_MS;
    this.tasks.start({ onCollected: (rec) => this.emit(collectedReport(rec)) });
    this.#stoppers.push(() => this.tasks.stop());
    installCurrentTaskProbe(() => {
      const t = this.tasks.current();
      return t && !t.internal ? { id: t.id, name: t.name, createdAt: createdAtOf(t).map(formatLocation) } : undefined;
    });
    this.#stoppers.push(uninstallCurrentTaskProbe);
    this.#stoppers.push(installLockTable(() => this.tasks.current())); // only tracked tasks hold locks
    const unhandled = new UnhandledWatcher(this.emit);
    unhandled.start();
    this.#stoppers.push(() => unhandled.stop());
    startAbortChains(); // who aborted what: before any task can be, so every reason is noted
    this.#stoppers.push(stopAbortChains);
    const blocking = new BlockingCallWatcher({
      emit: this.emit,
      currentTask: () => this.tasks.current(),
      inStartup: () => this.#startupWindows > 0,
      leftAlone: (apis) => void (this.bus.notWatched = apis),
    });
    blocking.start();
    this.blocking = blocking;
    this.#stoppers.push(() => {
      blocking.stop();
      this.blocking = undefined;
    });
    // 5 ms samples: ≥ 20 in any slow turn, enough to name its function and line.
    this.#startProductionSet(opts, slowMs, 5_000);
    this.#trackWork(true);
    this.#record(opts, 'debug');
    const onSigusr2 = (): void => this.emit(this.dump());
    process.on('SIGUSR2', onSigusr2);
    this.#stoppers.push(() => void process.off('SIGUSR2', onSigusr2));
    if (opts.monitorMs !== undefined) {
      const m = startTaskMonitor(this.tasks, { intervalMs: opts.monitorMs }, this.emit);
      this.#stoppers.push(() => m.stop());
    }
    this.#armSummary(opts);
    this.#mode = 'debug';
  }

  /**
   * The cheap set for production (the aiodebug twin): slow callbacks from a late-ticker plus a coarse
   * sampling profiler, the stall watchdog, and loop lag when `statsd` or `monitorMs` is set.
   */
  enableProduction(opts: EnableOptions = {}): void {
    this.#restart(opts);
    // 20 ms samples: a slow turn (≥ 100 ms) still gets ≥ 5, and the watchdog's pause gives its exact
    // frames; 10 ms cost about 2 points more CPU per request (bench/http-cpu.ts, README "Overhead").
    // Sampling begins after the first turn (a process's start pays no profiler start-up), unless the
    // start-up report, which names the modules that took the time from those samples, is asked for.
    this.#startProductionSet(opts, opts.slowMs ?? DEFAULT_SLOW_MS, 20_000, !opts.kinds?.includes('start-up'));
    this.#trackWork(false);
    this.#record(opts, 'production');
    this.#armSummary(opts);
    this.#mode = 'production';
  }

  /** Starts the slow-callback watcher alone (`watchSlowCallbacks`). */
  watchSlow(thresholdMs: number, sampleIntervalUs = 2_000, deferSampling = false): SlowCallbackWatcher {
    this.unwatchSlow();
    const sampler =
      this.#parts.sampler ?? ((us: number): WindowSampler => new WindowProfiler(us, undefined, deferSampling));
    const slow = new SlowCallbackWatcher({
      thresholdMs,
      sampleMs: sampleIntervalUs / 1000,
      clock: this.clock,
      sampler: sampler(sampleIntervalUs),
      emit: this.emit,
      lastBlockingCall: () => this.blocking?.last,
      onReported: (at) => this.watchdog?.holdSlices(at),
      pullSlices: () => this.watchdog?.drainSlices(),
      onTurn: (r) => this.#recorder?.slowTurn(r),
      cpuMs: threadCpuMs,
    });
    this.slow = slow;
    process.on('exit', slow.flush);
    if (this.tasks.tracking) this.tasks.setSlowReaction(thresholdMs, slow.onSlowReaction);
    return slow;
  }

  unwatchSlow(): void {
    const slow = this.slow;
    if (!slow) return;
    this.slow = undefined;
    process.off('exit', slow.flush);
    slow.stop();
    if (this.tasks.tracking) this.tasks.setSlowReaction(undefined);
  }

  /** `trackWork` reaches this instance; where each phase was set is captured in debug mode only. */
  #trackWork(captureSites: boolean): void {
    const work = this.work;
    work.captureSites = captureSites;
    work.install();
    this.#stoppers.push(() => {
      work.uninstall();
      work.captureSites = false;
    });
  }

  /** `record`: the timeline to a ring file; tasks (debug mode), work units, slow turns, stalls, loop lag. */
  #record(opts: EnableOptions, mode: 'debug' | 'production'): void {
    if (opts.record === undefined) return;
    const rec = openRecording(this, opts.record, opts.recordMaxBytes, mode);
    if (!rec) return;
    this.#recorder = rec;
    if (this.tasks.tracking) this.tasks.observer = rec;
    this.work.observer = rec;
    this.#stoppers.push(() => {
      this.tasks.observer = undefined;
      this.work.observer = undefined;
      this.#recorder = undefined;
      return rec.close();
    });
  }

  #restart(opts: EnableOptions): void {
    if (this.#mode !== 'off') void Promise.all(this.#disableSync());
    process.setSourceMapsEnabled(true);
    this.#useSink(opts);
  }

  #useSink(opts: EnableOptions): void {
    const bus = this.bus;
    if (opts.sink) bus.sink = opts.sink;
    else if (opts.format || !bus.sink) bus.sink = opts.format === 'json' ? jsonSink() : textSink();
    bus.configure(opts);
    setIgnoredPaths(opts.ignore ?? []);
    if (!opts.sink) {
      trackLineStarts();
      this.#stoppers.push(untrackLineStarts);
    }
  }

  /** Last of the `exit` listeners: instruments flush their last reports (a slow turn right before exit) first. */
  #armSummary(opts: EnableOptions): void {
    if (opts.summary === false) return;
    const writeSummary = (): void => this.bus.writeSummary();
    process.on('exit', writeSummary);
    this.#stoppers.push(() => void process.off('exit', writeSummary));
  }

  #startProductionSet(opts: EnableOptions, slowMs: number, sampleIntervalUs: number, deferSampling = false): void {
    const slow = this.watchSlow(slowMs, sampleIntervalUs, deferSampling);
    this.#stoppers.push(() => this.unwatchSlow());
    if (this.#parts.watchdog !== false) {
      // The heartbeat runs as often as the slow-callback ticker, so a slow turn is seen (and paused once
      // for its exact frames) while it still runs.
      const watchdog = startStallWatchdog({
        thresholdMs: opts.stallMs ?? Math.max(1000, 5 * slowMs),
        heartbeatMs: Math.max(5, Math.min(50, slowMs / 4)),
        sliceMs: slowMs,
        onSlice: (at, frames) => slow.noteSlice(at, frames),
        emit: this.emit,
        format: opts.format === 'json' ? 'json' : 'text',
        reportPolicy: this.bus.workerPolicy(),
        feed: this.stalls,
      });
      this.watchdog = watchdog;
      this.#stoppers.push(() => {
        this.watchdog = undefined;
        return watchdog.stop();
      });
    }
    if (opts.attach) this.#openAttach(opts.attach);
    if (opts.statsd !== undefined || opts.monitorMs !== undefined) {
      const lag = monitorLoopLagTo({
        ...(opts.monitorMs === undefined ? {} : { intervalMs: opts.monitorMs }),
        ...(opts.statsd === undefined ? {} : { statsd: opts.statsd }),
        emit: this.emit,
        feed: this.stalls,
      });
      this.#stoppers.push(() => lag.stop());
    }
  }

  /**
   * The attach endpoint rides on the watchdog's heartbeat (it must know when the loop is blocked). Its
   * worker is a whole isolate to boot: started after the first turn, like the watchdog's, so a program
   * that is over in its first turn (a CLI under NODE_OPTIONS) never pays for it.
   */
  #openAttach(setting: AttachSetting): void {
    const watchdog = this.watchdog;
    if (!watchdog) return;
    const answers = new Answers(this);
    const starter = setImmediate(() => {
      try {
        this.attach = new AttachEndpoint({
          setting,
          heartbeat: watchdog.heartbeat,
          heartbeatMs: watchdog.heartbeatMs,
          answer: (req) => answers.answer(req),
          onNote: (m) => writeStderr(`${m}\n`),
        });
      } catch (e) {
        // An unsafe socket directory (or none) costs the endpoint, never the program.
        writeStderr(`${errorText(e)}\n`);
      }
    });
    starter.unref();
    this.#stoppers.push(() => {
      clearImmediate(starter);
      const endpoint = this.attach;
      this.attach = undefined;
      return endpoint?.stop();
    });
  }

  #disableSync(): Promise<void>[] {
    const pending: Promise<void>[] = [];
    for (const stop of this.#stoppers.splice(0).reverse()) {
      try {
        const r = stop();
        if (r) pending.push(r);
      } catch {
        // Keep undoing the rest.
      }
    }
    this.#mode = 'off';
    return pending;
  }

  /** Turns every instrument off and restores what loopwatch patched. */
  async disable(): Promise<void> {
    await Promise.all(this.#disableSync());
    const sink = this.bus.sink;
    this.bus.sink = undefined;
    this.bus.reset();
    await sink?.close?.();
  }
}
