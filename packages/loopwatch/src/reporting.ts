/**
 * Between the instruments and the sink: which reports are written (`kinds`, `ignore`, `silence`),
 * repeats of one site counted instead of printed, every report stamped with the process it came from,
 * and the counts kept for the summary at exit. A sink that throws must not take the program down, so
 * failures are swallowed here (a debugging aid must never be the crash).
 */
import path from 'node:path';
import type { Report, ReportKind, Sink, SummaryDetail, SummaryReport } from './model/report.js';
import { fieldsOf } from './model/report.js';
import { reportMessage } from './sinks/words.js';
import { PathGlobs } from './model/glob.js';
import { mainScript } from './entry.js';
import type { WorkerReportPolicy } from './instrument/watchdog-protocol.js';

export interface ReportPolicy {
  /** Only these kinds are written; all when absent. */
  readonly kinds?: readonly ReportKind[];
  /** Reports whose culprit is in a file matching one of these globs are dropped. */
  readonly ignore?: readonly string[];
  /** Known sites (`file:line` or `file:line:col`, a path suffix will do) whose reports are dropped. */
  readonly silence?: readonly string[];
}

/** Kinds that describe a site (one report per site, repeats counted); the others are periodic views. */
const PER_SITE: ReadonlySet<ReportKind> = new Set([
  'never-awaited',
  'slow-callback',
  'thread-affinity',
  'unhandled-task-error',
  'task-destroyed-pending',
  'stall',
]);

/**
 * One bug, one report: a report of the first kind at a site that already had a report of the second is
 * the same event told again, and is dropped (not counted). A floating promise that rejects gets an
 * `unhandled-task-error` when it fails (the error and its stack, the task, where it was started) and a
 * `never-awaited` when it is collected (the task, where it was started): the first tells all the second
 * does, and sooner. The other way round both are written: a never-awaited promise of a site that later
 * fails brings an error nobody saw yet.
 */
const TOLD_BY: ReadonlyMap<ReportKind, ReportKind> = new Map([['never-awaited', 'unhandled-task-error']]);

/**
 * Loading modules is every program's first turn: a `start-up` report is written only when it is unusual
 * (longer than this) or asked for (`LOOPWATCH_KINDS` names `start-up`). On third-party test suites one per
 * test process was most of what loopwatch printed (koa: 72 of 77 reports), and none said anything.
 */
export const UNUSUAL_START_UP_MS = 1000;

interface SiteCount {
  readonly kind: ReportKind;
  readonly label: string;
  count: number;
}

function scriptName(): string {
  const s = mainScript();
  if (s === '-') return s;
  const rel = path.relative(process.cwd(), s);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : s;
}

function fileOf(location: string): string {
  return location.replace(/:\d+:\d+$/, '');
}

export class ReportBus {
  #policy: ReportPolicy = {};
  #sink: Sink | undefined;
  #kinds: ReadonlySet<ReportKind> | undefined;
  #ignore = new PathGlobs([]);
  #silence: readonly string[] = [];
  readonly #byKind = new Map<ReportKind, number>();
  readonly #bySite = new Map<string, SiteCount>();
  readonly #pid: number;
  readonly #script: string;

  /** `stamp`: the process a worker thread reports for (a worker's argv is not the program's). */
  constructor(stamp?: { readonly pid: number; readonly script: string }) {
    this.#pid = stamp?.pid ?? process.pid;
    this.#script = stamp?.script ?? scriptName();
  }

  /** The policy and stamp as plain data, for a worker thread that writes reports itself (the watchdog). */
  workerPolicy(): WorkerReportPolicy {
    return { ...this.#policy, pid: this.#pid, script: this.#script };
  }

  get sink(): Sink | undefined {
    return this.#sink;
  }

  set sink(next: Sink | undefined) {
    this.#sink = next;
  }

  configure(policy: ReportPolicy): void {
    this.#policy = {
      ...(policy.kinds ? { kinds: [...policy.kinds] } : {}),
      ...(policy.ignore ? { ignore: [...policy.ignore] } : {}),
      ...(policy.silence ? { silence: [...policy.silence] } : {}),
    };
    this.#kinds = policy.kinds ? new Set(policy.kinds) : undefined;
    this.#ignore = new PathGlobs(policy.ignore ?? []);
    this.#silence = policy.silence ?? [];
  }

  /** Whether a report of this kind would be written at all (lets instruments skip work). */
  wants(kind: ReportKind): boolean {
    return !this.#kinds || this.#kinds.has(kind);
  }

  #silenced(location: string): boolean {
    for (const s of this.#silence) {
      if (location === s || location.endsWith(`/${s}`) || location.endsWith(s)) return true;
      const lineOnly = location.replace(/:\d+$/, '');
      if (lineOnly === s || lineOnly.endsWith(`/${s}`)) return true;
    }
    return false;
  }

  emit(r: Report): void {
    try {
      if (!this.wants(r.kind)) return;
      if (r.kind === 'start-up' && r.durationMs < UNUSUAL_START_UP_MS && !this.#kinds?.has('start-up')) return;
      const f = fieldsOf(r);
      if (f.location !== undefined && (this.#ignore.matches(fileOf(f.location)) || this.#silenced(f.location))) return;
      const toldBy = TOLD_BY.get(r.kind);
      if (toldBy && f.location !== undefined && this.#bySite.has(`${toldBy}\n${f.location}`)) return;
      this.#byKind.set(r.kind, (this.#byKind.get(r.kind) ?? 0) + 1);
      let repeat = false;
      if (PER_SITE.has(r.kind)) {
        const site = f.location ?? f.attribution ?? reportMessage(r);
        const key = `${r.kind}\n${site}`;
        const seen = this.#bySite.get(key);
        if (seen) {
          seen.count++;
          repeat = true;
        } else {
          const label = f.location
            ? `${f.functionName ?? '<anonymous>'} (${f.location})`
            : (f.attribution ?? reportMessage(r));
          this.#bySite.set(key, { kind: r.kind, label, count: 1 });
        }
      }
      if (repeat) return;
      this.#sink?.write({ ...r, pid: this.#pid, script: this.#script });
    } catch {
      // Reporting is best effort by design.
    }
  }

  /** Built-ins left unwrapped, named in the summary (never on their own line: a quiet program stays quiet). */
  notWatched: readonly string[] = [];

  /** Counts by kind and by site since the start, or nothing when nothing was reported. */
  summary(): SummaryReport | undefined {
    let total = 0;
    for (const n of this.#byKind.values()) total += n;
    const counted = [...this.#byKind].filter(([k]) => k !== 'task-dump' && k !== 'loop-lag');
    if (counted.length === 0) return undefined;
    const bySite = [...this.#bySite.values()].sort((a, b) => b.count - a.count);
    const detail: SummaryDetail = {
      total,
      byKind: Object.fromEntries(this.#byKind),
      bySite: bySite.map((s) => ({ kind: s.kind, site: s.label, count: s.count })),
      ...(this.notWatched.length > 0 ? { notWatched: this.notWatched } : {}),
    };
    return { kind: 'summary', time: Date.now(), summary: detail, pid: this.#pid, script: this.#script };
  }

  /** Writes the summary (exit); not filtered by `kinds`. */
  writeSummary(): void {
    const s = this.summary();
    if (!s) return;
    try {
      this.#sink?.write(s);
    } catch {
      // Best effort.
    }
  }

  reset(): void {
    this.#byKind.clear();
    this.#bySite.clear();
  }
}
