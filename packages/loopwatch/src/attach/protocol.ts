/**
 * The attach protocol: one JSON object per line each way, over an owner-only Unix socket (or, when
 * asked, TCP on a given address with a token). The client sends a {@link AttachRequest}; the endpoint
 * answers with an {@link AttachAnswer}. When the main thread does not answer in time (it is blocked),
 * the endpoint's worker answers itself: `busy` says for how long and where, `stale` carries the last
 * answer of that kind and its age.
 */
import type { Frame, Report, TaskRef, TerminatedOutcome } from '../model/report.js';

export type AttachCommand = 'info' | 'ps' | 'pstree' | 'where' | 'dump' | 'top' | 'ended';

export interface AttachRequest {
  readonly cmd: AttachCommand;
  /** `where`: the task id. */
  readonly task?: number;
  /** `where`: a work unit's id (`w3` on the command line). */
  readonly work?: number;
  /** TCP only: the token the endpoint printed. */
  readonly token?: string;
}

export interface ProcessInfo {
  readonly pid: number;
  readonly command: string;
  readonly mode: 'off' | 'debug' | 'production';
  readonly uptimeMs: number;
  readonly node: string;
  /** Loop lag from the heartbeat over the last 10 s, ms. */
  readonly lag: { readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };
  /** Pending tasks (debug mode; 0 otherwise). */
  readonly tasks: number;
  /** Live work units (`trackWork`, both modes). */
  readonly work?: number;
}

/** One unit of work (`trackWork`) in `ps` / `top` / `where`. */
export interface WorkRow {
  readonly id: number;
  readonly kind: string;
  readonly key: string;
  /** `<kind> <key>`. */
  readonly name: string;
  /** The current phase ('' before the first `phase()`); the last one for an ended unit. */
  readonly phase: string;
  readonly ageMs: number;
  /** Time in the current phase, ms. */
  readonly phaseMs: number;
  /** The task that began it (debug mode). */
  readonly parentId: number | null;
  /** Where the current phase was set (debug mode): the `phase()` call, then its callers. */
  readonly waitingAt: readonly Frame[];
  /** Ended units: how long ago, and how. */
  readonly endedAgoMs?: number;
  readonly outcome?: 'done' | 'failed';
  readonly error?: string;
  /** `where`: the earlier phases, oldest first, each with how long it lasted. */
  readonly past?: readonly { readonly phase: string; readonly forMs: number; readonly at?: Frame }[];
}

/** One task in `ps` / `top` / `where`. */
export interface TaskRow {
  readonly id: number;
  readonly name: string;
  /** `running`: its code is on the stack right now; `pending`: waiting. */
  readonly state: 'running' | 'pending';
  readonly ageMs: number;
  /** Time its own code ran on the loop, ms. */
  readonly busyMs: number;
  readonly parentId: number | null;
  readonly awaitsId?: number;
  readonly waitsForLock?: string;
  readonly waitingAt: readonly Frame[];
  readonly createdAt: readonly Frame[];
}

export interface EndedRow extends TaskRef {
  readonly endedAgoMs: number;
  readonly ageMs: number;
  readonly busyMs: number;
  readonly outcome: TerminatedOutcome;
  readonly createdAt: readonly Frame[];
}

export interface SlowRow {
  readonly agoMs: number;
  readonly durationMs: number;
  readonly functionName?: string;
  readonly location?: string;
  readonly task?: string;
}

export interface TopData {
  readonly info: ProcessInfo;
  /** Event-loop utilisation since the previous `top` answer (or the start), 0..1. */
  readonly utilization: number;
  readonly slow: readonly SlowRow[];
  readonly tasks: readonly TaskRow[];
  readonly ended: readonly EndedRow[];
  /** Live work units, the longest in its phase first. */
  readonly work?: readonly WorkRow[];
}

export interface WhereData {
  readonly task?: TaskRow;
  /** `where` of a work unit (live or ended). */
  readonly work?: WorkRow;
  readonly ended?: EndedRow;
  /** The creation chain: the task's parents' creation frames, innermost first (source_traceback). */
  readonly chain: readonly { readonly id: number; readonly name: string; readonly createdAt: readonly Frame[] }[];
}

export interface BusyInfo {
  /** How long the main thread has not been back to its loop, ms. */
  readonly forMs: number;
  /** Where it is, through the inspector (innermost first); empty when it could not be paused. */
  readonly stack: readonly Frame[];
  readonly task?: TaskRef;
  readonly note?: string;
}

export interface AttachAnswer {
  readonly ok: boolean;
  readonly pid: number;
  readonly cmd: AttachCommand;
  readonly error?: string;
  /** The main thread's answer (absent when it was busy). */
  readonly data?: unknown;
  /** Set when the main thread did not answer in time. */
  readonly busy?: BusyInfo;
  /** With `busy`: the last fresh answer of this kind and how old it is. */
  readonly stale?: { readonly ageMs: number; readonly data: unknown };
}

export type { Report };

/** Worker ↔ main thread over a MessagePort. */
export interface MainRequest {
  readonly id: number;
  readonly req: AttachRequest;
}
export interface MainReply {
  readonly id: number;
  readonly ok: boolean;
  readonly data?: unknown;
  readonly error?: string;
}

/** `LOOPWATCH_ATTACH`: unset/`1`/`unix` (the default socket), `0` (off), or `tcp:HOST:PORT` (with a token). */
export type AttachSetting = boolean | 'unix' | { readonly tcp: { readonly host: string; readonly port: number } };

/** How the endpoint is reached: a Unix socket path, or TCP with a token. */
export type Address =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly token: string };
