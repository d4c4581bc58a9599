/** What the real executors share: the "outcome unknown" error and small helpers. */
import type { RestartContext } from '../core/contracts.js';

/**
 * A restart whose outcome is unknown: it may have taken effect (a command killed mid-run, a request
 * sent and never answered). Not a `RestartFailed`, so the pipeline leaves the restart in doubt and a
 * redelivery does not run it again. `cancelled`: it ended because shutdown aborted it (named
 * `AbortError`, so it counts as a cancellation, not as a restart failure).
 */
export class OutcomeUnknown extends Error {
  override readonly name: string;

  constructor(message: string, cancelled = false) {
    super(message);
    this.name = cancelled ? 'AbortError' : 'OutcomeUnknown';
  }
}

/** The instance a restart is for: from the context, else the hostname's first label. */
export function instanceOf(hostname: string, context: RestartContext | undefined): string {
  if (context !== undefined) return context.instanceName;
  const dot = hostname.indexOf('.');
  return dot < 0 ? hostname : hostname.slice(0, dot);
}

/** `30s`, `1.5s`, `250ms`: durations in messages. */
export function seconds(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${Number((ms / 1000).toFixed(3))}s`;
}
