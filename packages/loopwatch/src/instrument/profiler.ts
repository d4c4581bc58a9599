/**
 * A sampling profiler on an in-process inspector session, kept running while slow-callback watching
 * is on. After a slow turn the samples of that time window name the function and line where the time
 * went. In-process `Profiler.*` calls answer synchronously, so the window is read right at turn end.
 *
 * Bounded cost, whatever the program does:
 *  - `Profiler.start` on an idle profiler is expensive (V8 first logs every compiled function: tens to
 *    hundreds of ms on a big heap). A second, never-read profile (`console.profile` on the inspector's
 *    own console) keeps V8's profiler running, so every later stop/start pair is cheap (well under a
 *    millisecond to start). That profile is renewed every {@link KEEPALIVE_RENEW_MS} to bound its memory.
 *  - The profile that is read is rotated every `rotateMs` (default 1 s), so `Profiler.stop` never
 *    serialises more than about a second of samples; the previous second is kept, for windows that
 *    began before the last rotation.
 */
import inspector, { Session } from 'node:inspector';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { isUserFile } from '../model/frames.js';

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

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; parent?: number; children?: number[]; positionTicks?: { line: number; ticks: number }[] }
interface Profile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }
/** A stopped profile and the offset from `performance.now()` µs to its clock. */
interface Piece { profile: Profile; offsetUs: number }

/** The hottest user frame of a window; 1-based line, column 0 when only the line is known. */
export interface Culprit {
  readonly functionName: string;
  readonly url: string;
  readonly line: number;
  readonly column: number;
  /** Share of the window's busy samples spent in (or below) this frame. */
  readonly share: number;
}

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
  readonly #rotate: NodeJS.Timeout;
  readonly #renew: NodeJS.Timeout;
  #keepalive: string | undefined;
  #previous: Piece | undefined;
  #closed = false;

  constructor(intervalUs: number, rotateMs?: number) {
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

  /** Culprit of [startMs, endMs] (performance.now() times), restarting the profile afterwards. */
  culprit(startMs: number, endMs: number): Culprit | undefined {
    const current = this.#stop();
    this.#post('Profiler.start');
    const pieces: Piece[] = [];
    if (current) pieces.push(current);
    // The window began before the current profile did: the previous one holds its start.
    if (this.#previous && (!current || current.profile.startTime > startMs * 1000 + current.offsetUs)) pieces.push(this.#previous);
    if (current) this.#previous = current;
    return hottest(pieces, startMs * 1000, endMs * 1000);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#rotate);
    clearInterval(this.#renew);
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

interface Tally { node: ProfileNode; count: number; ticks: Map<number, number> }

/** The user frame with the most samples in [fromUs, toUs] (performance.now() µs) across the pieces. */
function hottest(pieces: readonly Piece[], fromUs: number, toUs: number): Culprit | undefined {
  // Keyed by function and position: node ids differ between profiles.
  const tallies = new Map<string, Tally>();
  let busy = 0;
  for (const { profile, offsetUs } of pieces) {
    const byId = new Map<number, ProfileNode>();
    for (const n of profile.nodes) byId.set(n.id, n);
    const parentOf = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
    const from = fromUs + offsetUs;
    const to = toUs + offsetUs;
    const seen = new Set<Tally>();
    let t = profile.startTime;
    const samples = profile.samples ?? [];
    const deltas = profile.timeDeltas ?? [];
    for (let i = 0; i < samples.length; i++) {
      t += deltas[i] ?? 0;
      if (t < from || t > to) continue;
      // Leaf-most frame of the user's own code in this sample.
      for (let id: number | undefined = samples[i]; id !== undefined; id = parentOf.get(id)) {
        const node = byId.get(id);
        if (node && node.callFrame.url !== '' && isUserFile(node.callFrame.url)) {
          const cf = node.callFrame;
          const key = `${cf.url}\n${cf.functionName}\n${cf.lineNumber}\n${cf.columnNumber}`;
          let tally = tallies.get(key);
          if (!tally) {
            tally = { node, count: 0, ticks: new Map() };
            tallies.set(key, tally);
          }
          if (!seen.has(tally)) {
            seen.add(tally);
            for (const pt of node.positionTicks ?? []) tally.ticks.set(pt.line, (tally.ticks.get(pt.line) ?? 0) + pt.ticks);
          }
          tally.count++;
          busy++;
          break;
        }
      }
    }
  }
  let best: Tally | undefined;
  for (const tally of tallies.values()) if (!best || tally.count > best.count) best = tally;
  if (!best) return undefined;
  const cf = best.node.callFrame;
  // Self time carries per-line ticks; without them we only know the function's own line.
  // Ticks of functions inlined into this one carry *their* scripts' lines: keep lines that can be ours.
  const first = cf.lineNumber + 1;
  const last = lineCount(cf.url);
  let line: number | undefined;
  let lineTicks = 0;
  for (const [l, n] of best.ticks) {
    if (l >= first && l <= last && n > lineTicks) [line, lineTicks] = [l, n];
  }
  return {
    functionName: cf.functionName || '<anonymous>',
    url: cf.url,
    line: line ?? cf.lineNumber + 1,
    column: line === undefined ? cf.columnNumber + 1 : 0,
    share: busy === 0 ? 0 : best.count / busy,
  };
}
