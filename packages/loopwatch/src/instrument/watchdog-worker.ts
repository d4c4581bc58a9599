/**
 * The stall watchdog's worker. It watches the main thread's heartbeat; when the heartbeat is late by
 * more than the threshold, the main thread is blocked right now, and the worker asks the inspector
 * what it is doing:
 * - `Profiler.start` (dispatched by V8 interrupt, so it runs even while the main thread is busy);
 * - `Debugger.enable` + `Debugger.pause`, sent lazily and pipelined: an eager `Debugger.enable` would
 *   slow promise-heavy code ~3×, and a native call that V8 cannot interrupt (execSync, readFileSync of a
 *   pipe) only lets the queued commands run once it returns — pipelining makes the pause land in the
 *   caller right then instead of after the whole callback;
 * - while paused, `Debugger.evaluateOnCallFrame` reads the current task (`Runtime.evaluate` would hang).
 * Every inspector call has a timeout; the profiler's hottest sample is the fallback.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Session } from 'node:inspector';
import { writeSync } from 'node:fs';
import { formatLocation, type Frame, type Report } from '../model/report.js';
import { formatJson } from '../sinks/json.js';
import { formatText } from '../sinks/text.js';
import type { CurrentTaskInfo } from './current-task.js';
import { CURRENT_TASK_GLOBAL } from './current-task.js';
import { nowMs, type RawFrame, type StallCapture, type StallMessage, type WatchdogMessage, type WatchdogWorkerData } from './watchdog-protocol.js';
import { resolvePosition } from '../model/source-map-file.js';
import { hottestStack, type CpuProfile } from '../model/cpu-profile.js';
import { pathToFileURL } from 'node:url';

const data = workerData as WatchdogWorkerData;
const ownDirUrl = pathToFileURL(data.ownDir).href;
const port = parentPort;
const beat = new BigInt64Array(data.heartbeat);
/** Slot 1: no pause for a slow turn before this epoch ms (the main thread's report budget). */
const sliceGate = (): number => Number(Atomics.load(beat, 1));
const checkMs = Math.max(5, Math.floor(data.heartbeatMs / 2));
/** A pause that takes longer than this to land means the thread sat in native code. */
const PROMPT_PAUSE_MS = 100;
const CALL_TIMEOUT_MS = 1000;
/** After the stall ends, how long to still wait for a pause queued behind a native call. */
const PAUSE_GRACE_MS = 500;

const TRACE = process.env['LOOPWATCH_TRACE'] === '1';
/** Straight to fd 2: the main thread may be the one that is stuck. */
function trace(msg: string): void {
  if (TRACE) writeSync(2, `[loopwatch watchdog ${Math.round(nowMs()) % 100000}] ${msg}\n`);
}

function send(m: WatchdogMessage): void {
  port?.postMessage(m);
}

// ---------------------------------------------------------------------------------------------
// Inspector plumbing: every call times out, and a session that stops answering is replaced.

interface CallFrame {
  readonly callFrameId: string;
  readonly functionName: string;
  readonly location: { readonly scriptId: string; readonly lineNumber: number; readonly columnNumber?: number };
  readonly url?: string;
}

let session: Session | undefined;
let sessionBroken = false;
const scriptUrls = new Map<string, string>();
let onPaused: ((frames: readonly CallFrame[]) => void) | undefined;

function disconnect(): void {
  onPaused = undefined;
  scriptUrls.clear();
  try {
    session?.disconnect();
  } catch {
    // Already gone.
  }
  session = undefined;
}

function connect(): Session | undefined {
  if (session && !sessionBroken) return session;
  if (session) {
    try {
      session.disconnect();
    } catch {
      // Already gone.
    }
  }
  session = undefined;
  sessionBroken = false;
  try {
    const s = new Session();
    s.connectToMainThread();
    s.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string } }) => {
      scriptUrls.set(m.params.scriptId, m.params.url);
    });
    s.on('Debugger.paused', (m: { params: { callFrames: CallFrame[] } }) => {
      trace('paused');
      const handler = onPaused;
      onPaused = undefined;
      if (handler) handler(m.params.callFrames);
      // A pause nobody waits for (a late one, or the program's own `debugger;`) must never leave the
      // main thread stopped.
      else void call('Debugger.resume').catch(() => undefined);
    });
    session = s;
    return s;
  } catch (e) {
    send({ type: 'note', message: `loopwatch: stall frames unavailable (inspector: ${(e as Error).message})` });
    return undefined;
  }
}

function call<T = unknown>(method: string, params: object = {}, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
  const s = session;
  if (!s) return Promise.reject(new Error('no inspector session'));
  trace(`-> ${method}`);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      sessionBroken = true;
      reject(new Error(`${method} timed out`));
    }, timeoutMs);
    try {
      s.post(method, params, (err: Error | null, result?: object) => {
        clearTimeout(timer);
        trace(`<- ${method}${err ? ` error ${err.message}` : ''}`);
        if (err) reject(err);
        else resolve(result as T);
      });
    } catch (e) {
      clearTimeout(timer);
      reject(e instanceof Error ? e : new Error(String(e)));
    }
  });
}

const quiet = (p: Promise<unknown>): void => void p.catch(() => undefined);

// ---------------------------------------------------------------------------------------------
// Frames

function pausedFrames(frames: readonly CallFrame[]): Frame[] {
  return frames.slice(0, data.stackLimit).map((f) =>
    resolvePosition(f.functionName, f.url || scriptUrls.get(f.location.scriptId) || '', f.location.lineNumber, f.location.columnNumber ?? 0),
  );
}

/** The hottest sampled stack of the stall (loopwatch's own frames dropped). */
function hottestOf(profile: CpuProfile): Frame[] {
  const hot = hottestStack([{ profile, offsetUs: 0 }], -Infinity, Infinity, { isOwn: (url) => url.includes(data.ownDir) || url.startsWith(ownDirUrl), limit: data.stackLimit });
  return hot.frames.map((f) => resolvePosition(f.functionName, f.url, f.hotLine !== undefined ? f.hotLine - 1 : f.lineNumber, f.hotLine !== undefined ? undefined : f.columnNumber));
}

function rawFrames(frames: readonly CallFrame[]): RawFrame[] {
  return frames.slice(0, data.stackLimit + 4).map((f) => ({
    functionName: f.functionName,
    url: f.url || scriptUrls.get(f.location.scriptId) || '',
    line0: f.location.lineNumber,
    column0: f.location.columnNumber ?? 0,
  }));
}

// ---------------------------------------------------------------------------------------------
// Stall handling

const readBeat = (): number => Number(Atomics.load(beat, 0));
let stalled = false;

function waitMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await waitMs(checkMs);
}

async function handleStall(lastBeat: number, detectedAt: number): Promise<void> {
  const stallStart = lastBeat + data.heartbeatMs;
  // The first beat seen after the stall dates its end; later beats would stretch it.
  let resumedBeat: number | undefined;
  const ended = (): boolean => {
    if (resumedBeat === undefined) {
      const b = readBeat();
      if (b !== lastBeat) resumedBeat = b;
    }
    return resumedBeat !== undefined;
  };
  let capture: StallCapture = 'none';
  let pausedStack: Frame[] = [];
  let pausedRaw: RawFrame[] = [];
  let sampledStack: Frame[] = [];
  let pauseLatencyMs: number | undefined;
  let task: CurrentTaskInfo | undefined;
  let note: string | undefined;
  // Armed before the capture, which may itself never finish while the loop stays blocked; it reports
  // whatever has been found by then.
  const notice = stillBlockedNotice(stallStart, ended, () => ({ pausedStack, capture, task, pauseLatencyMs }));

  const s = data.captureFrames ? connect() : undefined;
  if (s) {
    const sentAt = nowMs();
    let stopWaiting: () => void = () => undefined;
    const paused = new Promise<readonly CallFrame[] | undefined>((resolve) => {
      onPaused = (frames) => resolve(frames);
      stopWaiting = () => resolve(undefined);
    });
    // Pipelined on purpose (see the module comment): all queued before the main thread next checks for interrupts.
    const profiling = call('Profiler.enable')
      .then(() => call('Profiler.setSamplingInterval', { interval: 1000 }))
      .then(() => call('Profiler.start'))
      .then(() => true, () => false);
    quiet(call('Debugger.enable'));
    quiet(call('Debugger.pause'));
    // Only matters when no pause comes: a pause queued behind a native call lands once it returns.
    void (async (): Promise<void> => {
      await until(ended);
      await waitMs(PAUSE_GRACE_MS);
      stopWaiting();
    })();
    const frames = await paused;
    if (frames) {
      pauseLatencyMs = Math.round(nowMs() - sentAt);
      const top = frames[0];
      if (top) {
        try {
          const r = await call<{ result?: { value?: unknown } }>(
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
          if (v && typeof v === 'object') task = v as CurrentTaskInfo;
        } catch {
          // The task is a nice-to-have; the frame is what matters.
        }
      }
      quiet(call('Debugger.resume'));
      pausedStack = pausedFrames(frames);
      pausedRaw = rawFrames(frames);
      capture = pauseLatencyMs <= PROMPT_PAUSE_MS ? 'paused' : 'paused-after-native';
    } else {
      onPaused = undefined;
      note = 'the inspector did not pause the main thread in time';
    }
    quiet(call('Debugger.disable'));
    const profilerOn = await profiling;
    await until(ended);
    if (profilerOn) {
      try {
        const { profile } = await call<{ profile: CpuProfile }>('Profiler.stop', {}, 2000);
        sampledStack = hottestOf(profile);
        if (capture === 'none' && sampledStack.length > 0) capture = 'sampled';
      } catch {
        note ??= 'the profiler did not answer';
      }
      quiet(call('Profiler.disable'));
    }
  } else {
    note = data.captureFrames ? 'no inspector session' : 'frame capture is off';
    await until(ended);
  }
  clearTimeout(notice);
  // A connected session is not free for the main thread (measured ~2-4% on promise-heavy code):
  // connect per stall, never in between.
  disconnect();
  const durationMs = Math.max(0, (resumedBeat ?? readBeat()) - stallStart);
  const msg: StallMessage = {
    type: 'stall',
    durationMs,
    detectedAfterMs: Math.max(0, Math.round(detectedAt - stallStart)),
    capture,
    pausedStack,
    ...(pausedRaw.length > 0 ? { pausedRaw } : {}),
    sampledStack,
    ...(pauseLatencyMs === undefined ? {} : { pauseLatencyMs }),
    ...(task ? { task } : {}),
    ...(note ? { note } : {}),
  };
  send(msg);
}

/**
 * The main thread cannot report a stall that never ends (its sink runs on the blocked thread), so
 * once a stall has lasted `stillBlockedMs` the worker writes one report itself, straight to fd 2.
 */
function stillBlockedNotice(
  stallStart: number,
  ended: () => boolean,
  found: () => { pausedStack: Frame[]; capture: StallCapture; task: CurrentTaskInfo | undefined; pauseLatencyMs: number | undefined },
): ReturnType<typeof setTimeout> | undefined {
  if (data.stillBlockedMs <= 0) return undefined;
  const t = setTimeout(() => {
    if (ended()) return;
    const { pausedStack, capture, task, pauseLatencyMs } = found();
    const ms = Math.round(nowMs() - stallStart);
    const top = pausedStack[0];
    const where = top ? ` in ${top.functionName} (${formatLocation(top)})` : '';
    const report: Report = {
      kind: 'stall',
      message: `event loop blocked for ${ms} ms and still blocked${where}`,
      time: Date.now(),
      durationMs: ms,
      ...(top ? { location: formatLocation(top), functionName: top.functionName } : {}),
      ...(task ? { task: { id: task.id, name: task.name } } : {}),
      stack: pausedStack,
      stall: { capture, detectedAfterMs: 0, sampledStack: [], ongoing: true, ...(pauseLatencyMs === undefined ? {} : { pauseLatencyMs }) },
    };
    try {
      writeSync(2, data.stillBlockedFormat === 'json' ? formatJson(report) : formatText(report));
    } catch {
      // stderr closed: nothing more to say.
    }
  }, Math.max(0, stallStart + data.stillBlockedMs - nowMs()));
  t.unref();
  return t;
}

let slicing = false;
let lastSliceBeat = 0;
const SLICE_WAIT_MS = 250;

/** Pauses the main thread once during a slow turn, for the exact frames of what it is doing. */
async function captureSlice(lastBeat: number): Promise<void> {
  const s = connect();
  if (!s) return;
  try {
    const paused = new Promise<readonly CallFrame[] | undefined>((resolve) => {
      onPaused = (frames) => resolve(frames);
      setTimeout(() => resolve(undefined), SLICE_WAIT_MS);
    });
    quiet(call('Debugger.enable'));
    quiet(call('Debugger.pause'));
    const frames = await paused;
    onPaused = undefined;
    if (frames) {
      const at = nowMs();
      // The turn had ended before the pause landed: these frames belong to whatever ran next.
      const sameTurn = readBeat() === lastBeat;
      const raw = sameTurn ? rawFrames(frames) : [];
      trace(`slice sameTurn=${sameTurn} frames=${raw.length} top=${frames[0]?.functionName}`);
      quiet(call('Debugger.resume'));
      if (raw.length > 0) data.slicePort.postMessage({ type: 'slice', at, frames: raw } satisfies WatchdogMessage);
    }
    await call('Debugger.disable').catch(() => undefined);
  } finally {
    disconnect();
  }
}

function check(): void {
  if (stalled || slicing) return;
  const last = readBeat();
  const now = nowMs();
  // One pause per slow turn, and only while the main thread may print a report (at most one a second):
  // a burst of slow turns is not paused over and over.
  if (data.sliceMs > 0 && data.captureFrames && last !== lastSliceBeat && now >= sliceGate() && now - last > data.sliceMs + data.heartbeatMs && now - last <= data.thresholdMs) {
    slicing = true;
    lastSliceBeat = last;
    void captureSlice(last)
      .catch(() => undefined)
      .finally(() => {
        slicing = false;
      });
    return;
  }
  if (now - last > data.thresholdMs + data.heartbeatMs) {
    stalled = true;
    void handleStall(last, now)
      .catch((e: unknown) => send({ type: 'note', message: `loopwatch: stall capture failed: ${(e as Error).message}` }))
      .finally(() => {
        stalled = false;
      });
  }
}

setInterval(check, checkMs);
