/**
 * The merge rules of a message record, stated once for every adapter.
 *
 * Each storage write contributes a {@link RecordPatch}: the fields it knows, the rest neutral
 * (false, 0, null). Patches only merge forward:
 *
 * | fields | rule |
 * | --- | --- |
 * | instanceName, hostname, publishedAt, skipReason | the first non-null stays (a reused id never rewrites whose record it is) |
 * | saved, restarted, acked, deadLettered, restartInDoubt, restartAudited, inDoubtAudited | once true, true |
 * | restartClaimed, restartReleased, restartAttempts, extensions, deliveries, httpCalls, httpCallsFailed | the highest |
 * | lastError | the latest non-null |
 *
 * So a write retried after an ambiguous failure, or replayed by a redelivery, changes nothing, and
 * the writes to one message that share a batch fold into one row write ({@link foldPatch}). A stored
 * record is itself a patch plus its timestamps: {@link applyPatch} folds a patch into it and stamps
 * restartedAt / ackedAt the first time those flags are set.
 *
 * memory/storage.ts applies patches directly; sqlite/storage.ts and postgres/storage.ts fold a batch's writes with
 * {@link foldPatch} and send one row per message, whose SQL upsert implements these same rules.
 * The storage contract's property test holds all three to them (test/storage-contract.ts); the columns
 * and their rules are listed once in columns.ts, which test/unit/record-columns.test.ts holds this fold to.
 */
import type { AckRecord, CallCount, DeadLetter } from '../core/contracts.js';
import type { AuditEntry } from '../core/rails.js';
import { hostnameOf, type RestartRequest } from '../core/message.js';
import type { MessageRecord } from './record.js';

/** The fields of a {@link MessageRecord} that writes change (see the rules above). */
export interface RecordPatch {
  readonly messageId: string;
  instanceName: string | null;
  hostname: string | null;
  publishedAt: number | null;
  saved: boolean;
  restarted: boolean;
  acked: boolean;
  deadLettered: boolean;
  restartInDoubt: boolean;
  restartAudited: boolean;
  inDoubtAudited: boolean;
  restartClaimed: number;
  restartReleased: number;
  restartAttempts: number;
  extensions: number;
  deliveries: number;
  lastError: string | null;
  skipReason: string | null;
  httpCalls: number;
  httpCallsFailed: number;
}

/** A stored record that writes change in place (the memory adapter's rows). */
export type MutableRecord = { -readonly [K in keyof MessageRecord]: MessageRecord[K] };

/** A patch that changes nothing. Every patch starts here, so all share one shape. */
export function emptyPatch(messageId: string): RecordPatch {
  return {
    messageId,
    instanceName: null,
    hostname: null,
    publishedAt: null,
    saved: false,
    restarted: false,
    acked: false,
    deadLettered: false,
    restartInDoubt: false,
    restartAudited: false,
    inDoubtAudited: false,
    restartClaimed: 0,
    restartReleased: 0,
    restartAttempts: 0,
    extensions: 0,
    deliveries: 0,
    lastError: null,
    skipReason: null,
    httpCalls: 0,
    httpCallsFailed: 0,
  };
}

function withRequest(request: RestartRequest): RecordPatch {
  const p = emptyPatch(request.messageId);
  p.instanceName = request.instanceName;
  p.hostname = hostnameOf(request);
  p.publishedAt = request.publishedAt;
  return p;
}

/** claimRestart, when it records the intent of delivery `delivery` (see `claimWrites`). */
export function claimPatch(request: RestartRequest, delivery: number): RecordPatch {
  const p = withRequest(request);
  p.restartClaimed = delivery;
  return p;
}

/** saveMessage. */
export function savePatch(request: RestartRequest, deliveries: number): RecordPatch {
  const p = withRequest(request);
  p.saved = true;
  p.deliveries = deliveries;
  return p;
}

/** markRestarted, with the audit rows written beside it. */
export function restartedPatch(messageId: string, attempts: number, audit?: readonly AuditEntry[]): RecordPatch {
  const p = emptyPatch(messageId);
  p.restarted = true;
  p.restartAttempts = attempts;
  return audited(p, audit);
}

/** The marks of the audit rows a write carries: its restart's `restarted` row, its `in-doubt` row. */
function audited(p: RecordPatch, audit: readonly AuditEntry[] | undefined): RecordPatch {
  if (audit === undefined) return p;
  for (const e of audit) {
    if (e.outcome === 'restarted') p.restartAudited = true;
    else if (e.outcome === 'in-doubt') p.inDoubtAudited = true;
  }
  return p;
}

/** releaseRestart: the claim of delivery `delivery` ended without a restart. */
export function releasePatch(messageId: string, delivery: number, attempts: number): RecordPatch {
  const p = emptyPatch(messageId);
  p.restartReleased = delivery;
  p.restartAttempts = attempts;
  return p;
}

/** markAcked, with the restart it may carry, the in-doubt mark and a rail's skip reason. */
export function ackPatch(record: AckRecord): RecordPatch {
  const p = emptyPatch(record.messageId);
  p.acked = true;
  p.extensions = record.extensions;
  p.restartAttempts = record.attempts;
  p.restarted = record.restartDone === true;
  p.restartInDoubt = record.restartInDoubt === true;
  p.skipReason = record.skipReason ?? null;
  return audited(p, record.audit);
}

/** recordCalls: the webhook calls begun for a message, and those known to have done nothing. */
export function callsPatch(messageId: string, count: CallCount): RecordPatch {
  const p = emptyPatch(messageId);
  p.httpCalls = count.calls;
  p.httpCallsFailed = count.failed;
  return p;
}

/** markFailed. */
export function failurePatch(
  messageId: string,
  error: string,
  attempts: number,
  audit?: readonly AuditEntry[],
): RecordPatch {
  const p = emptyPatch(messageId);
  p.lastError = error;
  p.restartAttempts = attempts;
  return audited(p, audit);
}

/** deadLetter of a parsed request (a malformed payload has no record). */
export function deadLetterPatch(request: RestartRequest, entry: DeadLetter): RecordPatch {
  const p = withRequest(request);
  p.deadLettered = true;
  p.lastError = entry.reason;
  p.deliveries = entry.deliveries;
  return audited(p, entry.audit);
}

/**
 * Fold `later` into `into` (both for one message): the rules above. `into` may be a stored record,
 * which makes this also the rule a write applies by.
 */
export function foldPatch(into: Omit<RecordPatch, 'messageId'>, later: RecordPatch): void {
  into.instanceName ??= later.instanceName;
  into.hostname ??= later.hostname;
  into.publishedAt ??= later.publishedAt;
  into.skipReason ??= later.skipReason;
  into.saved ||= later.saved;
  into.restarted ||= later.restarted;
  into.acked ||= later.acked;
  into.deadLettered ||= later.deadLettered;
  into.restartInDoubt ||= later.restartInDoubt;
  into.restartAudited ||= later.restartAudited;
  into.inDoubtAudited ||= later.inDoubtAudited;
  if (later.restartClaimed > into.restartClaimed) into.restartClaimed = later.restartClaimed;
  if (later.restartReleased > into.restartReleased) into.restartReleased = later.restartReleased;
  if (later.restartAttempts > into.restartAttempts) into.restartAttempts = later.restartAttempts;
  if (later.extensions > into.extensions) into.extensions = later.extensions;
  if (later.deliveries > into.deliveries) into.deliveries = later.deliveries;
  if (later.httpCalls > into.httpCalls) into.httpCalls = later.httpCalls;
  if (later.httpCallsFailed > into.httpCallsFailed) into.httpCallsFailed = later.httpCallsFailed;
  if (later.lastError !== null) into.lastError = later.lastError;
}

/** Apply a patch to a stored record at time `now`: fold, stamp first restart and ack, touch. */
export function applyPatch(record: MutableRecord, patch: RecordPatch, now: number): void {
  foldPatch(record, patch);
  if (record.restarted) record.restartedAt ??= now;
  if (record.acked) record.ackedAt ??= now;
  record.updatedAt = now;
}

/**
 * The dead letter kept for a message that was dead-lettered again (a retried write, a redelivery):
 * the later payload and reason, the highest delivery count.
 */
export function foldDeadLetter<D extends { readonly deliveries: number }>(earlier: D, later: D): D {
  return later.deliveries >= earlier.deliveries ? later : { ...later, deliveries: earlier.deliveries };
}
