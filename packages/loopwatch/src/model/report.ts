/**
 * The facts loopwatch reports. Instrumentation produces these; sinks only print or ship them.
 * A new kind touches `instrument/` and `model/`; a new output touches only `sinks/`.
 */

/** One stack frame, already resolved through source maps where a map exists. */
export interface Frame {
  /** Function name as V8 reports it (`<anonymous>` when it has none). */
  readonly functionName: string;
  /** Path or URL of the user's source file. */
  readonly file: string;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column. */
  readonly column: number;
  /** Whose code: the user's, a library's (`node_modules`), node's own. Absent means the user's. */
  readonly origin?: FrameOrigin;
}

export type FrameOrigin = 'user' | 'library' | 'node';

/** A task as reports name it. */
export interface TaskRef {
  readonly id: number;
  readonly name: string;
}

export type ReportKind =
  | 'task-dump'
  | 'unhandled-task-error'
  | 'task-destroyed-pending'
  | 'never-awaited'
  | 'slow-callback'
  | 'stall'
  | 'loop-lag'
  | 'thread-affinity'
  | 'start-up'
  | 'summary';

/**
 * What a slow turn's time went to: the user's code, a blocking call, node/V8 work (garbage
 * collection, compiling, loading modules), native code, or nothing the profiler saw.
 */
export type Attribution =
  'code' | 'blocking-call' | 'garbage-collection' | 'compilation' | 'module-loading' | 'native' | 'no-sample';

/** One pending task in a `task-dump`. */
export interface TaskSnapshot {
  readonly id: number;
  readonly name: string;
  readonly parentId: number | null;
  readonly ageMs: number;
  /** Frames where the task was created, innermost first, limited. */
  readonly createdAt: readonly Frame[];
  /**
   * Where it waits, innermost first: the `await` line of the suspended function, then the `await`
   * lines of the tasks awaiting it (what asyncio's `print_stack` shows). Empty while it runs.
   */
  readonly waitingAt: readonly Frame[];
  /** The task it awaits, when that is a task (the await graph), or the task holding the lock it waits for. */
  readonly awaitsId?: number;
  /** The name of the lock it waits for (`lockWaiting`); `awaitsId` is then its holder, when one is known. */
  readonly waitsForLock?: string;
}

/** How an ended task ended, as far as can be known. */
export interface TerminatedOutcome {
  readonly state: 'resolved' | 'rejected' | 'unknown';
  /** For `rejected`: the error, one line. */
  readonly error?: string;
  /** For a task that ended through an AbortSignal: the reason, where `abort()` was called (or the timeout made), and the `AbortSignal.any` hops. */
  readonly abortedBy?: AbortedBy;
}

/** Who aborted a task: the reason, the frames of the `abort()` call (or of `AbortSignal.timeout`), the way it came. */
export interface AbortedBy {
  readonly reason: string;
  readonly at: readonly string[];
  readonly via?: readonly string[];
}

/** Tasks with the same name and waiting stack, folded into one line of a dump. */
export interface TaskGroup {
  readonly name: string;
  readonly count: number;
  readonly oldestMs: number;
  readonly waitingAt: readonly Frame[];
  /** Ids of the tasks, oldest first. */
  readonly ids: readonly number[];
}

export interface LoopLagFigures {
  readonly intervalMs: number;
  /** Event-loop delay percentiles over the interval, in ms (stalls measured by the watchdog included). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /**
   * The rest of OpenTelemetry's `nodejs.eventloop.delay.*` set, same basis (ms, stalls included, the
   * histogram's resolution subtracted). Always set by the loop-lag monitor.
   */
  readonly p90Ms?: number;
  readonly minMs?: number;
  readonly meanMs?: number;
  readonly stddevMs?: number;
  /** Event-loop utilisation over the interval, 0..1 (a delta, not cumulative). */
  readonly utilization: number;
  /** Stalls the watchdog saw during the interval. */
  readonly stalls: number;
}

/** Where loop-lag figures are shipped (StatsD, Prometheus); `close` releases what loopwatch created. */
export interface LoopLagOutput {
  write(f: LoopLagFigures): void;
  close(): void;
}

/** What every report carries. */
interface ReportBase {
  /** Wall-clock time of the report, ms since epoch. */
  readonly time: number;
  /** The process (several processes of one test run write to one terminal); stamped by the bus. */
  readonly pid?: number;
  /** Its main script, relative to the working directory when below it. */
  readonly script?: string;
}

/** Where a report points: the culprit in the user's own source. */
interface Site {
  /** The culprit, `file:line:col`, in the user's own source. */
  readonly location?: string;
  /** The culprit frame's function name. */
  readonly functionName?: string;
}

/** A unhandled error's essentials. */
export interface ErrorFacts {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

/** Every pending task (`dumpTasks`, `kill -USR2`, `monitorTasks`). */
export interface TaskDumpReport extends ReportBase {
  readonly kind: 'task-dump';
  /** False when task tracking is off (production mode): no tasks can be listed. */
  readonly tracking: boolean;
  /** Pending tasks in all (listed one by one or folded into groups). */
  readonly count: number;
  readonly tasks: readonly TaskSnapshot[];
  /** Tasks with the same name and waiting stack, folded (largest first). */
  readonly groups?: readonly TaskGroup[];
  /** Await cycles (deadlocks), each as the tasks in order, the first repeated last. */
  readonly cycles?: readonly (readonly TaskRef[])[];
}

export interface UnhandledTaskErrorReport extends ReportBase, Site {
  readonly kind: 'unhandled-task-error';
  /** The failed task, when the rejected promise was one loopwatch tracked. */
  readonly task?: TaskRef;
  /** Frames where the task was started (the `source_traceback`), innermost first. */
  readonly createdAt?: readonly Frame[];
  readonly error: ErrorFacts;
  /** When the error is an abort's: who aborted (debug mode notes every abort). */
  readonly abortedBy?: AbortedBy;
}

export interface TaskDestroyedPendingReport extends ReportBase, Site {
  readonly kind: 'task-destroyed-pending';
  readonly task: TaskRef;
  readonly createdAt: readonly Frame[];
  /** Where it was waiting. */
  readonly stack: readonly Frame[];
}

export interface NeverAwaitedReport extends ReportBase, Site {
  readonly kind: 'never-awaited';
  readonly task: TaskRef;
  readonly createdAt: readonly Frame[];
}

/** Slow turns that were counted, not analysed (the one-report-a-second budget). */
export interface RateLimited {
  readonly count: number;
  readonly longestMs: number;
  readonly totalMs: number;
  /** Epoch ms of the first. */
  readonly sinceMs: number;
}

export interface SlowCallbackReport extends ReportBase, Site {
  readonly kind: 'slow-callback';
  readonly durationMs: number;
  readonly attribution: Attribution;
  /** Where the time went, innermost first. */
  readonly stack: readonly Frame[];
  readonly task?: TaskRef;
  readonly createdAt?: readonly Frame[];
  /** Slow turns left out since the previous report. */
  readonly suppressed?: RateLimited;
  /** Set on the line that only sums up a burst that was left out (no analysis of its own). */
  readonly burst?: RateLimited;
}

export interface StallReport extends ReportBase, Site {
  readonly kind: 'stall';
  readonly durationMs: number;
  readonly stack?: readonly Frame[];
  readonly task?: TaskRef;
  readonly createdAt?: readonly Frame[];
  readonly stall: StallDetail;
}

export interface LoopLagReport extends ReportBase {
  readonly kind: 'loop-lag';
  readonly lag: LoopLagFigures;
}

export interface ThreadAffinityReport extends ReportBase, Site {
  readonly kind: 'thread-affinity';
  /** The blocking API, `fs.readFileSync`. */
  readonly api: string;
  readonly durationMs: number;
  readonly task?: TaskRef;
  readonly stack: readonly Frame[];
}

export interface StartUpReport extends ReportBase {
  readonly kind: 'start-up';
  /** Time spent loading modules in slow turns, ms. */
  readonly durationMs: number;
  readonly turns: number;
  readonly longestMs: number;
  readonly attribution: 'module-loading';
  /** The slowest modules to load. */
  readonly modules: readonly { readonly file: string; readonly ms: number }[];
}

export interface SummaryReport extends ReportBase {
  readonly kind: 'summary';
  readonly summary: SummaryDetail;
}

/**
 * A report: the facts of one kind. Instruments produce these; the sinks write the words (the JSON
 * sink adds the one-sentence `message`, the text sink prints it first).
 */
export type Report =
  | TaskDumpReport
  | UnhandledTaskErrorReport
  | TaskDestroyedPendingReport
  | NeverAwaitedReport
  | SlowCallbackReport
  | StallReport
  | LoopLagReport
  | ThreadAffinityReport
  | StartUpReport
  | SummaryReport;

/** A report as the JSON sink writes it: the facts plus the sentence. */
export type ReportLine = Report & { readonly message: string };

/** The report of one kind. */
export type ReportOf<K extends ReportKind> = Extract<Report, { kind: K }>;

/** Fields some report kinds carry, for code that treats every kind alike (the bus, the text sink). */
export interface ReportFields {
  readonly location?: string;
  readonly functionName?: string;
  readonly task?: TaskRef;
  readonly createdAt?: readonly Frame[];
  readonly stack?: readonly Frame[];
  readonly attribution?: Attribution;
  readonly durationMs?: number;
  readonly error?: ErrorFacts;
  readonly abortedBy?: AbortedBy;
  readonly tasks?: readonly TaskSnapshot[];
  readonly groups?: readonly TaskGroup[];
  readonly cycles?: readonly (readonly TaskRef[])[];
  readonly modules?: readonly { readonly file: string; readonly ms: number }[];
  readonly summary?: SummaryDetail;
  readonly lag?: LoopLagFigures;
  readonly stall?: StallDetail;
}

/** A report seen through the fields any kind may have. */
export function fieldsOf(r: Report): ReportFields {
  return r;
}

/**
 * The culprit frame of a stack: the innermost of the user's own code, else of a library's (tape's stream
 * under node's console), else the innermost. node's own frames are context, never the culprit while the
 * program has one on the stack.
 */
export function culpritOf(stack: readonly Frame[]): Frame | undefined {
  return stack.find((f) => f.origin === undefined) ?? stack.find((f) => f.origin === 'library') ?? stack[0];
}

/** Whether a stack holds node's own frames only: nothing of the program's to blame. */
export function onlyNodeFrames(stack: readonly Frame[]): boolean {
  return stack.length > 0 && stack.every((f) => f.origin === 'node');
}

/** Counts of one process's reports, written at exit. */
export interface SummaryDetail {
  readonly total: number;
  readonly byKind: Readonly<Partial<Record<ReportKind, number>>>;
  readonly bySite: readonly { readonly kind: ReportKind; readonly site: string; readonly count: number }[];
  /** Blocking built-ins this Node line would not let debug mode wrap (read-only exports): their calls go unreported. */
  readonly notWatched?: readonly string[];
}

/** Where reports go. Sinks must never throw and never block the loop for long. */
export interface Sink {
  write(report: Report): void;
  /** Flush and release; called once at disable/exit. */
  close?(): Promise<void> | void;
}

/** `file:line:col` of a frame. */
export function formatLocation(frame: Frame): string {
  return `${frame.file}:${frame.line}:${frame.column}`;
}

/** Detail of a `stall` report: how the blocking frame was found. */
export interface StallDetail {
  /**
   * `paused`: the exact frame, paused while blocked. `paused-after-native`: the thread sat in a native
   * call V8 cannot interrupt; the frame is where that call returned. `sampled`: CPU-profile samples only.
   * `none`: no frame (inspector unavailable).
   */
  readonly capture: 'paused' | 'paused-after-native' | 'sampled' | 'none';
  /**
   * True on the early report the watchdog writes itself while the loop is *still* blocked (a loop that
   * never comes back would otherwise never be reported); the final report follows if it ends.
   */
  readonly ongoing?: boolean;
  /** How long after the stall began the watchdog noticed it, ms. */
  readonly detectedAfterMs: number;
  /** From pause request to pause, ms. */
  readonly pauseLatencyMs?: number;
  /** Hottest CPU-profile stack during the stall, innermost first. */
  readonly sampledStack?: readonly Frame[];
  readonly note?: string;
}
