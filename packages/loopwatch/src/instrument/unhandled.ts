/**
 * `unhandled-task-error`. Node decides a rejection is unhandled and then calls
 * `process.emit('unhandledRejection', reason, promise)`; the return value (any listener?) drives its
 * default behaviour. Observing `process.emit` instead of adding a listener sees every unhandled
 * rejection, even when the program has its own listener, and leaves exit semantics exactly as they were.
 */
import type { Report, UnhandledTaskErrorReport } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import { taskRef } from '../model/task.js';
import { createdAtOf, definedAtOf } from './describe.js';
import { recordOf } from './tasks.js';
import { abortOriginOf } from './abort-chain.js';

type Emit = typeof process.emit;

export function unhandledReport(reason: unknown, promise: unknown, time = Date.now()): UnhandledTaskErrorReport {
  const rec = recordOf(promise);
  const err = reason instanceof Error ? reason : undefined;
  const error = err
    ? { name: err.name, message: err.message, ...(err.stack === undefined ? {} : { stack: err.stack }) }
    : { name: typeof reason, message: String(reason) };
  const origin = abortOriginOf(reason);
  const abortedBy = origin ? { abortedBy: origin } : {};
  if (!rec) {
    return { kind: 'unhandled-task-error', time, error, ...abortedBy };
  }
  const createdAt = createdAtOf(rec);
  // The parent chain continues the source traceback across async hops.
  for (let p = rec.parent; p !== undefined && createdAt.length < 10; p = p.parent) {
    if (!p.internal) createdAt.push(...createdAtOf(p, 2));
  }
  const site = createdAt[0] ?? definedAtOf(rec);
  return {
    kind: 'unhandled-task-error',
    time,
    task: taskRef(rec),
    ...(site ? { location: formatLocation(site), functionName: site.functionName } : {}),
    createdAt,
    error,
    ...abortedBy,
  };
}

/** Observes `process.emit('unhandledRejection', …)` while started; `stop()` puts the original back. */
export class UnhandledWatcher {
  #original: Emit | undefined;

  constructor(readonly report: (r: Report) => void) {}

  start(): void {
    if (this.#original) return;
    // Kept unbound on purpose: restored as-is by stop(), and called with the right `this`.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const orig = process.emit;
    this.#original = orig;
    const report = this.report;
    process.emit = function (this: NodeJS.Process, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'unhandledRejection') {
        try {
          report(unhandledReport(args[0], args[1]));
        } catch {
          // Never let the reporter change what the program does next.
        }
      }
      return (orig as (this: NodeJS.Process, e: string | symbol, ...a: unknown[]) => boolean).call(
        this,
        event,
        ...args,
      );
    } as Emit;
  }

  stop(): void {
    if (this.#original) process.emit = this.#original;
    this.#original = undefined;
  }
}
