/**
 * Environment → options. Kept apart from `register.ts` so the same parsing serves tests and code.
 * A bad value is the user's typo, not our crash: it surfaces as an {@link OptionsError} whose message
 * is one readable line.
 */

export type Mode = 'off' | 'debug' | 'production';
export type Format = 'text' | 'json';

export interface LoopwatchOptions {
  readonly mode: Mode;
  /** Slow-callback threshold (asyncio's `slow_callback_duration`), ms. */
  readonly slowMs: number;
  readonly format: Format;
  /** Periodic task dump interval, ms; undefined = off. */
  readonly monitorMs?: number;
  /** `host:port` of a StatsD daemon for loop-lag figures. */
  readonly statsd?: string;
}

export const DEFAULT_SLOW_MS = 100;

export class OptionsError extends Error {
  override readonly name = 'OptionsError';
}

function positiveNumber(name: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new OptionsError(`loopwatch: ${name}=${JSON.stringify(raw)} is not a positive number of milliseconds`);
  }
  return n;
}

/** Reads `LOOPWATCH*` variables. Throws {@link OptionsError} on a bad value. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): LoopwatchOptions {
  const rawMode = (env['LOOPWATCH'] ?? '').trim().toLowerCase();
  let mode: Mode;
  if (rawMode === '' || rawMode === 'off' || rawMode === '0') mode = 'off';
  else if (rawMode === 'debug' || rawMode === '1') mode = 'debug';
  else if (rawMode === 'production' || rawMode === 'prod') mode = 'production';
  else throw new OptionsError(`loopwatch: LOOPWATCH=${JSON.stringify(env['LOOPWATCH'])} must be debug, production or off`);

  const rawFormat = (env['LOOPWATCH_FORMAT'] ?? 'text').trim().toLowerCase();
  if (rawFormat !== 'text' && rawFormat !== 'json') {
    throw new OptionsError(`loopwatch: LOOPWATCH_FORMAT=${JSON.stringify(env['LOOPWATCH_FORMAT'])} must be text or json`);
  }
  const slowRaw = env['LOOPWATCH_SLOW_MS'];
  const slowMs = slowRaw === undefined ? DEFAULT_SLOW_MS : positiveNumber('LOOPWATCH_SLOW_MS', slowRaw);
  const monRaw = env['LOOPWATCH_MONITOR_MS'];
  const monitorMs = monRaw === undefined || monRaw === '' ? undefined : positiveNumber('LOOPWATCH_MONITOR_MS', monRaw);
  const statsdRaw = env['LOOPWATCH_STATSD'];
  let statsd: string | undefined;
  if (statsdRaw !== undefined && statsdRaw !== '') {
    const m = /^([^:\s]+):(\d{1,5})$/.exec(statsdRaw.trim());
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      throw new OptionsError(`loopwatch: LOOPWATCH_STATSD=${JSON.stringify(statsdRaw)} must be host:port`);
    }
    statsd = statsdRaw.trim();
  }
  return { mode, slowMs, format: rawFormat, ...(monitorMs === undefined ? {} : { monitorMs }), ...(statsd === undefined ? {} : { statsd }) };
}
