/**
 * What one restart attempt did, as a value: the README's table "What an executor tells the pipeline",
 * one variant per row. Every executor's `restart()` resolves with one (core/contracts.ts); it rejects
 * only on a bug, which the pipeline hands to the central exception handler, never to this table. The
 * restart branch decides with one `switch` over `kind`.
 */

export type RestartOutcome =
  /** It happened: recorded, then acked. */
  | { readonly kind: 'restarted' }
  /**
   * It certainly did not happen, and may if tried again: retried with backoff, then nacked.
   * `resource`: it could not even start for want of a resource of this machine (EMFILE, ENOMEM, …):
   * retried for as long as the pressure lasts, not counted as an attempt, told once per episode.
   */
  | { readonly kind: 'not-restarted'; readonly reason: string; readonly resource?: string | undefined }
  /** Refused for good (a 4xx, no such container): dead-lettered at once with the reason. */
  | { readonly kind: 'rejected'; readonly reason: string }
  /** Stopped before it could take effect (shutdown): nacked, not in doubt. */
  | { readonly kind: 'cancelled'; readonly reason: string }
  /**
   * It may have happened (a timeout, a lost connection, a kill): left in doubt, never run again for
   * this message. `cancelled`: it was shutdown that cut it short.
   */
  | { readonly kind: 'unknown'; readonly reason: string; readonly cancelled: boolean };

export type RestartOutcomeKind = RestartOutcome['kind'];

/** The one `restarted` outcome (no allocation on the path every message takes). */
export const RESTARTED: RestartOutcome = Object.freeze({ kind: 'restarted' });

/** Certainly not restarted; `resource`: the code of the machine's shortage that kept it from starting. */
export function notRestarted(reason: string, resource?: string): RestartOutcome {
  return resource === undefined ? { kind: 'not-restarted', reason } : { kind: 'not-restarted', reason, resource };
}

export function rejected(reason: string): RestartOutcome {
  return { kind: 'rejected', reason };
}

export function cancelled(reason: string): RestartOutcome {
  return { kind: 'cancelled', reason };
}

/** It may have happened; `byShutdown`: shutdown cut it short. */
export function outcomeUnknown(reason: string, byShutdown = false): RestartOutcome {
  return { kind: 'unknown', reason, cancelled: byShutdown };
}
