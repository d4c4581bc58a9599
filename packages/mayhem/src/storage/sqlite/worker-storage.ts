/**
 * SQLite storage on a worker thread: the main thread's side. It implements {@link Storage} (with the
 * rails' control and the experiments' journal) by sending each call to the storage worker
 * (worker.ts), which runs the synchronous engine, so the main thread's loop never runs a statement,
 * an index catch-up, a retention sweep or a checkpoint.
 *
 * Group commit across the thread boundary: the calls made during one turn of the loop go to the
 * worker in one message (a `setImmediate` after the first); the worker commits them in one
 * transaction and sends the answers back in one message. A call resolves only when its answer says
 * the write committed: the ack contract (a resolved save is a durable save) holds as before.
 *
 * A worker that dies (an uncaught error, out of memory, terminated) is a storage fault, not a crash:
 * the calls it had not answered reject (their writes may or may not have committed; every write is
 * an idempotent upsert, so the pipeline's retry or a redelivery is safe), the fault is logged once,
 * and calls made while no worker runs reject at once — so the pipeline's database health goes down
 * and the consumer pauses intake, as for any storage fault. A new worker is started with backoff
 * (it reopens the file, catching up the id index); once it answers, the service resumes.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { BlastTake } from '../../core/blast.js';
import type {
  AckRecord,
  CallCount,
  ClaimMode,
  DeadLetter,
  RestartClaim,
  Storage,
  UnfinishedReport,
} from '../../core/contracts.js';
import type { ExperimentRun, ExperimentStore, ProbeCheck } from '../../core/experiment.js';
import type { RestartRequest } from '../../core/message.js';
import type { AuditEntry, AuditQuery, FleetControl, PauseState, StoredSettings } from '../../core/rails.js';
import type { CheckpointStats } from './checkpoint.js';
import type { SqliteStats } from './storage.js';
import type { Pruner } from './retention.js';
import { closedError, rejectAborted } from '../record.js';
import { PendingCalls } from './pending-calls.js';
import { OP, type ControlState, type FromWorker, type OpName, type ToWorker, type WorkerInit } from './protocol.js';

export interface SqliteWorkerOptions {
  /** Database file (created if missing; its directory must exist); `:memory:` works (lost with the worker). */
  readonly path: string;
  readonly logger: Logger;
  readonly retentionMs?: number | undefined;
  readonly deadLetterRetentionMs?: number | undefined;
  readonly retentionEveryMs?: number | undefined;
  readonly walLimitBytes?: number | undefined;
  readonly maxBatch?: number | undefined;
  /** First wait before starting a new worker after a fault (doubles per fault in a row, to 5 s). Default 100 ms. */
  readonly restartBackoffMs?: number;
}

/** What the worker reports of itself (tests, the benchmark). */
export interface SqliteWorkerStats {
  /** The thread the engine runs on (never the main thread's 0). */
  readonly threadId: number;
  readonly stats: SqliteStats;
  readonly checkpoints: CheckpointStats | undefined;
  readonly retention: Pruner['stats'];
}

/** The SQLite storage on its worker thread. */
export interface SqliteWorkerStorage extends Storage {
  control(): FleetControl;
  experiments(): ExperimentStore;
  unfinished(): Promise<UnfinishedReport>;
  /** Resolves once the first worker opened the file; rejects (one line) when it could not. */
  readonly ready: Promise<void>;
  /** The engine's counters, read from the worker. */
  stats(): Promise<SqliteWorkerStats>;
  /** A retention pass now (tests). */
  retentionPass(): Promise<unknown>;
  /** Workers started after a fault so far. */
  readonly restarts: number;
  /**
   * Fault drills (tests): end the current worker as `terminate` (Worker.terminate, as an OOM
   * kill would) or `crash` (an uncaught error in the worker). Resolves when it has exited.
   */
  killWorker(how: 'terminate' | 'crash'): Promise<void>;
  /** Resolves when a worker is up and answering (at once when one is). */
  whenUp(): Promise<void>;
}

// The worker's heap limit: past it the worker ends (a storage fault), not the process.
const WORKER_HEAP_MB = 1024;
// Its young generation is left at V8's default. Capped at 16 MB (`maxYoungGenerationSizeMb`) it took 35–45 MB
// off the process's peak RSS, but cost 4–9 % more process CPU (more scavenges: the worker's GC share doubled;
// measured 2026-12-08 at 200k and 1M, bench/RESULTS.md): the worker is the busier thread, so CPU won.
const MAX_BACKOFF_MS = 5_000;
// A worker that stayed up this long resets the backoff.
const STABLE_AFTER_MS = 10_000;

function workerUrl(): URL {
  const here = import.meta.url;
  // Under vitest this module runs from src/*.ts; the worker runs compiled (npm run build).
  if (here.endsWith('.ts'))
    return new URL(here.replace(/\/src\/storage\/sqlite\/worker-storage\.ts$/, '/dist/src/storage/sqlite/worker.js'));
  return new URL('./worker.js', here);
}

/**
 * Start the storage worker for the file `o.path` and return its storage at once; calls made before
 * it is ready wait in the worker's queue. Await `ready` to learn whether the file opened.
 */
export function startSqliteWorker(o: SqliteWorkerOptions): SqliteWorkerStorage {
  const log = o.logger;
  const baseBackoff = o.restartBackoffMs ?? 100;
  let worker: Worker | undefined;
  let generation = 0;
  let up = false; // the current worker said ready
  let startedAt = 0;
  let faultsInRow = 0;
  let restarts = 0;
  let closing = false;
  let closed = false;
  let nextId = 1;
  const pending = new PendingCalls((id) => worker?.postMessage({ t: 'abort', id } satisfies ToWorker));
  let outgoing: unknown[] = [];
  let sendScheduled = false;
  let state: ControlState = { pause: undefined, settings: undefined };
  const upWaiters: (() => void)[] = [];
  let faultError: Error | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let onClosed: (() => void) | undefined;

  let settleReady!: (err?: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    settleReady = (err) => (err === undefined ? res() : rej(err));
  });

  function start(): void {
    generation++;
    const init: WorkerInit = {
      path: o.path,
      logLevel: log.level,
      retentionMs: o.retentionMs,
      deadLetterRetentionMs: o.deadLetterRetentionMs,
      retentionEveryMs: o.retentionEveryMs,
      walLimitBytes: o.walLimitBytes,
      maxBatch: o.maxBatch,
      generation,
    };
    const w = new Worker(workerUrl(), {
      workerData: init,
      // MAYHEM_SQLITE_WORKER_CPU_PROF=<dir> (benchmarks): the worker writes its own CPU profile there.
      execArgv: process.env.MAYHEM_SQLITE_WORKER_CPU_PROF
        ? ['--cpu-prof', '--cpu-prof-dir', process.env.MAYHEM_SQLITE_WORKER_CPU_PROF]
        : [],
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
      stdout: false,
      stderr: false,
    });
    worker = w;
    let fatal: string | undefined;
    let error: string | undefined;
    w.on('message', (m: FromWorker) => {
      switch (m.t) {
        case 'answers':
          if (m.state !== undefined) state = m.state;
          pending.answered(m);
          break;
        case 'ready':
          state = m.state;
          up = true;
          startedAt = performance.now();
          faultError = undefined;
          if (generation === 1) settleReady();
          else log.info({ restarts }, 'SQLite storage worker is back: storage calls resume');
          for (const w of upWaiters.splice(0)) w();
          break;
        case 'state':
          state = m.state;
          break;
        case 'log':
          forwardLog(log, m.line);
          break;
        case 'fatal':
          fatal = m.error;
          break;
        case 'closed':
          onClosed?.();
          break;
      }
    });
    w.on('error', (err) => {
      error = err.message;
    });
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
      up = false;
      if (closing) {
        failAll(closedError());
        onClosed?.();
        return;
      }
      const why = fatal ?? error ?? `exit code ${code}`;
      if (generation === 1 && startedAt === 0) {
        // The first worker never opened the file: the start fails, as the synchronous adapter's did.
        closed = true;
        failAll(new Error(why));
        settleReady(new Error(why));
        return;
      }
      fault(why, startedAt === 0);
    });
  }

  /** The worker ended without being asked: reject what it held, say so once, start another. */
  function fault(why: string, reopenFailed: boolean): void {
    if (startedAt !== 0 && performance.now() - startedAt >= STABLE_AFTER_MS) faultsInRow = 0;
    startedAt = 0;
    faultsInRow++;
    faultError = new Error(`SQLite storage worker stopped (${why}); restarting it`);
    failAll(new Error(`SQLite storage worker stopped before answering (${why}): the write may or may not be recorded`));
    const delay = Math.min(MAX_BACKOFF_MS, baseBackoff * 2 ** (faultsInRow - 1));
    if (reopenFailed) log.debug({ why, delayMs: delay }, 'SQLite storage worker could not reopen the file; retrying');
    else
      log.error(
        { why, restartInMs: delay },
        `SQLite storage worker stopped: ${why}; unanswered writes are retried, intake pauses until a new worker is up`,
      );
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (closing) return;
      restarts++;
      start();
    }, delay);
  }

  function failAll(err: Error): void {
    outgoing = [];
    pending.failAll(err);
  }

  function flushOutgoing(): void {
    sendScheduled = false;
    if (outgoing.length === 0 || worker === undefined) return;
    const c = outgoing;
    outgoing = [];
    worker.postMessage({ t: 'calls', c } satisfies ToWorker);
  }

  function refuse(): Error | undefined {
    if (closing) return closedError();
    if (worker === undefined) return faultError ?? closedError();
    return undefined;
  }

  /**
   * Queue a call for this turn's batch; its answer resolves the promise. `inline`: `args` are the op's
   * argument entries themselves (protocol.ts's ARITY), not one array of them.
   */
  function call<T>(op: OpName, args: unknown[], signal?: AbortSignal, inline = false): Promise<T> {
    const no = refuse();
    if (no !== undefined) return Promise.reject(no);
    if (signal?.aborted) return rejectAborted(signal);
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.add(id, resolve as (value: unknown) => void, reject, signal);
      if (inline) {
        outgoing.push(id, OP[op], ...args);
        scheduleSend();
      } else push(id, op, args);
    });
  }

  /** A call with no answer (the interface's method returns void); lost with a dead worker. */
  function tell(op: OpName, args: unknown[]): void {
    if (refuse() === undefined) push(0, op, args);
  }

  function push(id: number, op: OpName, args: unknown[]): void {
    outgoing.push(id, OP[op], args);
    scheduleSend();
  }

  function scheduleSend(): void {
    if (!sendScheduled) {
      sendScheduled = true;
      setImmediate(flushOutgoing);
    }
  }

  const control: FleetControl = {
    pauseState: (): PauseState | undefined => state.pause,
    settingsState: (): StoredSettings | undefined => state.settings,
    refresh: async () => {
      state = await call<ControlState>('control.refresh', []);
    },
    writeSettings: async (next, expected) => {
      const stored = await call<StoredSettings>('control.writeSettings', [next, expected]);
      state = { pause: state.pause, settings: stored };
      return stored;
    },
    setPause: async (pause) => {
      await call('control.setPause', [pause]);
      state = { pause, settings: state.settings };
    },
    lastRestart: (host) => call<number | undefined>('control.lastRestart', [host]),
    stampRestart: (host, at) => call<void>('control.stampRestart', [host, at]),
    takeSlot: (max) => call<boolean>('control.takeSlot', [max]),
    releaseSlot: () => tell('control.releaseSlot', []),
    takeBlast: (host, at, since, cap) => call<BlastTake>('control.takeBlast', [host, at, since, cap]),
    restartedSince: (since) => call<Map<string, number>>('control.restartedSince', [since]),
    hostsSeenSince: (since) => call<Set<string>>('control.hostsSeenSince', [since]),
    audit: (entry: AuditEntry) => tell('control.audit', [entry]),
    readAudit: (query: AuditQuery) => call<AuditEntry[]>('control.readAudit', [query]),
    close: () => (refuse() === undefined ? call<void>('control.close', []) : Promise.resolve()),
  };

  const experiments: ExperimentStore = {
    startRun: (run: ExperimentRun) => call<void>('experiments.startRun', [run]),
    endRun: (experiment, instance, startedAt, endedAt, reason) =>
      call<void>('experiments.endRun', [experiment, instance, startedAt, endedAt, reason]),
    recordCheck: (check: ProbeCheck) => tell('experiments.recordCheck', [check]),
    runs: (experiment) => call<ExperimentRun[]>('experiments.runs', [experiment]),
    checks: (experiment, limit) => call<ProbeCheck[]>('experiments.checks', [experiment, limit]),
    names: (limit) => call<string[]>('experiments.names', [limit]),
    flush: () => (refuse() === undefined ? call<void>('experiments.flush', []) : Promise.resolve()),
  };

  start();

  return {
    ready,
    get restarts() {
      return restarts;
    },
    control: () => control,
    experiments: () => experiments,
    claimRestart: (r: RestartRequest, deliveryCount: number, mode: ClaimMode, signal?: AbortSignal) =>
      call<RestartClaim>(
        'claimRestart',
        [r.messageId, r.instanceName, r.host, r.publishedAt, deliveryCount, mode, signal !== undefined],
        signal,
        true,
      ),
    saveMessage: (r: RestartRequest, deliveryCount: number, signal?: AbortSignal) =>
      call<void>(
        'saveMessage',
        [r.messageId, r.instanceName, r.host, r.publishedAt, deliveryCount, signal !== undefined],
        signal,
        true,
      ),
    markRestarted: (messageId: string, attempts: number, signal?: AbortSignal, audit?: readonly AuditEntry[]) =>
      call<void>('markRestarted', [messageId, attempts, signal !== undefined, audit], signal),
    releaseRestart: (messageId: string, deliveryCount: number, attempts: number) =>
      call<void>('releaseRestart', [messageId, deliveryCount, attempts]),
    markAcked: (r: AckRecord) =>
      call<void>(
        'markAcked',
        [r.messageId, r.extensions, r.attempts, r.restartDone, r.restartInDoubt, r.skipReason, r.audit],
        undefined,
        true,
      ),
    readCalls: (messageId: string) => call<CallCount>('readCalls', [messageId]),
    recordCalls: (messageId: string, count: CallCount) => call<void>('recordCalls', [messageId, count]),
    markFailed: (messageId: string, error: string, attempts: number, audit?: readonly AuditEntry[]) =>
      call<void>('markFailed', [messageId, error, attempts, audit]),
    deadLetter: (entry: DeadLetter) => call<void>('deadLetter', [entry]),
    unfinished: () => call<UnfinishedReport>('unfinished', []),
    stats: () => call<SqliteWorkerStats>('stats', []),
    retentionPass: () => call<unknown>('retentionPass', []),
    whenUp: () => (up ? Promise.resolve() : new Promise<void>((res) => upWaiters.push(res))),
    killWorker(how): Promise<void> {
      const w = worker;
      if (w === undefined) return Promise.resolve();
      const exited = new Promise<void>((res) => w.once('exit', () => res()));
      if (how === 'terminate') void w.terminate();
      else w.postMessage({ t: 'crash' } satisfies ToWorker);
      return exited;
    },
    async close(): Promise<void> {
      if (closing) return;
      closing = true;
      clearTimeout(restartTimer);
      upWaiters.splice(0).forEach((w) => w());
      const w = worker;
      if (w === undefined || closed) return;
      flushOutgoing(); // what was called before close still goes
      const done = new Promise<void>((res) => {
        let n = 0;
        // Both: the worker's `closed` (everything committed) and its exit.
        onClosed = () => {
          if (++n === 1) void w.terminate().then(() => res(), res);
        };
      });
      w.postMessage({ t: 'close' } satisfies ToWorker);
      await done;
    },
  };
}

/** Start the worker and wait until it opened the file; a failure is one line naming the path. */
export async function openSqliteWorkerStorage(o: SqliteWorkerOptions): Promise<SqliteWorkerStorage> {
  const s = startSqliteWorker(o);
  await s.ready;
  return s;
}

/** A worker's pino line, logged again by the main thread's logger at its level. */
function forwardLog(log: Logger, line: string): void {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return;
  }
  const { level, msg, ...rest } = entry;
  const label = log.levels.labels[level as number] as
    'info' | 'warn' | 'error' | 'debug' | 'trace' | 'fatal' | undefined;
  if (label === undefined) return;
  log[label](rest, typeof msg === 'string' ? msg : '');
}
