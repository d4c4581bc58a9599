/**
 * The storage worker: a thread that owns the SQLite file. It hosts the synchronous engine
 * (storage/sqlite/storage.ts: group commit, id index, retention sweeper, WAL checkpointer) unchanged, so every
 * statement, every index catch-up and every sweep runs here and the main thread's loop never waits
 * on the file. The main thread talks to it through worker-storage.ts (see protocol.ts).
 *
 * A batch of calls arrives as one message; each call is queued on the engine, whose one flush (a
 * `setImmediate` after the batch) commits the whole batch in one transaction, and the answers go
 * back in one message once committed: an answer is only sent for a durable write.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { errorText } from '../../core/errors.js';
import type { AuditEntry } from '../../core/rails.js';
import { openSqliteStorage, type SqliteStorage } from './storage.js';
import type { RestartRequest } from '../../core/message.js';
import {
  ABORTED,
  ARITY,
  CLAIM_BASE,
  CLAIMS,
  DONE,
  DONE_VALUE,
  FAILED,
  OPS,
  type ControlState,
  type FromWorker,
  type ToWorker,
  type WorkerInit,
} from './protocol.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (m: FromWorker): void => port.postMessage(m);

// Every line goes to the main thread's logger (its level, format and destination).
const logger = pino(
  { level: init.logLevel, base: undefined, timestamp: false },
  { write: (line: string) => send({ t: 'log', line }) },
);

// Test fault drill (the whole-service fault test): the first worker throws after this many calls.
const crashAfter = init.generation === 1 ? Number(process.env.MAYHEM_SQLITE_WORKER_CRASH_AFTER ?? 0) : 0;
let callsSeen = 0;

let storage: SqliteStorage;
try {
  storage = openSqliteStorage({
    path: init.path,
    logger,
    retentionMs: init.retentionMs,
    deadLetterRetentionMs: init.deadLetterRetentionMs,
    retentionEveryMs: init.retentionEveryMs,
    walLimitBytes: init.walLimitBytes,
    maxBatch: init.maxBatch,
  });
} catch (err) {
  send({ t: 'fatal', error: errorText(err) });
  port.close();
  throw err; // never reached by the main thread: it has the fatal message; ends this thread
}
const control = storage.control();
const experiments = storage.experiments();

type Handler = (args: unknown[], signal: AbortSignal | undefined) => unknown;
/** An op whose arguments are inline in the batch `c` from index `i` (see ARITY). */
type Inline = (c: unknown[], i: number, signal: AbortSignal | undefined) => unknown;

/** A request spread into the batch (protocol.ts): messageId, instanceName, host, publishedAt. */
function requestAt(c: unknown[], i: number): RestartRequest {
  const host = c[i + 2] as string | undefined;
  const messageId = c[i] as string;
  const instanceName = c[i + 1] as string;
  const publishedAt = c[i + 3] as number;
  return host === undefined ? { messageId, instanceName, publishedAt } : { messageId, instanceName, host, publishedAt };
}

type InlineOp = 'claimRestart' | 'saveMessage' | 'markAcked';

const INLINE: Record<InlineOp, Inline> = {
  claimRestart: (c, i, s) => storage.claimRestart(requestAt(c, i), c[i + 4] as number, c[i + 5] as never, s),
  saveMessage: (c, i, s) => storage.saveMessage(requestAt(c, i), c[i + 4] as number, s),
  markAcked: (c, i) =>
    storage.markAcked({
      messageId: c[i] as string,
      extensions: c[i + 1] as number,
      attempts: c[i + 2] as number,
      restartDone: c[i + 3] as boolean | undefined,
      restartInDoubt: c[i + 4] as boolean | undefined,
      skipReason: c[i + 5] as string | undefined,
      audit: c[i + 6] as AuditEntry[] | undefined,
    }),
};

const HANDLERS: Record<Exclude<(typeof OPS)[number], InlineOp>, Handler> = {
  markRestarted: (a, s) => storage.markRestarted(a[0] as string, a[1] as number, s, a[3] as AuditEntry[] | undefined),
  releaseRestart: (a) => storage.releaseRestart(a[0] as string, a[1] as number, a[2] as number),
  readCalls: (a) => storage.readCalls(a[0] as string),
  recordCalls: (a) => storage.recordCalls(a[0] as string, a[1] as never),
  markFailed: (a) =>
    storage.markFailed(a[0] as string, a[1] as string, a[2] as number, a[3] as AuditEntry[] | undefined),
  deadLetter: (a) => storage.deadLetter(a[0] as never),
  unfinished: () => storage.unfinished!(),
  'control.refresh': () => control.refresh().then(stateNow),
  'control.writeSettings': (a) => control.writeSettings(a[0] as never, a[1] as number),
  'control.setPause': (a) => control.setPause(a[0] as never),
  'control.lastRestart': (a) => control.lastRestart(a[0] as string),
  'control.stampRestart': (a) => control.stampRestart(a[0] as string, a[1] as number),
  'control.takeSlot': (a) => control.takeSlot(a[0] as number),
  'control.releaseSlot': () => control.releaseSlot(),
  'control.takeBlast': (a) => control.takeBlast(a[0] as string, a[1] as number, a[2] as number, a[3] as number),
  'control.restartedSince': (a) => control.restartedSince(a[0] as number),
  'control.hostsSeenSince': (a) => control.hostsSeenSince(a[0] as number),
  'control.audit': (a) => control.audit(a[0] as never),
  'control.readAudit': (a) => control.readAudit(a[0] as never),
  'control.close': () => control.close(),
  'experiments.startRun': (a) => experiments.startRun(a[0] as never),
  'experiments.endRun': (a) =>
    experiments.endRun(a[0] as string, a[1] as string, a[2] as number, a[3] as number, a[4] as string),
  'experiments.recordCheck': (a) => experiments.recordCheck(a[0] as never),
  'experiments.runs': (a) => experiments.runs(a[0] as string),
  'experiments.checks': (a) => experiments.checks(a[0] as string, a[1] as number),
  'experiments.names': (a) => experiments.names(a[0] as number),
  'experiments.flush': () => experiments.flush(),
  stats: () => ({
    threadId,
    stats: { ...storage.stats },
    checkpoints: storage.checkpoints === undefined ? undefined : { ...storage.checkpoints },
    retention: { ...storage.retention.stats },
  }),
  retentionPass: () => storage.retention.pass(),
};

const BY_NUMBER: Inline[] = OPS.map((name): Inline => {
  if (name in INLINE) return INLINE[name as InlineOp];
  const h = HANDLERS[name as Exclude<(typeof OPS)[number], InlineOp>];
  return (c, i, s) => h(c[i] as unknown[], s);
});
// Where the caller's AbortSignal flag is, per op that takes one: [inline?, index among its arguments].
const SIGNAL_AT: (readonly [boolean, number] | undefined)[] = OPS.map((name) =>
  name === 'claimRestart'
    ? [true, 6]
    : name === 'saveMessage'
      ? [true, 5]
      : name === 'markRestarted'
        ? [false, 2]
        : undefined,
);

// Calls in flight with a signal: the worker's own controller, aborted when the caller's aborts.
const controllers = new Map<number, AbortController>();
// The answers of this turn: [id, code] pairs (see protocol.ts), and the values the codes point to.
let outIds: number[] = [];
let outValues: unknown[] = [];
let flushing = false;
let lastState: ControlState = stateNow();

function stateNow(): ControlState {
  return { pause: control.pauseState(), settings: control.settingsState() };
}

/** The state, if it moved since last sent (the control replaces its objects when it reads new ones). */
function changedState(): ControlState | undefined {
  const now = stateNow();
  if (now.pause === lastState.pause && now.settings === lastState.settings) return undefined;
  lastState = now;
  return now;
}

function answer(id: number, how: number, value: unknown): void {
  controllers.delete(id);
  if (how === DONE && value !== undefined) {
    const claim = typeof value === 'string' ? CLAIMS.indexOf(value as never) : -1;
    if (claim >= 0) how = CLAIM_BASE + claim;
    else {
      how = DONE_VALUE;
      outValues.push(value);
    }
  } else if (how === FAILED) outValues.push(value);
  outIds.push(id, how);
  if (!flushing) {
    flushing = true;
    setImmediate(flushOutbox);
  }
}

function flushOutbox(): void {
  flushing = false;
  const n = Float64Array.from(outIds);
  const v = outValues;
  outIds = [];
  outValues = [];
  const state = changedState();
  const m: FromWorker = state === undefined ? { t: 'answers', n, v } : { t: 'answers', n, v, state };
  port.postMessage(m, [n.buffer]);
}

function hasOutbox(): boolean {
  return outIds.length > 0;
}

/** Run the call at `c[i]` (its id, op, then its arguments). */
function run(c: unknown[], i: number): void {
  const id = c[i] as number;
  const op = c[i + 1] as number;
  const at = SIGNAL_AT[op];
  let signal: AbortSignal | undefined;
  if (at !== undefined && (at[0] ? c[i + 2 + at[1]] : (c[i + 2] as unknown[])[at[1]]) === true) {
    const c = new AbortController();
    controllers.set(id, c);
    signal = c.signal;
  }
  let result: unknown;
  try {
    result = BY_NUMBER[op]!(c, i + 2, signal);
  } catch (err) {
    if (id !== 0) answer(id, FAILED, errorText(err));
    return;
  }
  if (id === 0) {
    if (result instanceof Promise)
      result.catch((err: unknown) => logger.debug({ err: errorText(err) }, 'Storage call failed'));
    return;
  }
  if (!(result instanceof Promise)) {
    answer(id, DONE, result);
    return;
  }
  result.then(
    (value: unknown) => answer(id, DONE, value),
    (err: unknown) => answer(id, signal?.aborted === true ? ABORTED : FAILED, errorText(err)),
  );
}

port.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'calls': {
      const c = m.c;
      let calls = 0;
      for (let i = 0; i < c.length; i += 2 + ARITY[c[i + 1] as number]!, calls++) run(c, i);
      if (crashAfter > 0 && (callsSeen += calls) >= crashAfter)
        setImmediate(() => {
          throw new Error(`fault drill: storage worker crashed after ${callsSeen} calls`);
        });
      break;
    }
    case 'abort':
      controllers.get(m.id)?.abort();
      break;
    case 'crash':
      setImmediate(() => {
        throw new Error('fault drill: storage worker crashed');
      });
      break;
    case 'close':
      clearInterval(stateWatch);
      void storage.close().then(
        () => {
          if (hasOutbox()) flushOutbox();
          send({ t: 'closed' });
          port.close();
        },
        (err: unknown) => {
          logger.warn({ err: errorText(err) }, 'SQLite close failed');
          send({ t: 'closed' });
          port.close();
        },
      );
      break;
  }
});

// The control reads the kill switch every 500 ms; a change goes to the main thread within 100 ms of that.
const stateWatch = setInterval(() => {
  const state = changedState();
  if (state !== undefined) send({ t: 'state', state });
}, 100);
stateWatch.unref();

send({ t: 'ready', state: lastState });
