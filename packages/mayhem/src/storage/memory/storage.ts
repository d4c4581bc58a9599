/**
 * Storage in a Map: the same semantics as the SQLite adapter, nothing durable. Unit tests use it,
 * and the benchmark's "storage off" row measures the pipeline without any database cost.
 */
import type { AuditEntry } from '../../core/rails.js';
import type { AckRecord, CallCount, ClaimMode, DeadLetter, RestartClaim, Storage } from '../../core/contracts.js';
import type { RestartRequest } from '../../core/message.js';
import { claimWrites, closedError, emptyRecord, rejectAborted, restartStateOf, type MessageRecord } from '../record.js';
import { DONE } from '../../core/settled.js';
import { LocalFleetControl } from './control.js';
import { MemoryExperimentStore } from './experiments.js';
import {
  ackPatch,
  applyPatch,
  callsPatch,
  claimPatch,
  deadLetterPatch,
  failurePatch,
  foldDeadLetter,
  releasePatch,
  restartedPatch,
  savePatch,
  type MutableRecord,
  type RecordPatch,
} from '../record-patch.js';

// One settled promise per claim state: a claim allocates nothing on the hot path.
const CLAIMS: Record<RestartClaim, Promise<RestartClaim>> = {
  free: Promise.resolve('free'),
  done: Promise.resolve('done'),
  'done-unaudited': Promise.resolve('done-unaudited'),
  'in-doubt': Promise.resolve('in-doubt'),
  'in-doubt-audited': Promise.resolve('in-doubt-audited'),
  conflict: Promise.resolve('conflict'),
};

/** The memory adapter, with its contents open for inspection. */
export interface MemoryStorage extends Storage {
  /** Every message record by messageId. A live view: records change in place as writes land. */
  readonly records: ReadonlyMap<string, MessageRecord>;
  /** The rails' fleet state, in process. */
  control(): LocalFleetControl;
  experiments(): MemoryExperimentStore;
  /** Every dead letter stored, in order (one per parsed messageId; malformed ones each count). */
  readonly deadLetters: readonly DeadLetter[];
}

/** Options for {@link openMemoryStorage}. */
export interface MemoryStorageOptions {
  /**
   * Keep at most this many records of settled messages (acked or dead-lettered), dead letters and
   * audit entries (the rails' trail), dropping the oldest first; records of messages still in flight are always kept. Without it
   * every record is kept (tests inspect them): a long `--db memory:` run grew by ~1 MB/s.
   */
  maxSettled?: number;
}

/**
 * Open an in-memory storage. Every write is applied at once and its promise resolves on the
 * microtask queue (no timers), so fake-timer tests are not disturbed.
 */
export function openMemoryStorage(opts: MemoryStorageOptions = {}): MemoryStorage {
  const records = new Map<string, MessageRecord>();
  const deadLetters: DeadLetter[] = [];
  const deadLetterIndex = new Map<string, number>();
  let closed = false;
  const maxSettled = opts.maxSettled ?? Infinity;
  // The audit trail is bounded like the settled records (one decision per message, at most).
  const control = new LocalFleetControl(maxSettled === Infinity ? undefined : maxSettled);
  const experiments = new MemoryExperimentStore(maxSettled === Infinity ? undefined : maxSettled);
  // Settled messageIds, oldest first (an array with a moving head), for the retention above.
  let settledIds: string[] = [];
  let settledHead = 0;
  function settled(messageId: string): void {
    if (maxSettled === Infinity) return;
    settledIds.push(messageId);
    while (settledIds.length - settledHead > maxSettled) {
      const id = settledIds[settledHead] as string;
      settledIds[settledHead++] = '';
      const row = records.get(id);
      if (row !== undefined && (row.acked || row.deadLettered)) rows.delete(id);
    }
    if (settledHead > 4096 && settledHead * 2 > settledIds.length) {
      settledIds = settledIds.slice(settledHead);
      settledHead = 0;
    }
  }
  // Dead letters: the newest maxSettled are kept (trimmed in halves, so the index is rebuilt rarely).
  function trimDeadLetters(): void {
    if (deadLetters.length <= maxSettled * 2) return;
    const dropped = deadLetters.splice(0, deadLetters.length - maxSettled);
    for (const d of dropped) if (d.request !== undefined) deadLetterIndex.delete(d.request.messageId);
    for (const [id, at] of deadLetterIndex) deadLetterIndex.set(id, at - dropped.length);
  }

  // Records are mutated in place (no copy per write): the memory adapter is the benchmark's
  // "storage off" row, so it must cost next to nothing per message.
  const rows = records as Map<string, MutableRecord>;

  // One entry point so closed/abort checks and the merge (record-patch.ts) are the same for every write.
  // The audit rows a write carries land with it (at once, like the write).
  function upsert(patch: RecordPatch, signal?: AbortSignal, audit?: readonly AuditEntry[]): Promise<void> {
    if (closed) return Promise.reject(closedError());
    if (signal?.aborted) return rejectAborted(signal);
    if (audit !== undefined) for (const e of audit) control.audit(e);
    const now = Date.now();
    let row = rows.get(patch.messageId);
    if (row === undefined) {
      row = emptyRecord(patch.messageId, now);
      rows.set(patch.messageId, row);
    }
    applyPatch(row, patch, now);
    return DONE;
  }

  return {
    records,
    deadLetters,

    claimRestart(
      request: RestartRequest,
      deliveryCount: number,
      mode: ClaimMode,
      signal?: AbortSignal,
    ): Promise<RestartClaim> {
      if (closed) return Promise.reject(closedError());
      if (signal?.aborted) return rejectAborted(signal);
      const found = restartStateOf(records.get(request.messageId), request.instanceName);
      if (claimWrites(mode, found)) void upsert(claimPatch(request, deliveryCount));
      return CLAIMS[found];
    },

    saveMessage(request: RestartRequest, deliveryCount: number, signal?: AbortSignal): Promise<void> {
      return upsert(savePatch(request, deliveryCount), signal);
    },

    markRestarted(
      messageId: string,
      attempts: number,
      signal?: AbortSignal,
      audit?: readonly AuditEntry[],
    ): Promise<void> {
      return upsert(restartedPatch(messageId, attempts, audit), signal, audit);
    },

    releaseRestart(messageId: string, deliveryCount: number, attempts: number): Promise<void> {
      return upsert(releasePatch(messageId, deliveryCount, attempts));
    },

    markAcked(record: AckRecord): Promise<void> {
      settled(record.messageId);
      return upsert(ackPatch(record), undefined, record.audit);
    },

    markFailed(messageId: string, error: string, attempts: number, audit?: readonly AuditEntry[]): Promise<void> {
      return upsert(failurePatch(messageId, error, attempts, audit), undefined, audit);
    },

    readCalls(messageId: string): Promise<CallCount> {
      if (closed) return Promise.reject(closedError());
      const r = records.get(messageId);
      return Promise.resolve({ calls: r?.httpCalls ?? 0, failed: r?.httpCallsFailed ?? 0 });
    },

    recordCalls(messageId: string, count: CallCount): Promise<void> {
      return upsert(callsPatch(messageId, count));
    },

    deadLetter(entry: DeadLetter): Promise<void> {
      if (closed) return Promise.reject(closedError());
      const request = entry.request;
      if (request === undefined) {
        deadLetters.push(entry);
        trimDeadLetters();
        return DONE;
      }
      settled(request.messageId);
      // Keyed by messageId like the SQL unique index, so a retried dead-letter write stays one row.
      const at = deadLetterIndex.get(request.messageId);
      if (at === undefined) {
        deadLetterIndex.set(request.messageId, deadLetters.length);
        deadLetters.push(entry);
        trimDeadLetters();
      } else {
        deadLetters[at] = foldDeadLetter(deadLetters[at]!, entry);
      }
      return upsert(deadLetterPatch(request, entry), undefined, entry.audit);
    },

    control: () => control,

    experiments: () => experiments,

    close(): Promise<void> {
      closed = true;
      return DONE;
    },
  };
}
