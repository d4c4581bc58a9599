/**
 * The messages between the main thread's SQLite proxy (worker-storage.ts) and the storage worker
 * (worker.ts). Calls and answers travel in batches: every call the main thread makes during one turn
 * of its loop goes in one `calls` message, and every answer the worker has ready in one turn goes
 * back in one `answers` message, so a thousand saves cost two postMessage calls, not two thousand.
 */
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
 * - `calls`: flat [id, op, args, id, op, args, ...]; id 0 = no answer wanted. An args entry that is
 *   an AbortSignal in the interface travels as `true` (the worker makes its own, see `abort`).
 * - `abort`: the caller's signal for call `id` aborted.
 * - `close`: finish what is queued, close the file, answer `closed`, exit.
 * - `crash`: throw an uncaught error (tests: a worker fault).
 */
export type ToWorker =
  | { readonly t: 'calls'; readonly c: unknown[] }
  | { readonly t: 'abort'; readonly id: number }
  | { readonly t: 'close' }
  | { readonly t: 'crash' };

/** How a call ended: done (value), failed (error text), or aborted (the caller's signal reason applies). */
export const DONE = 0;
export const FAILED = 1;
export const ABORTED = 2;

/**
 * Worker → main.
 * - `ready`: the file is open (after migration and catching up the id index); with the control's state.
 * - `answers`: flat [id, how, value, ...] (how: DONE / FAILED / ABORTED; FAILED's value is the error text).
 * - `state`: the control's kill switch or settings changed (read by its own refresh).
 * - `log`: a pino line of the worker's, for the main logger.
 * - `fatal`: the file could not be opened; the worker exits.
 * - `closed`: close finished.
 */
export type FromWorker =
  | { readonly t: 'ready'; readonly state: ControlState }
  | { readonly t: 'answers'; readonly a: unknown[]; readonly state?: ControlState }
  | { readonly t: 'state'; readonly state: ControlState }
  | { readonly t: 'log'; readonly line: string }
  | { readonly t: 'fatal'; readonly error: string }
  | { readonly t: 'closed' };
