/**
 * The message record every storage adapter keeps, in camelCase. The SQL tables (SQLite and
 * PostgreSQL) hold the same fields in snake_case, one row per messageId. How writes merge into it:
 * record-patch.ts.
 */
import { isInDoubt, type ClaimMode, type RestartClaim } from '../core/contracts.js';

/** One row of `messages`. Times are ms since epoch; `null` means "has not happened". */
export interface MessageRecord {
  readonly messageId: string;
  /**
   * Null until `saveMessage` (or a dead letter of a parsed request) has run: `markRestarted` and
   * `markFailed` may reach storage first because restart and save run concurrently.
   */
  readonly instanceName: string | null;
  readonly hostname: string | null;
  readonly publishedAt: number | null;
  readonly restarted: boolean;
  /**
   * The restart intent: the highest delivery that claimed the restart (recorded before the executor
   * ran), and the highest whose claim ended without a restart. `restartClaimed > restartReleased`
   * while `restarted` is false means in doubt: a delivery began the restart and never said how it ended.
   * Both only grow, so the writes stay idempotent merges.
   */
  readonly restartClaimed: number;
  readonly restartReleased: number;
  /** A delivery found the restart in doubt and did not run it again. */
  readonly restartInDoubt: boolean;
  /**
   * The restart's `restarted` audit row is written (in the same transaction as the record that
   * carried it); its `in-doubt` row likewise. See {@link RestartClaim} `done-unaudited`.
   */
  readonly restartAudited: boolean;
  readonly inDoubtAudited: boolean;
  /** A safety rail refused the restart for good (denied, too soon, busy): why. Acked, not restarted. */
  readonly skipReason: string | null;
  /** The highest restart-attempt count any delivery reported (monotonic, so retried writes are idempotent). */
  readonly restartAttempts: number;
  /**
   * Webhook calls (`--executor http`) begun for this message by every delivery, recorded before each
   * goes out, and of those, the ones known to have done nothing (never sent, or answered "not
   * restarted"). The difference may have restarted the host. Both only grow. See `--http-max-calls`.
   */
  readonly httpCalls: number;
  readonly httpCallsFailed: number;
  readonly saved: boolean;
  readonly acked: boolean;
  /** Ack-deadline extensions of the delivery that was acked (the most, if more than one was: monotonic like the counts). */
  readonly extensions: number;
  /** The highest delivery count seen. */
  readonly deliveries: number;
  readonly deadLettered: boolean;
  readonly lastError: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly restartedAt: number | null;
  readonly ackedAt: number | null;
}

/** A record with nothing recorded yet: the starting point of every upsert. */
export function emptyRecord(messageId: string, now: number): MessageRecord {
  return {
    messageId,
    instanceName: null,
    hostname: null,
    publishedAt: null,
    restarted: false,
    restartClaimed: 0,
    restartReleased: 0,
    restartInDoubt: false,
    restartAudited: false,
    inDoubtAudited: false,
    skipReason: null,
    restartAttempts: 0,
    httpCalls: 0,
    httpCallsFailed: 0,
    saved: false,
    acked: false,
    extensions: 0,
    deliveries: 0,
    deadLettered: false,
    lastError: null,
    createdAt: now,
    updatedAt: now,
    restartedAt: null,
    ackedAt: null,
  };
}

/** The state of a record's restart, as {@link Storage.claimRestart} reports it (before any write). */
export function restartStateOf(
  record:
    | Pick<
        MessageRecord,
        'instanceName' | 'restarted' | 'restartClaimed' | 'restartReleased' | 'restartAudited' | 'inDoubtAudited'
      >
    | undefined,
  instanceName: string,
): RestartClaim {
  if (record === undefined) return 'free';
  if (record.instanceName !== null && record.instanceName !== instanceName) return 'conflict';
  if (record.restarted) return record.restartAudited ? 'done' : 'done-unaudited';
  if (record.restartClaimed <= record.restartReleased) return 'free';
  return record.inDoubtAudited ? 'in-doubt-audited' : 'in-doubt';
}

/** Whether a claim in `mode` records its intent, given the state found. */
export function claimWrites(mode: ClaimMode, found: RestartClaim): boolean {
  return (found === 'free' && mode !== 'look') || (isInDoubt(found) && mode === 'claim-in-doubt');
}

/** Rejected by every operation after `close()`. */
export function closedError(): Error {
  return new Error('storage is closed');
}

/**
 * A promise rejected with `signal.reason`, as the contract asks: the pipeline recognises its own
 * abort reason, so it is passed through unchanged even when it is not an Error.
 */
export function rejectAborted(signal: AbortSignal): Promise<never> {
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
  return Promise.reject(signal.reason);
}
