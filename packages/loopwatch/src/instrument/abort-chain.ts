/**
 * Who aborted it (issue: abort chains). A task that ends through an AbortSignal ends with the signal's reason,
 * or an `AbortError` whose `cause` is that reason; nothing in the error says who called `abort()`. In debug mode
 * this module notes, for every reason object, where it came from:
 * - `AbortController.prototype.abort(reason)`: the caller's frames;
 * - `AbortSignal.timeout(ms)`: where the timeout was made, and its length;
 * - `AbortSignal.any([...])`: the composite carries its source's reason unchanged, so the chain is the source's
 *   origin followed by each `any` it passed through.
 * Reports look a task's error (or its `cause`) up here. Only weak maps: nothing is kept alive by this module,
 * except a timeout signal until it fires (its `abort` listener, as any user of the signal would add).
 */
import { captureSites, userFrames } from '../source/frames.js';
import { formatLocation } from '../model/report.js';
import { errorText } from '../model/error-text.js';
import { canReplace } from './blocking.js';

/** Where an abort came from: the reason, the user frames of the call (or of the timeout's creation), and the way. */
export interface AbortOrigin {
  readonly reason: string;
  readonly at: readonly string[];
  /** `AbortSignal.any` sites the abort passed through, first to last. */
  readonly via?: readonly string[];
}

const byReason = new WeakMap<object, AbortOrigin>();
/** `AbortSignal.any` hops seen before the source's origin was noted (a composite may abort first). */
const pendingVia = new WeakMap<object, string[]>();
/** Timeout signals not yet fired: how they were made. */
const timeouts = new WeakMap<AbortSignal, { ms: number; at: string[] }>();

let undo: (() => void) | undefined;

function site(fn: (...args: never[]) => unknown, depth = 3): string[] {
  return userFrames(captureSites(fn, depth + 3), depth).map(formatLocation);
}

function note(reason: unknown, origin: AbortOrigin): void {
  if (typeof reason !== 'object' || reason === null || byReason.has(reason)) return;
  const via = pendingVia.get(reason);
  byReason.set(reason, via ? { ...origin, via: [...(origin.via ?? []), ...via] } : origin);
}

function addVia(reason: unknown, hop: string): void {
  if (typeof reason !== 'object' || reason === null) return;
  const o = byReason.get(reason);
  if (o) byReason.set(reason, { ...o, via: [...(o.via ?? []), hop] });
  else pendingVia.set(reason, [...(pendingVia.get(reason) ?? []), hop]);
}

/** The origin of the abort that ended a task with `error` (the reason itself, or an AbortError caused by it). */
export function abortOriginOf(error: unknown): AbortOrigin | undefined {
  for (let e = error, i = 0; typeof e === 'object' && e !== null && i < 4; i++) {
    const o = byReason.get(e);
    if (o) return o;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Starts noting aborts (debug mode). Idempotent; `stopAbortChains()` puts everything back. */
export function startAbortChains(): void {
  if (undo) return;
  const restores: (() => void)[] = [];
  const proto = AbortController.prototype as unknown as Record<string, unknown>;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- restored as-is, called with the caller's `this`
  const abort = AbortController.prototype.abort;
  if (canReplace(proto, 'abort')) {
    const wrapped = function (this: AbortController, reason?: unknown): void {
      if (this.signal.aborted) return abort.call(this, reason);
      // Noted before the signal fires, so listeners (and `AbortSignal.any` composites) see it. The reason
      // abort() would make itself when none is given, made here so that it can be noted.
      const r = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      note(r, { reason: errorText(r), at: site(wrapped) });
      abort.call(this, r);
    };
    proto['abort'] = wrapped;
    restores.push(() => (proto['abort'] = abort));
  }
  const statics = AbortSignal as unknown as Record<string, unknown>;
  const originalTimeout = statics['timeout'];
  const originalAny = statics['any'];
  const timeout = AbortSignal.timeout.bind(AbortSignal);
  if (canReplace(statics, 'timeout')) {
    const wrapped = (ms: number): AbortSignal => {
      const signal = timeout(ms);
      const made = { ms, at: site(wrapped) };
      timeouts.set(signal, made);
      signal.addEventListener(
        'abort',
        () => note(signal.reason, { reason: `AbortSignal.timeout(${made.ms}) fired`, at: made.at }),
        { once: true },
      );
      return signal;
    };
    statics['timeout'] = wrapped;
    restores.push(() => (statics['timeout'] = originalTimeout));
  }
  const anyOf = typeof AbortSignal.any === 'function' ? AbortSignal.any.bind(AbortSignal) : undefined;
  if (anyOf && canReplace(statics, 'any')) {
    const wrapped = (signals: Iterable<AbortSignal>): AbortSignal => {
      const list = [...signals];
      const composite = anyOf(list);
      const at = site(wrapped, 1)[0] ?? 'AbortSignal.any';
      if (!composite.aborted)
        composite.addEventListener('abort', () => addVia(composite.reason, `AbortSignal.any at ${at}`), { once: true });
      return composite;
    };
    statics['any'] = wrapped;
    restores.push(() => (statics['any'] = originalAny));
  }
  undo = () => {
    for (const r of restores.reverse()) r();
  };
}

export function stopAbortChains(): void {
  undo?.();
  undo = undefined;
}
