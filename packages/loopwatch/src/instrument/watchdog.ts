/**
 * The stall watchdog (report kind `stall`, production mode): the main thread writes a heartbeat into
 * a SharedArrayBuffer on a cheap unref'd timer; a worker thread notices when it stops, while the main
 * thread is still blocked, and captures the blocking frame and task through the inspector.
 *
 * One report per stall, emitted when the stall ends, so `durationMs` is its full length (a blocked
 * thread could not print it earlier anyway: the sinks run on the main thread).
 */
import { MessageChannel, receiveMessageOnPort, Worker } from 'node:worker_threads';
import inspector from 'node:inspector';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Frame, Report, StallReport } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import {
  type RawFrame,
  type StallMessage,
  type WatchdogMessage,
  type WatchdogWorkerData,
  type WorkerReportPolicy,
} from './watchdog-protocol.js';
import { isOwnFile, resolveFrame } from '../source/frames.js';
import { originOf } from '../model/paths.js';
import { defaultStallFeed, type StallEvent, type StallFeed } from './watchdog-feed.js';
import { Heartbeat } from './heartbeat.js';
import { realClock } from './clock.js';

export type { StallEvent } from './watchdog-feed.js';
export { subscribeStalls } from './watchdog-feed.js';

/** Options of {@link startStallWatchdog}. */
export interface StallWatchdogOptions {
  /** A loop turn that makes no progress for longer than this is a stall, ms. */
  readonly thresholdMs: number;
  /** Receives one `stall` report per stall, on the main thread, after the stall ended. */
  readonly emit: (r: Report) => void;
  /**
   * Called on the main thread as soon as the loop runs again, with the measured stall (before the
   * report, which waits for the worker). The loop-lag monitor also gets these via `subscribeStalls`.
   */
  readonly onStall?: (e: StallEvent) => void;
  /** Heartbeat period, ms; default a quarter of the threshold, within 10..250. */
  readonly heartbeatMs?: number;
  /** Use the inspector to find the blocking frame; default true. Without it, stalls are timed only. */
  readonly captureFrames?: boolean;
  /** Frames kept per stack; default 10. */
  readonly stackLimit?: number;
  /**
   * A stall still going on after this long is reported by the worker itself, straight to stderr, so
   * an infinite loop or a hung native call is reported too. Default max(5000, 5 × thresholdMs); 0 = off.
   */
  readonly stillBlockedMs?: number;
  /** Format of that early report. Default text. */
  readonly format?: 'text' | 'json';
  /** What the still-blocked report written from the worker honours and carries (default: every kind, no stamp). */
  readonly reportPolicy?: WorkerReportPolicy;
  /** One-line notes (e.g. the inspector is in use); default `process.emitWarning`. */
  readonly onNote?: (message: string) => void;
  /**
   * Slow-callback threshold: a turn running longer is paused once while it runs (at most once a
   * second) and its raw frames handed to `onSlice`. Default 0 (off).
   */
  readonly sliceMs?: number;
  readonly onSlice?: (atEpochMs: number, frames: readonly RawFrame[]) => void;
  /** Where measured stalls are published (the loop-lag monitor listens); default the shared feed. */
  readonly feed?: StallFeed;
}

/** A running watchdog. */
export interface StallWatchdog {
  /** Stops the heartbeat and terminates the worker. */
  stop(): Promise<void>;
  /** No pause of a slow turn before this epoch ms (the slow-callback report budget). */
  holdSlices(untilEpochMs: number): void;
  /** Hands every slice the worker has posted to `onSlice`, synchronously (works at exit too). */
  drainSlices(): void;
  /** The shared heartbeat cell (epoch ms of the last beat), for other workers that must know the loop is blocked. */
  readonly heartbeat: SharedArrayBuffer;
  readonly heartbeatMs: number;
  /** Loop lag from the heartbeat's lateness over the last `windowMs`. */
  lag(windowMs: number): { p50Ms: number; p99Ms: number; maxMs: number; samples: number };
}

/** loopwatch's own compiled sources: never the culprit. */
const OWN_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url))) + path.sep;

/** The worker's compiled file; from sources (vitest), the build output next to them. */
function workerUrl(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts'))
    return new URL(here.replace(/\/src\/instrument\/watchdog\.ts$/, '/dist/src/watchdog-thread.js'));
  return new URL('../watchdog-thread.js', here);
}

function isUserFrame(f: Frame): boolean {
  return path.isAbsolute(f.file) && !f.file.startsWith(OWN_DIR) && originOf(f.file) === 'user';
}

/** A paused stack resolved here, on the main thread, where loaders' (tsx's) source maps are known. */
function resolveRaw(frames: readonly RawFrame[], limit: number): Frame[] {
  return frames
    .filter((f) => !isOwnFile(f.url))
    .slice(0, limit)
    .map((f) => {
      const r = resolveFrame({
        functionName: f.functionName || '<anonymous>',
        file: f.url,
        line: f.line0 + 1,
        column: f.column0 + 1,
      });
      const origin = originOf(r.file);
      return origin === 'user' ? r : { ...r, origin };
    });
}

/** Parses `fn (file:line:col)` or `file:line:col`, the current-task probe's `createdAt` strings. */
function parseFrame(s: string): Frame | undefined {
  const m = /^(?:(.*?) \()?(.+):(\d+):(\d+)\)?$/.exec(s.trim());
  if (!m) return undefined;
  return { functionName: m[1] ?? '<anonymous>', file: m[2] ?? s, line: Number(m[3]), column: Number(m[4]) };
}

/** Builds the `stall` report from the worker's findings. */
export function stallReport(m: StallMessage, durationMs: number, time = Date.now()): StallReport {
  const ms = Math.round(durationMs);
  const paused = m.pausedRaw && m.pausedRaw.length > 0 ? resolveRaw(m.pausedRaw, 10) : m.pausedStack;
  const stack = m.capture === 'sampled' ? m.sampledStack : paused;
  const userIdx = stack.findIndex(isUserFrame);
  // No frame of the user's: a library's is the culprit rather than node's (culpritOf's rule).
  const culprit = userIdx >= 0 ? stack[userIdx] : (stack.find((f) => originOf(f.file) === 'library') ?? stack[0]);
  const createdAt = m.task?.createdAt.map(parseFrame).filter((f): f is Frame => f !== undefined);
  return {
    kind: 'stall',
    time,
    durationMs: ms,
    ...(culprit ? { location: formatLocation(culprit), functionName: culprit.functionName } : {}),
    ...(stack.length > 0 ? { stack } : {}),
    ...(m.task ? { task: { id: m.task.id, name: m.task.name } } : {}),
    ...(createdAt && createdAt.length > 0 ? { createdAt } : {}),
    stall: {
      capture: m.capture,
      detectedAfterMs: m.detectedAfterMs,
      ...(m.pauseLatencyMs === undefined ? {} : { pauseLatencyMs: m.pauseLatencyMs }),
      ...(m.sampledStack.length > 0 ? { sampledStack: m.sampledStack } : {}),
      ...(m.note ? { note: m.note } : {}),
    },
  };
}

/**
 * Starts the stall watchdog: near-zero cost while nothing stalls (one timer tick per heartbeat and an
 * idle worker). The worker is unref'd and never keeps the process alive.
 */
export function startStallWatchdog(opts: StallWatchdogOptions): StallWatchdog {
  const thresholdMs = opts.thresholdMs;
  const feed = opts.feed ?? defaultStallFeed;
  const heartbeatMs = Math.round(opts.heartbeatMs ?? Math.min(250, Math.max(10, thresholdMs / 4)));
  const note = opts.onNote ?? ((message: string) => process.emitWarning(message, 'LoopwatchWarning'));
  let captureFrames = opts.captureFrames ?? true;
  if (captureFrames && inspector.url() !== undefined) {
    // Someone is debugging this process: pausing it under them would be rude and confusing.
    captureFrames = false;
    note('loopwatch: the inspector is in use (--inspect); stalls are timed but their frames are not captured');
  }

  // [0] heartbeat, [1] no slow-turn pause before (epoch ms).
  const sab = new SharedArrayBuffer(2 * BigInt64Array.BYTES_PER_ELEMENT);
  const beatCell = new BigInt64Array(sab);
  const heart = new Heartbeat({
    clock: realClock,
    heartbeatMs,
    thresholdMs,
    feed,
    cell: beatCell,
    ...(opts.onStall ? { onStall: opts.onStall } : {}),
  });

  const slices = new MessageChannel();
  slices.port1.unref();
  const data: WatchdogWorkerData = {
    heartbeat: sab,
    thresholdMs,
    heartbeatMs,
    captureFrames,
    stackLimit: opts.stackLimit ?? 10,
    ownDir: OWN_DIR,
    stillBlockedMs: opts.stillBlockedMs ?? Math.max(5000, 5 * thresholdMs),
    stillBlockedFormat: opts.format ?? 'text',
    ...(opts.reportPolicy ? { stillBlockedPolicy: opts.reportPolicy } : {}),
    sliceMs: opts.sliceMs ?? 0,
    slicePort: slices.port2,
  };
  // execArgv []: the worker must not run `--import loopwatch/register` (it would start a watchdog of its
  // own; under NODE_OPTIONS register still loads there, and does nothing in a worker).
  const startWorker = (): Worker => {
    const worker = new Worker(workerUrl(), {
      workerData: data,
      transferList: [slices.port2],
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    worker.on('message', (m: WatchdogMessage) => {
      if (m.type === 'note') {
        note(m.message);
        return;
      }
      if (m.type !== 'stall') return;
      // The main thread timed the stall from its own heartbeat, which is the precise figure.
      const lastStall = heart.lastStall;
      const measured =
        lastStall && Math.abs(lastStall.durationMs - m.durationMs) < heartbeatMs * 2 + 50
          ? lastStall.durationMs
          : m.durationMs;
      try {
        opts.emit(stallReport(m, measured));
      } catch {
        // Reporting is best effort.
      }
    });
    worker.on('error', (e) => note(`loopwatch: stall watchdog stopped: ${e.message}`));
    // After the listeners: attaching a 'message' listener refs the worker's port again.
    worker.unref();
    return worker;
  };
  // A worker is a whole node isolate to boot: not for a program that is over in its
  // first turn. The heartbeat runs from now on, so a stall already under way is still seen.
  let worker: Worker | undefined;
  const starter = setImmediate(() => {
    worker = startWorker();
  });
  starter.unref();

  let stopped: Promise<void> | undefined;
  return {
    heartbeat: sab,
    heartbeatMs,
    lag: (windowMs) => heart.lag(windowMs),
    drainSlices(): void {
      for (let m = receiveMessageOnPort(slices.port1); m !== undefined; m = receiveMessageOnPort(slices.port1)) {
        const s = m.message as WatchdogMessage;
        if (s.type === 'slice') opts.onSlice?.(s.at, s.frames);
      }
    },
    holdSlices(untilEpochMs: number): void {
      Atomics.store(beatCell, 1, BigInt(Math.round(untilEpochMs)));
    },
    stop(): Promise<void> {
      stopped ??= (async () => {
        heart.stop();
        clearImmediate(starter);
        slices.port1.close();
        await worker?.terminate();
      })();
      return stopped;
    },
  };
}
