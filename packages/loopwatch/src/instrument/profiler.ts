/**
 * A sampling profiler on an in-process inspector session, kept running while slow-callback watching
 * is on. After a slow turn the samples of that time window name the function and line where the time
 * went. In-process `Profiler.*` calls answer synchronously, so the window is read right at turn end.
 *
 * Bounded cost, whatever the program does:
 *  - `Profiler.start` on an idle profiler is expensive (V8 first logs every compiled function, so it
 *    grows with the heap). A second, never-read profile (`console.profile` on the inspector's own
 *    console) keeps V8's profiler running, so every later stop/start pair skips that. That profile is renewed every {@link KEEPALIVE_RENEW_MS} to bound its memory.
 *  - The profile that is read is rotated every `rotateMs` (default 1 s), so `Profiler.stop` never
 *    serialises more than about a second of samples; the previous second is kept, for windows that
 *    began before the last rotation.
 */
import inspector, { Session } from 'node:inspector';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { isOwnFile } from '../source/frames.js';
import { hottestStack, type CpuProfile, type HotStack, type ProfilePiece } from '../model/cpu-profile.js';

/** Bound before loopwatch wraps `fs.*Sync`: our own reads are not the program's blocking calls. */
const readText = fs.readFileSync.bind(fs);
const KEEPALIVE_RENEW_MS = 10 * 60_000;

const lineCounts = new Map<string, number>();

function lineCount(url: string): number {
  let n = lineCounts.get(url);
  if (n === undefined) {
    try {
      n = readText(url.startsWith('file:') ? fileURLToPath(url) : url, 'utf8').split('\n').length;
    } catch {
      n = Number.MAX_SAFE_INTEGER;
    }
    lineCounts.set(url, n);
  }
  return n;
}

type Profile = CpuProfile;
/** A stopped profile and the offset from `performance.now()` µs to its clock. */
type Piece = ProfilePiece;

let keepaliveSerial = 0;

/**
 * `--cpu-prof` runs node's own inspector client, which does not expect console-profile events and
 * complains on stderr about each one: no keep-alive profile then (restarts cost more, reports the same).
 */
function keepaliveAllowed(): boolean {
  const args = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)];
  return !args.some((a) => a.startsWith('--cpu-prof') || a.startsWith('--heap-prof'));
}

export class WindowProfiler {
  readonly #session = new Session();
  #rotate: NodeJS.Timeout | undefined;
  #renew: NodeJS.Timeout | undefined;
  #starting: NodeJS.Timeout | undefined;
  #keepalive: string | undefined;
  #previous: Piece | undefined;
  #closed = false;
  #begunAt: number | undefined;

  /**
   * `deferStart`: begin sampling in the first timer turn instead of now. Starting V8's profiler is
   * the largest part of what loopwatch adds to a process's start (about 30 ms of a ~100 ms script), and
   * a program's first turn (loading its modules) is start-up, not a slow callback; an unref'd timer
   * also means a process that ends in its first turn never starts it.
   */
  constructor(intervalUs: number, rotateMs?: number, deferStart = false) {
    if (!deferStart) {
      this.#begin(intervalUs, rotateMs);
      return;
    }
    this.#starting = setTimeout(() => {
      this.#starting = undefined;
      if (!this.#closed) this.#begin(intervalUs, rotateMs);
    }, 0);
    this.#starting.unref();
  }

  #begin(intervalUs: number, rotateMs: number | undefined): void {
    this.#begunAt = performance.now();
    this.#session.connect();
    this.#post('Profiler.enable');
    this.#post('Profiler.setSamplingInterval', { interval: intervalUs });
    this.#renewKeepalive();
    // Without the keep-alive every restart is a cold start: rotate less often.
    rotateMs ??= this.#keepalive === undefined ? 5_000 : 1_000;
    this.#post('Profiler.start');
    // Samples pile up while nothing is slow; restart now and then to bound memory and stop time.
    this.#rotate = setInterval(() => {
      this.#previous = this.#stop();
      this.#post('Profiler.start');
    }, rotateMs);
    this.#rotate.unref();
    this.#renew = setInterval(() => this.#renewKeepalive(), KEEPALIVE_RENEW_MS);
    this.#renew.unref();
  }

  begunAt(): number | undefined {
    return this.#begunAt;
  }

  /** Hottest stack of [startMs, endMs] (performance.now() times), restarting the profile afterwards. */
  hottest(startMs: number, endMs: number): HotStack {
    if (this.#rotate === undefined) return hottestStack([], 0, 0, { isOwn: isOwnFile, linesIn: lineCount });
    const current = this.#stop();
    this.#post('Profiler.start');
    const pieces: Piece[] = [];
    if (current) pieces.push(current);
    // The window began before the current profile did: the previous one holds its start.
    if (this.#previous && (!current || current.profile.startTime > startMs * 1000 + current.offsetUs))
      pieces.push(this.#previous);
    if (current) this.#previous = current;
    return hottestStack(pieces, startMs * 1000, endMs * 1000, { isOwn: isOwnFile, linesIn: lineCount });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#starting);
    clearInterval(this.#rotate);
    clearInterval(this.#renew);
    if (this.#rotate === undefined) return; // never began
    this.#stop();
    if (this.#keepalive !== undefined) inspector.console.profileEnd(this.#keepalive);
    this.#previous = undefined;
    this.#session.disconnect();
  }

  /** Starts a fresh keep-alive profile before ending the old one, so V8's profiler never goes idle. */
  #renewKeepalive(): void {
    if (!keepaliveAllowed()) return;
    const old = this.#keepalive;
    this.#keepalive = `loopwatch-keepalive-${process.pid}-${++keepaliveSerial}`;
    inspector.console.profile(this.#keepalive);
    if (old !== undefined) inspector.console.profileEnd(old);
  }

  #stop(): Piece | undefined {
    let out: Profile | undefined;
    this.#post('Profiler.stop', undefined, (r) => {
      out = (r as { profile?: Profile } | undefined)?.profile;
    });
    // Profile clock → performance.now(): both monotonic, aligned at the stop.
    return out ? { profile: out, offsetUs: out.endTime - performance.now() * 1000 } : undefined;
  }

  #post(method: string, params?: object, cb?: (result: unknown) => void): void {
    try {
      this.#session.post(method, params ?? {}, (err, result) => {
        if (!err) cb?.(result);
      });
    } catch {
      // A closed session: nothing to sample.
    }
  }
}
