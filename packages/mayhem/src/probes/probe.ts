/** What a probe is once opened, and what one check of it says. */
import type { ProbeSpec } from './spec.js';

/** One check: whether the steady state holds by this probe, why not, how long it took. */
export interface ProbeResult {
  readonly ok: boolean;
  /** One line: why it failed, or what it saw. */
  readonly reason: string;
  readonly latencyMs: number;
  /** What was measured, where the probe measures a number (a Prometheus query's value). */
  readonly value?: number | undefined;
  /**
   * The probe could not be asked at all (unreachable, a bad answer, a program that does not start),
   * as opposed to an answer that says the steady state does not hold. At start either stops the run.
   */
  readonly unreachable?: boolean;
}

export interface Probe {
  readonly spec: ProbeSpec;
  /** Check once, within `timeoutMs`; never rejects (a failure is a result). */
  check(timeoutMs: number, signal: AbortSignal): Promise<ProbeResult>;
  close(): Promise<void>;
}

/** `ok` or not, with the time since `started` (performance.now()). */
export function result(
  started: number,
  ok: boolean,
  reason: string,
  extra: { value?: number; unreachable?: boolean } = {},
): ProbeResult {
  return { ok, reason: oneLine(reason), latencyMs: performance.now() - started, ...extra };
}

/** One line of printable text, at most 300 characters (reasons come from remote answers). */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

/** A signal that aborts on `signal` or after `ms`, whichever comes first. */
export function within(ms: number, signal: AbortSignal): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(ms)]);
}
