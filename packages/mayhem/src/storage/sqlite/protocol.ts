/**
 * The messages between the main thread's SQLite proxy (worker-storage.ts) and the storage worker
 * (worker.ts). Calls and answers travel in batches: every call the main thread makes during one turn
 * of its loop goes in one `calls` message, and every answer the worker has ready in one turn goes
 * back in one `answers` message, so a thousand saves cost two postMessage calls, not two thousand.
 */
import type { RestartClaim } from '../../core/contracts.js';
import type { PauseState, StoredSettings } from '../../core/rails.js';

/**
 * Every operation the worker runs, by number (a batch carries the number, not the name). `null`
 * answer ids: fire-and-forget (the interface's method returns void).
 */
export const OPS = [
  'claimRestart',
  'saveMessage',
  'markRestarted',
  'releaseRestart',
  'markAcked',
  'readCalls',
  'recordCalls',
  'markFailed',
  'deadLetter',
  'unfinished',
  'control.refresh',
  'control.writeSettings',
  'control.setPause',
  'control.lastRestart',
  'control.stampRestart',
  'control.takeSlot',
  'control.releaseSlot',
  'control.takeBlast',
  'control.restartedSince',
  'control.hostsSeenSince',
  'control.audit',
  'control.readAudit',
  'control.close',
  'experiments.startRun',
  'experiments.endRun',
  'experiments.recordCheck',
  'experiments.runs',
  'experiments.checks',
  'experiments.names',
  'experiments.flush',
  'stats',
  'retentionPass',
] as const;

export type OpName = (typeof OPS)[number];

/**
 * How many entries each op's arguments take in a `calls` batch. The three calls every message makes
 * (claimRestart, saveMessage, markAcked) travel as primitives, their request or record spread into
 * fields: structured clone writes every object's property names again, and the worker's clone of the
 * answers and calls was its largest cost after SQLite itself. Every other op's arguments are one array.
 */
export const ARITY: readonly number[] = OPS.map((name) =>
  name === 'claimRestart' ? 7 : name === 'saveMessage' ? 6 : name === 'markAcked' ? 7 : 1,
);

/** Op name → its number in a batch. */
export const OP: Readonly<Record<OpName, number>> = Object.fromEntries(OPS.map((n, i) => [n, i])) as Record<
  OpName,
  number
>;

/** What the worker is started with (workerData). */
export interface WorkerInit {
  readonly path: string;
  readonly logLevel: string;
  readonly retentionMs?: number | undefined;
  readonly deadLetterRetentionMs?: number | undefined;
  readonly retentionEveryMs?: number | undefined;
  readonly walLimitBytes?: number | undefined;
  readonly maxBatch?: number | undefined;
  /** 1 for the first worker of a storage, +1 for each one started after a fault. */
  readonly generation: number;
}

/** The kill switch and the fleet settings as the worker's control last read them. */
export interface ControlState {
  readonly pause: PauseState | undefined;
  readonly settings: StoredSettings | undefined;
}

/**
 * Main → worker.
 * - `calls`: flat [id, op, ...its ARITY[op] argument entries, id, op, ...]; id 0 = no answer wanted.
 *   claimRestart: messageId, instanceName, host, publishedAt, deliveryCount, mode, signal;
 *   saveMessage: messageId, instanceName, host, publishedAt, deliveryCount, signal;
 *   markAcked: messageId, extensions, attempts, restartDone, restartInDoubt, skipReason, audit;
 *   any other op: its arguments as one array. An argument that is an AbortSignal in the interface
 *   travels as `true` when given (the worker makes its own, see `abort`).
 * - `abort`: the caller's signal for call `id` aborted.
 * - `close`: finish what is queued, close the file, answer `closed`, exit.
 * - `crash`: throw an uncaught error (tests: a worker fault).
 */
export type ToWorker =
  | { readonly t: 'calls'; readonly c: unknown[] }
  | { readonly t: 'abort'; readonly id: number }
  | { readonly t: 'close' }
  | { readonly t: 'crash' };

/**
 * How a call ended, as the code beside its id in an `answers` batch: done with no value, done with
 * the next value of `v`, failed (the next value of `v` is the error text), aborted (the caller's signal
 * reason applies), or done with a claim's result, CLAIM_BASE + its index in {@link CLAIMS}.
 */
export const DONE = 0;
export const DONE_VALUE = 1;
export const FAILED = 2;
export const ABORTED = 3;
export const CLAIM_BASE = 4;
export const CLAIMS: readonly RestartClaim[] = [
  'free',
  'done',
  'done-unaudited',
  'in-doubt',
  'in-doubt-audited',
  'conflict',
];

/**
 * Worker → main.
 * - `ready`: the file is open (after migration and catching up the id index); with the control's state.
 * - `answers`: `n` holds [id, code, id, code, ...] (codes: DONE ...; a Float64Array, transferred, so
 *   a batch's ids cost no cloning); `v` the values of the codes that have one, in order.
 * - `state`: the control's kill switch or settings changed (read by its own refresh).
 * - `log`: a pino line of the worker's, for the main logger.
 * - `fatal`: the file could not be opened; the worker exits.
 * - `closed`: close finished.
 */
export type FromWorker =
  | { readonly t: 'ready'; readonly state: ControlState }
  | { readonly t: 'answers'; readonly n: Float64Array; readonly v: unknown[]; readonly state?: ControlState }
  | { readonly t: 'state'; readonly state: ControlState }
  | { readonly t: 'log'; readonly line: string }
  | { readonly t: 'fatal'; readonly error: string }
  | { readonly t: 'closed' };
