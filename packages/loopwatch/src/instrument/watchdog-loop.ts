/**
 * The watchdog worker's loop: it reads the main thread's heartbeat every half beat. A heartbeat late
 * by more than the slow-callback threshold is a slow turn, paused once for its frames (at most once a
 * second, as the main thread's report budget allows); late by more than the stall threshold, a stall,
 * captured by a {@link StallCapture} and reported to the main thread once it ends. A stall that goes
 * on past `stillBlockedMs` is reported from here (the main thread cannot print while it is blocked).
 */
import { culpritOf, formatLocation, type Report } from '../model/report.js';
import { originOf } from '../model/paths.js';
import { errorText } from '../model/error-text.js';
import { InspectorClient, quiet, rawFrames, trace } from './inspector-client.js';
import { StallCapture, pauseOnce } from './stall-capture.js';
import { nowMs, type WatchdogMessage, type WatchdogWorkerData } from './watchdog-protocol.js';

const SLICE_WAIT_MS = 250;

export class WatchdogLoop {
  readonly #data: WatchdogWorkerData;
  readonly #beat: BigInt64Array;
  readonly #client: InspectorClient;
  readonly #checkMs: number;
  #stalled = false;
  #slicing = false;
  #lastSliceBeat = 0;
  /** When the check timer should next fire, and how late it has been firing (decaying maximum), ms. */
  #nextCheckAt = 0;
  #schedulingDelayMs = 0;

  /**
   * @param send to the main thread
   * @param writeOngoing writes a still-blocked report itself (straight to stderr, in the configured format)
   */
  constructor(
    data: WatchdogWorkerData,
    readonly send: (m: WatchdogMessage) => void,
    readonly writeOngoing: (r: Report) => void,
  ) {
    this.#data = data;
    this.#beat = new BigInt64Array(data.heartbeat);
    this.#client = new InspectorClient((message) => send({ type: 'note', message }));
    this.#checkMs = Math.max(5, Math.floor(data.heartbeatMs / 2));
  }

  start(): void {
    setInterval(this.check, this.#checkMs);
  }

  #readBeat(): number {
    return Number(Atomics.load(this.#beat, 0));
  }

  /** Slot 1: no pause for a slow turn before this epoch ms (the main thread's report budget). */
  #sliceGate(): number {
    return Number(Atomics.load(this.#beat, 1));
  }

  readonly check = (): void => {
    const t = nowMs();
    if (this.#nextCheckAt > 0)
      this.#schedulingDelayMs = Math.max(this.#schedulingDelayMs * 0.95, t - this.#nextCheckAt);
    this.#nextCheckAt = t + this.#checkMs;
    if (this.#stalled || this.#slicing) return;
    const d = this.#data;
    const last = this.#readBeat();
    const now = nowMs();
    const late = now - last;
    // One pause per slow turn, and only while the main thread may print a report (at most one a second):
    // a burst of slow turns is not paused over and over.
    if (
      d.sliceMs > 0 &&
      d.captureFrames &&
      last !== this.#lastSliceBeat &&
      now >= this.#sliceGate() &&
      late > d.sliceMs + d.heartbeatMs &&
      late <= d.thresholdMs
    ) {
      this.#slicing = true;
      this.#lastSliceBeat = last;
      void this.#slice(last)
        .catch(() => undefined)
        .finally(() => (this.#slicing = false));
      return;
    }
    if (late > d.thresholdMs + d.heartbeatMs) {
      this.#stalled = true;
      void this.#stall(last, now)
        .catch((e: unknown) => this.send({ type: 'note', message: `loopwatch: stall capture failed: ${errorText(e)}` }))
        .finally(() => (this.#stalled = false));
    }
  };

  async #stall(lastBeat: number, detectedAt: number): Promise<void> {
    const d = this.#data;
    const stallStart = lastBeat + d.heartbeatMs;
    // The first beat seen after the stall dates its end; later beats would stretch it.
    let resumedBeat: number | undefined;
    const ended = (): boolean => {
      if (resumedBeat === undefined) {
        const b = this.#readBeat();
        if (b !== lastBeat) resumedBeat = b;
      }
      return resumedBeat !== undefined;
    };
    const untilEnded = async (): Promise<void> => {
      while (!ended()) await new Promise((r) => setTimeout(r, this.#checkMs));
    };
    const port = d.captureFrames && this.#client.connect() ? this.#client : undefined;
    const ownUrl = new URL(`file://${d.ownDir}`).href;
    const capture = new StallCapture(
      port,
      {
        stackLimit: d.stackLimit,
        isOwn: (url) => url.includes(d.ownDir) || url.startsWith(ownUrl),
        schedulingDelayMs: () => this.#schedulingDelayMs,
      },
      untilEnded,
    );
    if (!port) capture.note = d.captureFrames ? 'no inspector session' : 'frame capture is off';
    // Armed before the capture, which may itself never finish while the loop stays blocked; it reports
    // whatever has been found by then.
    const notice = this.#stillBlockedNotice(stallStart, ended, capture);
    await capture.run();
    notice?.cancel();
    // A connected session is not free for the main thread (promise-heavy code runs slower while one is
    // attached): connect per stall, never in between.
    this.#client.disconnect();
    const durationMs = Math.max(0, (resumedBeat ?? this.#readBeat()) - stallStart);
    this.send(capture.message(durationMs, Math.max(0, Math.round(detectedAt - stallStart))));
  }

  #stillBlockedNotice(stallStart: number, ended: () => boolean, found: StallCapture): { cancel(): void } | undefined {
    const d = this.#data;
    if (d.stillBlockedMs <= 0) return undefined;
    let t: ReturnType<typeof setTimeout>;
    const fire = (): void => {
      if (ended()) return;
      // A timer may fire a millisecond early against this clock (libuv rounds its loop time): wait out the rest.
      const left = stallStart + d.stillBlockedMs - nowMs();
      if (left > 0) {
        t = setTimeout(fire, Math.ceil(left));
        t.unref();
        return;
      }
      const ms = Math.round(nowMs() - stallStart);
      // As the final report does: node's and libraries' frames marked (loopwatch's own are already out),
      // the innermost user frame the culprit.
      const stack = found.pausedStack.map((f) => {
        const origin = originOf(f.file);
        return origin === 'user' ? f : { ...f, origin };
      });
      const top = culpritOf(stack);
      const { capture, task, pauseLatencyMs } = found;
      this.writeOngoing({
        kind: 'stall',
        time: Date.now(),
        durationMs: ms,
        ...(top ? { location: formatLocation(top), functionName: top.functionName } : {}),
        ...(task ? { task: { id: task.id, name: task.name } } : {}),
        stack,
        stall: {
          capture,
          detectedAfterMs: 0,
          sampledStack: [],
          ongoing: true,
          ...(pauseLatencyMs === undefined ? {} : { pauseLatencyMs }),
        },
      });
    };
    t = setTimeout(fire, Math.max(0, stallStart + d.stillBlockedMs - nowMs()));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  }

  /** Pauses the main thread once during a slow turn, for the exact frames of what it is doing. */
  async #slice(lastBeat: number): Promise<void> {
    if (!this.#client.connect()) return;
    try {
      const got = await pauseOnce(this.#client, SLICE_WAIT_MS);
      if (got) {
        // The turn had ended before the pause landed: these frames belong to whatever ran next.
        const sameTurn = this.#readBeat() === lastBeat;
        const raw = sameTurn ? rawFrames(this.#client, got.frames, this.#data.stackLimit + 4) : [];
        trace(`slice sameTurn=${sameTurn} frames=${raw.length} top=${got.frames[0]?.functionName}`);
        quiet(this.#client.call('Debugger.resume'));
        if (raw.length > 0)
          this.#data.slicePort.postMessage({ type: 'slice', at: got.at, frames: raw } satisfies WatchdogMessage);
      }
      await this.#client.call('Debugger.disable').catch(() => undefined);
    } finally {
      this.#client.disconnect();
    }
  }
}
