/**
 * An inspector session from a worker to the main thread (`connectToMainThread`), for the stall
 * watchdog and the attach endpoint. Every call times out, and a session that stops answering is
 * replaced on the next `connect()`. A pause nobody waits for is resumed at once, so a client can
 * never leave the program stopped.
 */
import { Session } from 'node:inspector';
import { writeSync } from 'node:fs';
import { errorText } from '../model/error-text.js';
import { nowMs, type RawFrame } from './watchdog-protocol.js';

export const CALL_TIMEOUT_MS = 1000;

export interface CallFrame {
  readonly callFrameId: string;
  readonly functionName: string;
  readonly location: { readonly scriptId: string; readonly lineNumber: number; readonly columnNumber?: number };
  readonly url?: string;
}

const TRACE = process.env['LOOPWATCH_TRACE'] === '1';
/** Straight to fd 2: the main thread may be the one that is stuck. */
export function trace(msg: string): void {
  if (TRACE) writeSync(2, `[loopwatch worker ${Math.round(nowMs()) % 100000}] ${msg}\n`);
}

/** Swallows a promise's rejection (fire-and-forget inspector commands). */
export const quiet = (p: Promise<unknown>): void => void p.catch(() => undefined);

/** The inspector calls the stall capture uses (a fake one in the unit tier). */
export interface InspectorPort {
  call<T = unknown>(method: string, params?: object, timeoutMs?: number): Promise<T>;
  /** Resolves with the frames of the next pause, or undefined when `cancel` runs first. */
  nextPause(): { readonly paused: Promise<readonly CallFrame[] | undefined>; cancel(): void };
  /** The URL of a paused frame's script. */
  urlOf(frame: CallFrame): string;
}

export class InspectorClient implements InspectorPort {
  #session: Session | undefined;
  #broken = false;
  readonly #scriptUrls = new Map<string, string>();
  #onPaused: ((frames: readonly CallFrame[]) => void) | undefined;

  /** @param onError told once per failed connection, in one line. */
  constructor(readonly onError: (message: string) => void) {}

  get connected(): boolean {
    return this.#session !== undefined && !this.#broken;
  }

  connect(): boolean {
    if (this.connected) return true;
    this.disconnect();
    this.#broken = false;
    try {
      const s = new Session();
      s.connectToMainThread();
      s.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string } }) => {
        this.#scriptUrls.set(m.params.scriptId, m.params.url);
      });
      s.on('Debugger.paused', (m: { params: { callFrames: CallFrame[] } }) => this.#paused(m.params.callFrames));
      this.#session = s;
      return true;
    } catch (e) {
      this.onError(`loopwatch: stall frames unavailable (inspector: ${errorText(e)})`);
      return false;
    }
  }

  disconnect(): void {
    this.#onPaused = undefined;
    this.#scriptUrls.clear();
    try {
      this.#session?.disconnect();
    } catch {
      // Already gone.
    }
    this.#session = undefined;
  }

  #paused(frames: readonly CallFrame[]): void {
    trace('paused');
    const handler = this.#onPaused;
    this.#onPaused = undefined;
    if (handler) handler(frames);
    // A pause nobody waits for (a late one, or the program's own `debugger;`) must never leave the
    // main thread stopped.
    else quiet(this.call('Debugger.resume'));
  }

  nextPause(): { readonly paused: Promise<readonly CallFrame[] | undefined>; cancel(): void } {
    let cancel: () => void = () => undefined;
    const paused = new Promise<readonly CallFrame[] | undefined>((resolve) => {
      this.#onPaused = resolve;
      cancel = () => {
        if (this.#onPaused === resolve) this.#onPaused = undefined;
        resolve(undefined);
      };
    });
    return { paused, cancel };
  }

  urlOf(f: CallFrame): string {
    return f.url || this.#scriptUrls.get(f.location.scriptId) || '';
  }

  call<T = unknown>(method: string, params: object = {}, timeoutMs = CALL_TIMEOUT_MS): Promise<T> {
    const s = this.#session;
    if (!s) return Promise.reject(new Error('no inspector session'));
    trace(`-> ${method}`);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#broken = true;
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
        reject(e instanceof Error ? e : new Error(errorText(e)));
      }
    });
  }
}

/** Paused frames as plain data (resolved later, where the source maps are). */
export function rawFrames(port: InspectorPort, frames: readonly CallFrame[], limit: number): RawFrame[] {
  return frames.slice(0, limit).map((f) => ({
    functionName: f.functionName,
    url: port.urlOf(f),
    line0: f.location.lineNumber,
    column0: f.location.columnNumber ?? 0,
  }));
}
