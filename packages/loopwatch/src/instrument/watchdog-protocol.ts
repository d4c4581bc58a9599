/**
 * What the stall watchdog's main-thread half and its worker say to each other. Kept in one module so
 * both sides agree on shapes; only plain data crosses the thread boundary.
 */
// perf_hooks' own `performance`: test fake timers may replace the global one.
import { performance } from 'node:perf_hooks';
import type { Frame, ReportKind } from '../model/report.js';
import type { CurrentTaskInfo } from './current-task.js';
import type { MessagePort } from 'node:worker_threads';

/** A report policy (`LOOPWATCH_KINDS`, `_IGNORE`, `_SILENCE`) and the process stamp, as plain data for a worker. */
export interface WorkerReportPolicy {
  readonly pid: number;
  readonly script: string;
  readonly kinds?: readonly ReportKind[];
  readonly ignore?: readonly string[];
  readonly silence?: readonly string[];
}

/** `workerData` of the watchdog worker. */
export interface WatchdogWorkerData {
  /** BigInt64Array[0]: the main thread's last heartbeat, epoch ms (timeOrigin + now, rounded). */
  readonly heartbeat: SharedArrayBuffer;
  readonly thresholdMs: number;
  readonly heartbeatMs: number;
  /** Attach the inspector to the main thread to find the blocking frame. */
  readonly captureFrames: boolean;
  /** Frames kept per stack. */
  readonly stackLimit: number;
  /** Directory of loopwatch's own compiled sources: frames there are never the culprit. */
  readonly ownDir: string;
  /** Write a report from the worker when a stall has lasted this long and still goes on (0 = never). */
  readonly stillBlockedMs: number;
  /** The format of that report (the main thread's sink cannot run while it is blocked). */
  readonly stillBlockedFormat: 'text' | 'json';
  /** The main thread's report policy and stamp, which that report honours and carries like any other. */
  readonly stillBlockedPolicy?: WorkerReportPolicy;
  /**
   * A turn running longer than this (the slow-callback threshold) is paused once while it still runs,
   * for its exact frames (at most one pause per second); 0 = never.
   */
  readonly sliceMs: number;
  /** Where slices go: a port the main thread drains synchronously when it builds a report (even at exit). */
  readonly slicePort: MessagePort;
}

/** A paused frame as the inspector gives it: resolved on the main thread, where the loaders' source maps are. */
export interface RawFrame {
  readonly functionName: string;
  readonly url: string;
  readonly line0: number;
  readonly column0: number;
}

/** Worker → main: the main thread's stack, paused during a slow turn. */
export interface SliceMessage {
  readonly type: 'slice';
  /** Epoch ms (timeOrigin-based) of the pause. */
  readonly at: number;
  readonly frames: readonly RawFrame[];
}

/** How the culprit frame was found. */
export type StallCapture =
  /** `Debugger.pause` landed while the main thread was still blocked: the exact frame. */
  | 'paused'
  /** The thread sat in a native call that V8 cannot interrupt; the pause landed right after it returned. */
  | 'paused-after-native'
  /** No pause; the hottest CPU-profile sample names the culprit (function and line, no exact column). */
  | 'sampled'
  /** Nothing captured (inspector unavailable or unresponsive). */
  | 'none';

/** Worker → main: one stall, after it ended. */
export interface StallMessage {
  readonly type: 'stall';
  readonly durationMs: number;
  /** How long after the stall began the worker noticed it. */
  readonly detectedAfterMs: number;
  readonly capture: StallCapture;
  /** Paused stack (resolved), innermost first; empty when there was no pause. */
  readonly pausedStack: readonly Frame[];
  /** From request to `Debugger.paused`, ms. */
  readonly pauseLatencyMs?: number;
  /** Hottest sampled stack (resolved), innermost first; empty without samples. */
  readonly sampledStack: readonly Frame[];
  readonly task?: CurrentTaskInfo;
  /** The paused stack, raw (the main thread resolves it with the loaders' source maps). */
  readonly pausedRaw?: readonly RawFrame[];
  /** Why something is missing, in one line. */
  readonly note?: string;
}

/** Worker → main: a one-line note (e.g. the inspector is not usable). */
export interface NoteMessage {
  readonly type: 'note';
  readonly message: string;
}

export type WatchdogMessage = StallMessage | NoteMessage | SliceMessage;

/** Epoch ms on a monotonic clock; comparable across threads to about a millisecond. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
