/**
 * A sampling profiler on an in-process inspector session, kept running while slow-callback watching
 * is on. After a slow turn the samples of that time window name the function and line where the time
 * went. In-process `Profiler.*` calls answer synchronously, so the window is read right at turn end.
 */
import { Session } from 'node:inspector';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isUserFile } from '../model/frames.js';

function lineCount(url: string): number {
  try {
    return readFileSync(url.startsWith('file:') ? fileURLToPath(url) : url, 'utf8').split('\n').length;
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; parent?: number; children?: number[]; positionTicks?: { line: number; ticks: number }[] }
interface Profile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }

/** The hottest user frame of a window; 1-based line, column 0 when only the line is known. */
export interface Culprit {
  readonly functionName: string;
  readonly url: string;
  readonly line: number;
  readonly column: number;
  /** Share of the window's busy samples spent in (or below) this frame. */
  readonly share: number;
}

export class WindowProfiler {
  readonly #session = new Session();
  readonly #rotate: NodeJS.Timeout;

  constructor(intervalUs: number, rotateMs = 5_000) {
    this.#session.connect();
    this.#post('Profiler.enable');
    this.#post('Profiler.setSamplingInterval', { interval: intervalUs });
    this.#post('Profiler.start');
    // Samples pile up while nothing is slow; restart now and then to bound memory.
    this.#rotate = setInterval(() => {
      this.#stop();
      this.#post('Profiler.start');
    }, rotateMs);
    this.#rotate.unref();
  }

  /** Culprit of [startMs, endMs] (performance.now() times), restarting the profile afterwards. */
  culprit(startMs: number, endMs: number): Culprit | undefined {
    const stopAt = performance.now();
    const profile = this.#stop();
    this.#post('Profiler.start');
    if (!profile?.samples || !profile.timeDeltas) return undefined;
    // Profile clock → performance.now(): both monotonic, aligned at the stop.
    const offsetUs = profile.endTime - stopAt * 1000;
    return hottest(profile, startMs * 1000 + offsetUs, endMs * 1000 + offsetUs);
  }

  close(): void {
    clearInterval(this.#rotate);
    this.#stop();
    this.#session.disconnect();
  }

  #stop(): Profile | undefined {
    let out: Profile | undefined;
    this.#post('Profiler.stop', undefined, (r) => {
      out = (r as { profile?: Profile } | undefined)?.profile;
    });
    return out;
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

function hottest(profile: Profile, fromUs: number, toUs: number): Culprit | undefined {
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const counts = new Map<number, number>();
  let busy = 0;
  let t = profile.startTime;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    // Leaf-most frame of the user's own code in this sample.
    for (let id: number | undefined = samples[i]; id !== undefined; id = parentOf.get(id)) {
      const node = byId.get(id);
      if (node && isUserFile(node.callFrame.url) && node.callFrame.url !== '') {
        counts.set(id, (counts.get(id) ?? 0) + 1);
        busy++;
        break;
      }
    }
  }
  let best: number | undefined;
  let bestCount = 0;
  for (const [id, c] of counts) if (c > bestCount) [best, bestCount] = [id, c];
  const node = best === undefined ? undefined : byId.get(best);
  if (!node) return undefined;
  // Self time carries per-line ticks; without them we only know the function's own line.
  // Ticks of functions inlined into this one carry *their* scripts' lines: keep lines that can be ours.
  const first = node.callFrame.lineNumber + 1;
  const last = lineCount(node.callFrame.url);
  const ticks = (node.positionTicks ?? []).filter((t) => t.line >= first && t.line <= last).sort((a, b) => b.ticks - a.ticks)[0];
  return {
    functionName: node.callFrame.functionName || '<anonymous>',
    url: node.callFrame.url,
    line: ticks ? ticks.line : node.callFrame.lineNumber + 1,
    column: ticks ? 0 : node.callFrame.columnNumber + 1,
    share: busy === 0 ? 0 : bestCount / busy,
  };
}
