/**
 * The process's one {@link Loopwatch}, and the thin functions `index.ts` and `register` call on it.
 * Everything here delegates: the state is the instance's.
 */
import type { Report } from './model/report.js';
import type { LoopwatchOptions } from './options.js';
import { assertMainThread } from './instrument/thread-guard.js';
import { Loopwatch, type EnableOptions, type Mode } from './loopwatch.js';

export type { EnableOptions } from './loopwatch.js';

/** The instance the functional API and `loopwatch/register` drive. */
export const loopwatch = new Loopwatch();

export function activeMode(): Mode {
  return loopwatch.mode;
}

/** Full debug mode; see {@link Loopwatch.enableDebug}. */
export function enableDebug(opts: EnableOptions = {}): void {
  assertMainThread('enableDebug');
  loopwatch.enableDebug(opts);
}

/** The cheap production set; see {@link Loopwatch.enableProduction}. */
export function enableProduction(opts: EnableOptions = {}): void {
  assertMainThread('enableProduction');
  loopwatch.enableProduction(opts);
}

/** Emits a report through the configured sink (text on stderr unless configured). */
export function report(r: Report): void {
  loopwatch.report(r);
}

/** What `loopwatch/register` calls with the options read from the environment. */
export function enableFromOptions(opts: LoopwatchOptions): void {
  const common: EnableOptions = {
    slowMs: opts.slowMs,
    format: opts.format,
    ...(opts.monitorMs === undefined ? {} : { monitorMs: opts.monitorMs }),
    ...(opts.statsd === undefined ? {} : { statsd: opts.statsd }),
    ...(opts.kinds ? { kinds: opts.kinds } : {}),
    ...(opts.ignore ? { ignore: opts.ignore } : {}),
    ...(opts.silence ? { silence: opts.silence } : {}),
    ...(opts.summary === false ? { summary: false } : {}),
    ...(opts.record === undefined ? {} : { record: opts.record }),
    ...(opts.recordMaxBytes === undefined ? {} : { recordMaxBytes: opts.recordMaxBytes }),
    // Under register the endpoint is on unless LOOPWATCH_ATTACH=0.
    attach: opts.attach ?? 'unix',
  };
  if (opts.mode === 'debug') enableDebug(common);
  else if (opts.mode === 'production') enableProduction(common);
}

/** Turns every instrument off and restores what loopwatch patched. */
export function disable(): Promise<void> {
  return loopwatch.disable();
}
