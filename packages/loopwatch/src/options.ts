/**
 * Environment → options. Kept apart from `register.ts` so the same parsing serves tests and code.
 * A bad value is the user's typo, not our crash: it surfaces as an {@link OptionsError} whose message
 * is one readable line.
 */
import type { ReportKind } from './model/report.js';
import type { AttachSetting } from './attach/protocol.js';

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
  /** `LOOPWATCH_KINDS`: only these report kinds are written (all when absent). */
  readonly kinds?: readonly ReportKind[];
  /** `LOOPWATCH_IGNORE`: path globs whose frames are never a report's culprit or call site. */
  readonly ignore?: readonly string[];
  /** `LOOPWATCH_SILENCE`: known sites (`file:line`, a path suffix) whose reports are dropped. */
  readonly silence?: readonly string[];
  /** `LOOPWATCH_ONLY`: globs of main scripts to instrument (others stay un-instrumented). */
  readonly only?: readonly string[];
  /** `LOOPWATCH_SUMMARY=0` turns the summary at exit off. */
  readonly summary?: boolean;
  /** `LOOPWATCH_ATTACH`: the attach endpoint (on by default under register; `0` turns it off). */
  readonly attach?: AttachSetting;
  /** `LOOPWATCH_RECORD`: record the timeline to this file. */
  readonly record?: string;
  /** `LOOPWATCH_RECORD_MAX`: the recording's size cap, bytes. */
  readonly recordMaxBytes?: number;
}

export const DEFAULT_SLOW_MS = 100;

export const REPORT_KINDS: readonly ReportKind[] = [
  'task-dump',
  'unhandled-task-error',
  'task-destroyed-pending',
  'never-awaited',
  'slow-callback',
  'stall',
  'loop-lag',
  'thread-affinity',
  'start-up',
];

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

/** A comma-separated list, blanks dropped; undefined when the variable is absent or empty. */
function list(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return items.length === 0 ? undefined : items;
}

function kindsOf(raw: string | undefined): ReportKind[] | undefined {
  const items = list(raw);
  if (!items) return undefined;
  for (const k of items) {
    if (!(REPORT_KINDS as readonly string[]).includes(k)) {
      throw new OptionsError(
        `loopwatch: LOOPWATCH_KINDS names ${JSON.stringify(k)}; kinds are ${REPORT_KINDS.join(', ')}`,
      );
    }
  }
  return items as ReportKind[];
}

/** The smallest cap a recording takes: its header and a few slots of 64 KiB. */
const MIN_RECORD_BYTES = 1 << 20;

/** `64mb`, `512k`, `1g`, `1048576` → bytes. */
export function sizeOf(name: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg])?(?:i?b)?$/i.exec(raw.trim());
  const scale: Record<string, number> = { b: 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 };
  const bytes = m ? Math.floor(Number(m[1]) * (scale[(m[2] ?? 'b').toLowerCase()] ?? NaN)) : NaN;
  if (!Number.isFinite(bytes) || bytes < MIN_RECORD_BYTES)
    throw new OptionsError(`loopwatch: ${name}=${JSON.stringify(raw)} must be a size of at least 1mb (like 64mb, 1g)`);
  return bytes;
}

/** Parses `LOOPWATCH_ATTACH`: unset/`1`/`unix`, `0`/`off`, or `tcp:HOST:PORT`. */
export function attachSettingOf(raw: string | undefined): AttachSetting {
  const v = (raw ?? '').trim().toLowerCase();
  if (v === '' || v === '1' || v === 'on' || v === 'unix') return 'unix';
  if (v === '0' || v === 'off' || v === 'false') return false;
  const m = /^tcp:(.+):(\d{1,5})$/.exec((raw ?? '').trim());
  if (m && Number(m[2]) > 0 && Number(m[2]) < 65536) return { tcp: { host: m[1]!, port: Number(m[2]) } };
  throw new OptionsError(`loopwatch: LOOPWATCH_ATTACH=${JSON.stringify(raw)} must be 0, unix or tcp:HOST:PORT`);
}

/** Reads `LOOPWATCH*` variables. Throws {@link OptionsError} on a bad value. */
export function optionsFromEnv(env: NodeJS.ProcessEnv = process.env): LoopwatchOptions {
  const rawMode = (env['LOOPWATCH'] ?? '').trim().toLowerCase();
  let mode: Mode;
  if (rawMode === '' || rawMode === 'off' || rawMode === '0') mode = 'off';
  else if (rawMode === 'debug' || rawMode === '1') mode = 'debug';
  else if (rawMode === 'production' || rawMode === 'prod') mode = 'production';
  else
    throw new OptionsError(`loopwatch: LOOPWATCH=${JSON.stringify(env['LOOPWATCH'])} must be debug, production or off`);

  const rawFormat = (env['LOOPWATCH_FORMAT'] ?? 'text').trim().toLowerCase();
  if (rawFormat !== 'text' && rawFormat !== 'json') {
    throw new OptionsError(
      `loopwatch: LOOPWATCH_FORMAT=${JSON.stringify(env['LOOPWATCH_FORMAT'])} must be text or json`,
    );
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
  const kinds = kindsOf(env['LOOPWATCH_KINDS']);
  const ignore = list(env['LOOPWATCH_IGNORE']);
  const silence = list(env['LOOPWATCH_SILENCE']);
  const only = list(env['LOOPWATCH_ONLY']);
  const summaryRaw = (env['LOOPWATCH_SUMMARY'] ?? '').trim().toLowerCase();
  const summary = summaryRaw === '0' || summaryRaw === 'off' || summaryRaw === 'false' ? false : undefined;
  const attach = env['LOOPWATCH_ATTACH'] === undefined ? undefined : attachSettingOf(env['LOOPWATCH_ATTACH']);
  const record = (env['LOOPWATCH_RECORD'] ?? '').trim() || undefined;
  const maxRaw = env['LOOPWATCH_RECORD_MAX'];
  const recordMaxBytes = maxRaw === undefined || maxRaw === '' ? undefined : sizeOf('LOOPWATCH_RECORD_MAX', maxRaw);
  return {
    mode,
    slowMs,
    format: rawFormat,
    ...(monitorMs === undefined ? {} : { monitorMs }),
    ...(statsd === undefined ? {} : { statsd }),
    ...(kinds ? { kinds } : {}),
    ...(ignore ? { ignore } : {}),
    ...(silence ? { silence } : {}),
    ...(only ? { only } : {}),
    ...(summary === false ? { summary } : {}),
    ...(attach === undefined ? {} : { attach }),
    ...(record === undefined ? {} : { record }),
    ...(recordMaxBytes === undefined ? {} : { recordMaxBytes }),
  };
}
