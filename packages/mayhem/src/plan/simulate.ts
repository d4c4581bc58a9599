/**
 * The preview's simulation: what `mayhem run` would do with these requests, on simulated time, with
 * the run's own rails (core/rails.ts — not a second implementation) deciding on a shadow of the
 * fleet's state (core/shadow-control.ts). It walks the requests as the service handles them:
 *
 *   pulled, unless intake is held (paused: it waits for `mayhem resume`; outside the window: until
 *     it opens) → holds its host (a second request for a host waits for the first's restart) → the
 *     rails decide → go: restarted (its host and, with a limit, a slot held for `restartMs`); skip:
 *     acked; defer: redelivered after the rail's delay, and pulled again.
 *
 * Jitter is at its middle (a delay of 2 s ± 50 % is 2 s). What it cannot know it does not guess: a
 * request whose restart is recorded already (a redelivery) shows as a restart here; the run finds it
 * done.
 */
import type { RestartRequest } from '../core/message.js';
import type { AuditOutcome, RailCheck, Rails, Verdict } from '../core/rails.js';
import type { ShadowControl } from '../core/shadow-control.js';

export interface PlanInput {
  readonly request: RestartRequest;
  readonly host: string;
  /** The stream sequence, for a request read from NATS. */
  readonly seq?: number | undefined;
}

/** One thing that happened to a request, in time. */
export type PlanStep =
  /** The rails decided (`outcome` as the audit trail would record it; a go is `restarted`). */
  | {
      readonly kind: 'decided';
      readonly at: number;
      readonly checks: readonly RailCheck[];
      readonly outcome: AuditOutcome;
      readonly verdict?: Verdict | undefined;
    }
  /** Not pulled: intake held (`until` undefined: until someone resumes or unleashes). */
  | { readonly kind: 'held'; readonly at: number; readonly until: number | undefined; readonly why: string }
  /** Pulled, waiting for its host (another request's restart of it). */
  | { readonly kind: 'waited'; readonly at: number; readonly until: number };

export type PlanEnd =
  | { readonly kind: 'restart'; readonly at: number; readonly until: number }
  | { readonly kind: 'skip'; readonly at: number; readonly outcome: AuditOutcome; readonly reason: string }
  | { readonly kind: 'waiting'; readonly why: string; readonly until?: number | undefined };

export interface PlanEntry {
  readonly input: PlanInput;
  readonly steps: PlanStep[];
  end?: PlanEnd;
}

export interface SimulateOptions {
  /** Simulated time starts here (ms since epoch). */
  readonly start: number;
  /** How long a restart is taken to last. */
  readonly restartMs: number;
  /** Simulated time is not walked further than this past the start. */
  readonly horizonMs: number;
  /** Decisions per request at most (a request deferred again and again is reported as waiting). */
  readonly maxDecisions?: number;
}

interface Event {
  readonly at: number;
  readonly order: number;
  readonly index: number;
  /** Pulled already (waiting for its host): intake holds do not apply. */
  readonly pulled: boolean;
}

/** Walk the requests; `setNow` moves the shadow's clock. */
export async function simulate(
  inputs: readonly PlanInput[],
  rails: Rails,
  shadow: ShadowControl,
  setNow: (t: number) => void,
  o: SimulateOptions,
): Promise<PlanEntry[]> {
  const entries: PlanEntry[] = inputs.map((input) => ({ input, steps: [] }));
  const busy = new Map<string, number>();
  const decisions = new Map<number, number>();
  let order = 0;
  // Kept in time order (ties in the order they were queued: the stream's, then first come).
  const queue: Event[] = inputs.map((_, index) => ({ at: o.start, order: order++, index, pulled: false }));
  const push = (at: number, index: number, pulled: boolean): void => {
    let lo = 0;
    let hi = queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (queue[mid]!.at <= at) lo = mid + 1;
      else hi = mid;
    }
    queue.splice(lo, 0, { at, order: order++, index, pulled });
  };
  const horizon = o.start + o.horizonMs;
  const maxDecisions = o.maxDecisions ?? 1000;
  while (queue.length > 0) {
    const ev = queue.shift()!;
    const e = entries[ev.index]!;
    const t = ev.at;
    setNow(t);
    if (t > horizon) {
      e.end = { kind: 'waiting', why: 'past the end of the plan', until: t };
      continue;
    }
    if (!ev.pulled) {
      const hold = rails.holdIntake(t);
      if (hold !== undefined) {
        const w = rails.settings.window;
        const until = hold.kind === 'window' && w !== undefined ? t + w.msUntilOpen(t) : undefined;
        e.steps.push({ kind: 'held', at: t, until, why: hold.text });
        if (until === undefined) e.end = { kind: 'waiting', why: hold.text };
        else push(until, ev.index, false);
        continue;
      }
    }
    const free = busy.get(e.input.host) ?? 0;
    if (free > t) {
      e.steps.push({ kind: 'waited', at: t, until: free });
      push(free, ev.index, true);
      continue;
    }
    const n = (decisions.get(ev.index) ?? 0) + 1;
    decisions.set(ev.index, n);
    if (n > maxDecisions) {
      e.end = { kind: 'waiting', why: `still deferred after ${maxDecisions} decisions` };
      continue;
    }
    const checks: RailCheck[] = [];
    const verdict = await rails.decide(e.input.host, t, checks);
    // The run audits every decision: the hosts seen in the window (the blast radius's whole) count it.
    shadow.audit({
      at: t,
      instance: 'plan',
      host: e.input.host,
      messageId: e.input.request.messageId,
      executor: '',
      outcome: verdict?.outcome ?? 'restarted',
      reason: '',
    });
    if (verdict === undefined) {
      e.steps.push({ kind: 'decided', at: t, checks, outcome: 'restarted' });
      await rails.stamp(e.input.host, t);
      // Its host is held, and a slot (in the shadow) until the restart is over.
      busy.set(e.input.host, t + o.restartMs);
      e.end = { kind: 'restart', at: t, until: t + o.restartMs };
      continue;
    }
    e.steps.push({ kind: 'decided', at: t, checks, outcome: verdict.outcome, verdict });
    if (verdict.action === 'skip') e.end = { kind: 'skip', at: t, outcome: verdict.outcome, reason: verdict.reason };
    else push(t + verdict.delayMs, ev.index, false);
  }
  return entries;
}
