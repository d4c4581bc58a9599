/**
 * The live table of work units (`trackWork`): the enabled loopwatch installs it on the process-wide
 * symbol every copy of loopwatch reads. One record per unit, which is also the handle the caller gets
 * (one allocation per unit); a phase change is a few field writes, plus (debug mode) a raw capture of
 * the calling frames that V8 formats only when a dump reads it. Ended units leave the table for a short
 * history, as ended tasks do.
 */
import type { PromiseRecord } from '../model/task.js';
import { WORK_TRACKER, type WorkTracker, type WorkUnit } from '../model/work.js';
import { errorText } from '../model/error-text.js';
import { captureRaw } from '../source/frames.js';
import { isBuiltinSite, sitesOf, type RawSites } from '../model/call-sites.js';
import type { Clock } from './clock.js';

/** Ended units remembered. */
export const WORK_HISTORY = 100;
/** Earlier phases kept per unit (for `where`). */
const PHASES_KEPT = 8;
/** Frames kept per phase change: the caller of `phase()` and a few of its callers. */
const SITE_LIMIT = 4;

/** Told of every change (the recorder). */
export interface WorkObserver {
  begun(u: WorkRecord): void;
  phased(u: WorkRecord): void;
  ended(u: WorkRecord): void;
}

export interface PastPhase {
  readonly text: string;
  readonly at: number;
  readonly raw: RawSites | undefined;
  readonly named: PromiseRecord | undefined;
}

/**
 * Where a phase was set (debug mode): its raw capture, formatted on first read; or, for a phase that
 * named a promise loopwatch made a record of, the call that made that promise (of the async function,
 * or of the function that made a plain one): the capture that record already paid for, a line or two
 * from the `phase()` call.
 */
export function phaseSites(p: {
  readonly raw: RawSites | undefined;
  readonly named: PromiseRecord | undefined;
}): NodeJS.CallSite[] | undefined {
  if (p.raw !== undefined) return sitesOf(p.raw);
  const on = p.named;
  if (on === undefined) return undefined;
  if (on.isTask && !on.spawned) return on.sites.slice(1);
  // A plain promise: past `new Promise` and the function that made it, the call of that function.
  let i = 0;
  while (i < on.sites.length && isBuiltinSite(on.sites[i]!)) i++;
  return on.sites.length > i + 1 ? on.sites.slice(i + 1) : on.sites.slice(i);
}

export class WorkRecord implements WorkUnit {
  phaseText = '';
  /** Clock time the current phase was set (the start until the first phase). */
  phaseAt: number;
  /** The `phase()` call's frames, unformatted (debug mode): {@link sites} formats them for a dump. */
  raw: RawSites | undefined = undefined;
  /** Loopwatch's record of the promise the phase waits on (debug mode). */
  waitingOn: PromiseRecord | undefined = undefined;
  endedAt: number | undefined = undefined;
  error: string | undefined = undefined;
  /** Earlier phases, oldest first (debug mode; made on the first change). */
  past: PastPhase[] | undefined = undefined;
  readonly #table: WorkTable;

  // Made per unit on the caller's path: positional, no options object.
  // eslint-disable-next-line max-params
  constructor(
    table: WorkTable,
    readonly id: number,
    readonly kind: string,
    readonly key: string,
    readonly startedAt: number,
    /** The task that began it (debug mode). */
    readonly parent: PromiseRecord | undefined,
  ) {
    this.#table = table;
    this.phaseAt = startedAt;
  }

  /** Frames of the `phase()` call (debug mode). */
  get sites(): NodeJS.CallSite[] | undefined {
    return phaseSites({ raw: this.raw, named: this.waitingOn });
  }

  get live(): boolean {
    return this.endedAt === undefined;
  }

  get name(): string {
    return `${this.kind} ${this.key}`;
  }

  phase(text: string, waitingOn?: PromiseLike<unknown>): void {
    this.#table.setPhase(this, text, waitingOn);
  }

  end(): void {
    this.#table.end(this, undefined);
  }

  fail(error: unknown): void {
    this.#table.end(this, errorText(error));
  }
}

/** Where `phase()` was called: frames above (and including) the method itself dropped. */
// eslint-disable-next-line @typescript-eslint/unbound-method
const PHASE_METHOD = WorkRecord.prototype.phase;

export class WorkTable implements WorkTracker {
  observer: WorkObserver | undefined = undefined;
  /** Capture where each phase is set (debug mode: a few µs per call, too much for production). */
  captureSites = false;
  readonly #live = new Map<number, WorkRecord>();
  readonly #ended: WorkRecord[] = [];
  #nextId = 1;

  constructor(
    readonly clock: Clock,
    readonly currentTask: () => PromiseRecord | undefined = () => undefined,
    /** The task tracker's record of a promise (debug mode). */
    readonly recordOf: (promise: unknown) => PromiseRecord | undefined = () => undefined,
  ) {}

  begin(kind: string, key: string): WorkUnit {
    const rec = new WorkRecord(this, this.#nextId++, kind, key, this.clock.now(), this.currentTask());
    this.#live.set(rec.id, rec);
    this.observer?.begun(rec);
    return rec;
  }

  setPhase(rec: WorkRecord, text: string, waitingOn?: PromiseLike<unknown>): void {
    if (rec.endedAt !== undefined) return;
    // Earlier phases are kept in debug mode only: production mode stays a few field writes per
    // phase, with nothing allocated that outlives it (a recording keeps every phase in both).
    if (this.captureSites && rec.phaseText !== '') {
      const past = (rec.past ??= []);
      past.push({ text: rec.phaseText, at: rec.phaseAt, raw: rec.raw, named: rec.waitingOn });
      if (past.length > PHASES_KEPT) past.shift();
    }
    rec.phaseText = text;
    rec.phaseAt = this.clock.now();
    const on = this.captureSites && waitingOn !== undefined ? this.recordOf(waitingOn) : undefined;
    rec.waitingOn = on;
    // A capture is a few µs, the largest part of a phase change in debug mode: taken only when the phase
    // names no promise with a record (whose own capture says where the phase's call was made).
    rec.raw = this.captureSites && on === undefined ? captureRaw(PHASE_METHOD, SITE_LIMIT) : undefined;
    this.observer?.phased(rec);
  }

  end(rec: WorkRecord, error: string | undefined): void {
    if (rec.endedAt !== undefined) return;
    rec.endedAt = this.clock.now();
    rec.error = error;
    this.#live.delete(rec.id);
    this.#ended.push(rec);
    if (this.#ended.length > WORK_HISTORY) this.#ended.shift();
    this.observer?.ended(rec);
  }

  /** Live units, oldest first. */
  live(): WorkRecord[] {
    return [...this.#live.values()];
  }

  get size(): number {
    return this.#live.size;
  }

  /** Ended units, newest first. */
  ended(): WorkRecord[] {
    return [...this.#ended].reverse();
  }

  find(id: number): WorkRecord | undefined {
    return this.#live.get(id) ?? this.#ended.find((r) => r.id === id);
  }

  /** Makes this table the one `trackWork` reaches, in every copy of loopwatch in the process. */
  install(): void {
    (globalThis as { [WORK_TRACKER]?: WorkTracker })[WORK_TRACKER] = this;
  }

  uninstall(): void {
    const g = globalThis as { [WORK_TRACKER]?: WorkTracker };
    if (g[WORK_TRACKER] === this) delete g[WORK_TRACKER];
  }

  clear(): void {
    this.#live.clear();
    this.#ended.length = 0;
  }
}
