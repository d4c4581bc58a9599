/** Small helpers the real executors share (their outcomes are core/restart-outcome.ts's values). */
import type { RestartContext } from '../core/contracts.js';

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
