/**
 * What one restart attempt did, as a value: the README's table "What an executor tells the pipeline",
 * one variant per row. Executors still say it by how their promise settles (core/contracts.ts);
 * `restartOutcomeOf` is the one place that turns a rejection into a value, so the restart branch
 * decides with one `switch` and no `instanceof` chain.
 */
import { RestartFailed, RestartRejected } from './contracts.js';
import { errorText } from './errors.js';
import { isAbort } from './timing.js';

export type RestartOutcome =
  /** It happened: recorded, then acked. */
  | { readonly kind: 'restarted' }
  /** It certainly did not happen, and may if tried again: retried with backoff, then nacked. */
  | { readonly kind: 'not-restarted'; readonly reason: string; readonly error: unknown }
  /** Refused for good (a 4xx, no such container): dead-lettered at once with the reason. */
  | { readonly kind: 'rejected'; readonly reason: string; readonly error: unknown }
  /** Stopped before it could take effect (shutdown): nacked, not in doubt. */
  | { readonly kind: 'cancelled'; readonly reason: string; readonly error: unknown }
  /**
   * It may have happened (a timeout, a lost connection, a kill): left in doubt, never run again for
   * this message. `cancelled`: it was shutdown that cut it short.
   */
  | { readonly kind: 'unknown'; readonly reason: string; readonly error: unknown; readonly cancelled: boolean };

/** The one `restarted` outcome (no allocation on the path every message takes). */
export const RESTARTED: RestartOutcome = Object.freeze({ kind: 'restarted' });

/** What an executor's rejection says happened; anything it did not say is `unknown` (in doubt). */
export function restartOutcomeOf(error: unknown, signal: AbortSignal): RestartOutcome {
  const reason = errorText(error);
  if (error instanceof RestartRejected) return { kind: 'rejected', reason, error };
  // RestartCancelled (an AbortError) once shutdown aborted: stopped before it took effect.
  if (error instanceof RestartFailed && isAbort(error, signal)) return { kind: 'cancelled', reason, error };
  if (error instanceof RestartFailed) return { kind: 'not-restarted', reason, error };
  return { kind: 'unknown', reason, error, cancelled: isAbort(error, signal) };
}
