/**
 * What the watchdog's worker does about one stall (and one slow turn): ask the inspector what the
 * blocked main thread is doing.
 * - `Profiler.start` (dispatched by V8 interrupt, so it runs even while the main thread is busy);
 * - `Debugger.enable` + `Debugger.pause`, sent lazily and pipelined: an eager `Debugger.enable` slows
 *   promise-heavy code several times over (bench/micro/claims.bench.ts: ~8× on a call of 5 awaits), and a native call that V8 cannot interrupt (execSync, readFileSync of a
 *   pipe) only lets the queued commands run once it returns — pipelining makes the pause land in the
 *   caller right then instead of after the whole callback;
 * - while paused, `Debugger.evaluateOnCallFrame` reads the current task (`Runtime.evaluate` would hang).
 * Every inspector call has a timeout; the profiler's hottest sample is the fallback.
 */
import type { Frame } from '../model/report.js';
import { hottestStack, type CpuProfile } from '../model/cpu-profile.js';
import { resolvePosition } from '../source/source-map-file.js';
import { withCallLines } from '../source/call-site-source.js';
import { originOf } from '../model/paths.js';
import path from 'node:path';
import { CURRENT_TASK_GLOBAL, type CurrentTaskInfo } from './current-task.js';
import { quiet, rawFrames, type CallFrame, type InspectorPort } from './inspector-client.js';
import { nowMs, type RawFrame, type StallCapture as CaptureKind, type StallMessage } from './watchdog-protocol.js';

/** A pause that takes longer than this to land means the thread sat in native code. */
export const PROMPT_PAUSE_MS = 100;

export interface CaptureSettings {
  readonly stackLimit: number;
  /** loopwatch's own files: never the culprit. */
  readonly isOwn: (url: string) => boolean;
  /** How late the watchdog's own timers have been firing lately, ms: the machine's scheduling delay. */
  readonly schedulingDelayMs?: () => number;
}

/** Frames of a pause, resolved here through the files' source maps (the worker has no loader maps). */
export function resolvedFrames(port: InspectorPort, frames: readonly CallFrame[], limit: number): Frame[] {
  return frames
    .slice(0, limit)
    .map((f) => resolvePosition(f.functionName, port.urlOf(f), f.location.lineNumber, f.location.columnNumber ?? 0));
}

/** Reads the running task through the probe task tracking installs (debug mode), while paused. */
export async function taskAt(port: InspectorPort, top: CallFrame | undefined): Promise<CurrentTaskInfo | undefined> {
  if (!top) return undefined;
  try {
    const r = await port.call<{ result?: { value?: unknown } }>(
      'Debugger.evaluateOnCallFrame',
      {
        callFrameId: top.callFrameId,
        expression: `(() => { const f = globalThis[${JSON.stringify(CURRENT_TASK_GLOBAL)}]; return typeof f === 'function' ? f() : undefined; })()`,
        returnByValue: true,
        silent: true,
      },
      500,
    );
    const v = r.result?.value;
    return v && typeof v === 'object' ? (v as CurrentTaskInfo) : undefined;
  } catch {
    // The task is a nice-to-have; the frame is what matters.
    return undefined;
  }
}

/** One stall, captured. Its findings are fields, readable while it runs (the still-blocked notice). */
export class StallCapture {
  capture: CaptureKind = 'none';
  pausedStack: Frame[] = [];
  pausedRaw: RawFrame[] = [];
  sampledStack: Frame[] = [];
  pauseLatencyMs: number | undefined;
  task: CurrentTaskInfo | undefined;
  note: string | undefined;

  /**
   * @param ended whether the main thread beats again (the stall is over)
   * @param waitUntilEnded resolves once it does
   */
  constructor(
    readonly port: InspectorPort | undefined,
    readonly settings: CaptureSettings,
    readonly waitUntilEnded: () => Promise<void>,
  ) {}

  /** Captures what it can while the stall goes on; resolves after the stall ended. */
  async run(): Promise<void> {
    const port = this.port;
    if (!port) {
      await this.waitUntilEnded();
      return;
    }
    const sentAt = nowMs();
    const pause = port.nextPause();
    // Pipelined on purpose (see the module comment): all queued before the main thread next checks for interrupts.
    // The first answer says when the main thread took up the queue: a thread in a native call answers only once
    // it returns, a thread running JS at once. The pause itself lands later (Debugger.enable announces every
    // script first), so its own latency says less.
    let firstAnswerAt: number | undefined;
    const profiling = port
      .call('Profiler.enable')
      .finally(() => (firstAnswerAt = nowMs()))
      .then(() => port.call('Profiler.setSamplingInterval', { interval: 1000 }))
      .then(() => port.call('Profiler.start'))
      .then(
        () => true,
        () => false,
      );
    quiet(port.call('Debugger.enable'));
    quiet(port.call('Debugger.pause'));
    // Only matters when no pause comes: a pause queued behind a native call lands once it returns.
    void this.waitUntilEnded().then(() => setTimeout(() => pause.cancel(), PAUSE_GRACE_MS));
    const frames = await pause.paused;
    if (frames) await this.#paused(port, frames, nowMs() - sentAt, (firstAnswerAt ?? nowMs()) - sentAt);
    else this.note = 'the inspector did not pause the main thread in time';
    quiet(port.call('Debugger.disable'));
    const profilerOn = await profiling;
    await this.waitUntilEnded();
    if (profilerOn) await this.#sampled(port);
  }

  async #paused(
    port: InspectorPort,
    frames: readonly CallFrame[],
    latencyMs: number,
    answeredMs: number,
  ): Promise<void> {
    this.pauseLatencyMs = Math.round(latencyMs);
    this.task = await taskAt(port, frames[0]);
    quiet(port.call('Debugger.resume'));
    // loopwatch's own frames (its Atomics.wait wrapper) go before resolving: mapped, they point at its sources.
    const theirs = frames.filter((f) => !this.settings.isOwn(port.urlOf(f)));
    this.pausedStack = resolvedFrames(port, theirs, this.settings.stackLimit);
    this.pausedRaw = rawFrames(port, frames, this.settings.stackLimit + 4);
    // A pause that came late because the machine is loaded (the watchdog's own timers are as late) is a prompt
    // one: only a delay beyond what scheduling explains means the thread sat in a native call.
    const scheduling = this.settings.schedulingDelayMs?.() ?? 0;
    this.capture = answeredMs <= PROMPT_PAUSE_MS + 2 * scheduling ? 'paused' : 'paused-after-native';
  }

  async #sampled(port: InspectorPort): Promise<void> {
    try {
      const { profile } = await port.call<{ profile: CpuProfile }>('Profiler.stop', {}, 2000);
      this.sampledStack = this.#hottest(profile);
      if (this.capture === 'none' && this.sampledStack.length > 0) this.capture = 'sampled';
    } catch {
      this.note ??= 'the profiler did not answer';
    }
    quiet(port.call('Profiler.disable'));
  }

  /** The hottest sampled stack of the stall (loopwatch's own frames dropped). */
  #hottest(profile: CpuProfile): Frame[] {
    const hot = hottestStack([{ profile, offsetUs: 0 }], -Infinity, Infinity, {
      isOwn: this.settings.isOwn,
      limit: this.settings.stackLimit,
    });
    const frames = hot.frames.map((f) =>
      resolvePosition(
        f.functionName,
        f.url,
        f.hotLine !== undefined ? f.hotLine - 1 : f.lineNumber,
        f.hotLine !== undefined ? undefined : f.columnNumber,
      ),
    );
    // The callers' lines as a pause gives them (the profile has only their first lines).
    return withCallLines(frames, (f) => path.isAbsolute(f.file) && originOf(f.file) === 'user');
  }

  /** The message for the main thread, once the stall is over. */
  message(durationMs: number, detectedAfterMs: number): StallMessage {
    return {
      type: 'stall',
      durationMs,
      detectedAfterMs,
      capture: this.capture,
      pausedStack: this.pausedStack,
      ...(this.pausedRaw.length > 0 ? { pausedRaw: this.pausedRaw } : {}),
      sampledStack: this.sampledStack,
      ...(this.pauseLatencyMs === undefined ? {} : { pauseLatencyMs: this.pauseLatencyMs }),
      ...(this.task ? { task: this.task } : {}),
      ...(this.note ? { note: this.note } : {}),
    };
  }
}

/** After the stall ends, how long to still wait for a pause queued behind a native call. */
const PAUSE_GRACE_MS = 500;

/** Pauses the main thread once, for the exact frames of what it is doing (a slow turn); raw frames or nothing. */
export async function pauseOnce(
  port: InspectorPort,
  waitMs: number,
): Promise<{ frames: readonly CallFrame[]; at: number } | undefined> {
  const pause = port.nextPause();
  const timer = setTimeout(() => pause.cancel(), waitMs);
  quiet(port.call('Debugger.enable'));
  quiet(port.call('Debugger.pause'));
  const frames = await pause.paused;
  clearTimeout(timer);
  if (!frames) return undefined;
  return { frames, at: nowMs() };
}
