/**
 * V8 CPU profiles (the inspector's `Profiler.stop` result) → what a slow turn or a stall spent its time
 * on. Shared by the in-process slow-callback profiler and the stall watchdog's worker.
 *
 * Per sample, the chain of frames from the leaf up is taken; loopwatch's own frames are dropped from
 * it (a pause or a sample that lands in one of our promise hooks blames the code that called it), and
 * a sample that is loopwatch's work alone is not counted at all. The chain seen most often is the
 * hottest stack; its leaf carries its hottest line. What the samples were (user code, GC, module
 * loading, native / VM work) gives the attribution when no code stands out.
 */
import type { Attribution } from './report.js';

export interface ProfileCallFrame {
  readonly functionName: string;
  readonly url: string;
  /** 0-based. */
  readonly lineNumber: number;
  /** 0-based. */
  readonly columnNumber: number;
}

export interface ProfileNode {
  readonly id: number;
  readonly callFrame: ProfileCallFrame;
  readonly hitCount?: number;
  readonly children?: readonly number[];
  readonly positionTicks?: readonly { readonly line: number; readonly ticks: number }[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

/** A stopped profile and the offset from the caller's clock (µs) to the profile's clock. */
export interface ProfilePiece {
  readonly profile: CpuProfile;
  readonly offsetUs: number;
}

/** One frame of the hottest stack, positions as V8 gives them (0-based), `hotLine` 1-based. */
export interface HotFrame extends ProfileCallFrame {
  /** The leaf's most-sampled line (1-based), when the profile had line ticks for it. */
  readonly hotLine?: number;
}

export interface HotStack {
  /** Innermost first. Empty when no code stood out. */
  readonly frames: readonly HotFrame[];
  readonly attribution: Attribution;
  /** Samples in the window (loopwatch's own excluded). */
  readonly samples: number;
  /** Share of those samples in the hottest stack. */
  readonly share: number;
  /** Samples spent loading modules, by the file being loaded (its own top-level code or what it called). */
  readonly modules?: ReadonlyMap<string, number>;
}

export interface HotStackOptions {
  /** loopwatch's own code: dropped from chains, and a sample of ours alone is not counted. */
  readonly isOwn: (url: string) => boolean;
  /** Frames kept per stack. Default 8. */
  readonly limit?: number;
  /** Lines a leaf's ticks may fall on (inlined callees' ticks carry their own script's lines). */
  readonly linesIn?: (url: string) => number;
}

const VM_NODES: Record<string, Attribution | 'skip'> = {
  '(garbage collector)': 'garbage-collection',
  '(program)': 'native',
  '(idle)': 'skip',
  '(root)': 'skip',
};

type Kind = Attribution | 'own' | 'skip';

interface Chain {
  readonly key: string;
  readonly frames: readonly ProfileNode[];
  readonly kind: Kind;
  /** For module loading: the innermost file that is not node's. */
  readonly module?: string;
}

function isUserUrl(url: string): boolean {
  return url !== '' && !url.startsWith('node:') && !url.includes('/node_modules/');
}

/** The program's or a library's code, not node's own (nor V8's, which has no URL). */
function isProgramUrl(url: string): boolean {
  return url !== '' && !url.startsWith('node:');
}

/** A stack of the program's beats one of node's own alone when it has at least 1/PROGRAM_SHARE of its samples. */
const PROGRAM_SHARE = 10;

function isModuleLoader(url: string): boolean {
  return url.startsWith('node:internal/modules/');
}

/** Chains of frames per node id of one profile, built once per node. */
function chainsOf(profile: CpuProfile, opts: HotStackOptions): (id: number) => Chain | undefined {
  const byId = new Map<number, ProfileNode>();
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parentOf.set(c, n.id);
  }
  const memo = new Map<number, Chain | undefined>();
  return (leafId) => {
    if (memo.has(leafId)) return memo.get(leafId);
    const leaf = byId.get(leafId);
    let chain: Chain | undefined;
    if (leaf) {
      const vm = VM_NODES[leaf.callFrame.functionName];
      if (vm !== undefined && leaf.callFrame.url === '') chain = { key: vm, frames: [], kind: vm };
      else {
        const frames: ProfileNode[] = [];
        let own = false;
        let loading = false;
        for (let id: number | undefined = leafId; id !== undefined; id = parentOf.get(id)) {
          const n = byId.get(id);
          if (!n || n.callFrame.functionName === '(root)') break;
          const url = n.callFrame.url;
          if (isModuleLoader(url)) loading = true;
          if (url !== '' && opts.isOwn(url)) {
            own = true;
            continue;
          }
          frames.push(n);
        }
        const key = frames
          .map(
            (f) =>
              `${f.callFrame.url}\0${f.callFrame.functionName}\0${f.callFrame.lineNumber}\0${f.callFrame.columnNumber}`,
          )
          .join('\n');
        // loopwatch's work, with the node internals it called (its profiler rotation in node:inspector, the
        // source-map reader's reads, its capture under node's promise-hook dispatch) but no frame of the
        // program's: not the program's time.
        const ours = own && !frames.some((f) => isProgramUrl(f.callFrame.url));
        const kind: Kind = loading ? 'module-loading' : ours ? 'own' : frames.length === 0 ? 'skip' : 'code';
        const module = loading
          ? frames.find((f) => f.callFrame.url !== '' && !f.callFrame.url.startsWith('node:'))?.callFrame.url
          : undefined;
        chain = { key, frames, kind, ...(module === undefined ? {} : { module }) };
      }
    }
    memo.set(leafId, chain);
    return chain;
  };
}

interface Tally {
  count: number;
  frames: readonly ProfileNode[];
  ticks: Map<number, number>;
}

/** The hottest stack of the samples in [fromUs, toUs] (caller's clock, µs) across the pieces. */
export function hottestStack(
  pieces: readonly ProfilePiece[],
  fromUs: number,
  toUs: number,
  opts: HotStackOptions,
): HotStack {
  const tallies = new Map<string, Tally>();
  const byKind = new Map<Kind, number>();
  const modules = new Map<string, number>();
  for (const { profile, offsetUs } of pieces) {
    const chainOf = chainsOf(profile, opts);
    const from = fromUs + offsetUs;
    const to = toUs + offsetUs;
    const counted = new Set<Tally>();
    let t = profile.startTime;
    const samples = profile.samples ?? [];
    const deltas = profile.timeDeltas ?? [];
    for (let i = 0; i < samples.length; i++) {
      t += deltas[i] ?? 0;
      if (t < from || t > to) continue;
      const chain = chainOf(samples[i]!);
      if (!chain) continue;
      byKind.set(chain.kind, (byKind.get(chain.kind) ?? 0) + 1);
      if (chain.module !== undefined) modules.set(chain.module, (modules.get(chain.module) ?? 0) + 1);
      if (chain.kind !== 'code') continue;
      let tally = tallies.get(chain.key);
      if (!tally) {
        tally = { count: 0, frames: chain.frames, ticks: new Map() };
        tallies.set(chain.key, tally);
      }
      if (!counted.has(tally)) {
        // A node's line ticks cover the whole profile: add them once per piece.
        counted.add(tally);
        for (const pt of chain.frames[0]?.positionTicks ?? [])
          tally.ticks.set(pt.line, (tally.ticks.get(pt.line) ?? 0) + pt.ticks);
      }
      tally.count++;
    }
  }
  let samples = 0;
  for (const [k, n] of byKind) if (k !== 'own' && k !== 'skip') samples += n;
  let best: Tally | undefined;
  let program: Tally | undefined;
  for (const tally of tallies.values()) {
    if (!best || tally.count > best.count) best = tally;
    if ((!program || tally.count > program.count) && tally.frames.some((n) => isProgramUrl(n.callFrame.url)))
      program = tally;
  }
  // node's own frames only (runMicrotask, processTicksAndRejections): the program's code it ran is the turn's
  // culprit when it has a fair share, as in a microtask flood, where the re-queued function is cheap per call and
  // node's dispatch around it collects most samples.
  if (best && program && best !== program && !best.frames.some((n) => isProgramUrl(n.callFrame.url))) {
    if (program.count * PROGRAM_SHARE >= best.count) best = program;
  }
  const code = byKind.get('code') ?? 0;
  // Whatever took most of the samples names the turn; code wins ties (it has a line to show).
  let attribution: Attribution = samples === 0 ? 'no-sample' : 'code';
  let most = code;
  for (const k of ['module-loading', 'garbage-collection', 'native'] as const) {
    const n = byKind.get(k) ?? 0;
    if (n > most) [attribution, most] = [k, n];
  }
  if (!best || attribution !== 'code')
    return { frames: [], attribution, samples, share: samples === 0 ? 0 : most / samples, modules };
  const limit = opts.limit ?? 8;
  const leaf = best.frames[0]!.callFrame;
  const first = leaf.lineNumber + 1;
  const last = opts.linesIn?.(leaf.url) ?? Number.MAX_SAFE_INTEGER;
  let hotLine: number | undefined;
  let lineTicks = 0;
  for (const [l, n] of best.ticks) if (l >= first && l <= last && n > lineTicks) [hotLine, lineTicks] = [l, n];
  const kept = best.frames.slice(0, limit);
  // Down to the user's code: when the first frames are all a library's or node's, the first of the
  // user's follows them (the frames in between are left out).
  if (!kept.some((n) => isUserUrl(n.callFrame.url))) {
    const mine = best.frames.slice(limit).find((n) => isUserUrl(n.callFrame.url));
    if (mine) kept.push(mine);
  }
  const frames: HotFrame[] = kept.map((n, i) =>
    i === 0 && hotLine !== undefined ? { ...n.callFrame, hotLine } : n.callFrame,
  );
  return { frames, attribution, samples, share: best.count / samples, modules };
}
