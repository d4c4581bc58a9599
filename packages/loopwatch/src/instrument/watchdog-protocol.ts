/**
 * What the stall watchdog's main-thread half and its worker say to each other. Kept in one module so
 * both sides agree on shapes; only plain data crosses the thread boundary.
 */
// perf_hooks' own `performance`: test fake timers may replace the global one.
import { performance } from 'node:perf_hooks';
import type { Frame } from '../model/report.js';
import type { CurrentTaskInfo } from './current-task.js';

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
  /** Why something is missing, in one line. */
  readonly note?: string;
}

/** Worker → main: a one-line note (e.g. the inspector is not usable). */
export interface NoteMessage {
  readonly type: 'note';
  readonly message: string;
}

export type WatchdogMessage = StallMessage | NoteMessage;

/** Epoch ms on a monotonic clock; comparable across threads to about a millisecond. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
