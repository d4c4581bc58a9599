/**
 * Safety rails: decided for each restart before any executor runs, recorded in the audit trail,
 * and shared by a fleet through its database (the {@link FleetControl} a storage adapter keeps).
 *
 *   denied by --allow-hosts / --deny-hosts        → skipped (acked, recorded, never restarted)
 *   paused (`mayhem pause`)                       → deferred (nacked back; intake pauses)
 *   outside --window                              → deferred until it opens (intake pauses)
 *   within --min-interval-per-host of the last    → deferred until then, or skipped (--on-limit)
 *   --max-concurrent-restarts already running     → deferred shortly, or skipped (--on-limit)
 *   leashed (--leashed)                           → logged and recorded, not restarted
 *
 * The checks run holding the host (so the per-host interval cannot race another instance) and in
 * that order: a host that may never be restarted is skipped whatever the time, and a paused fleet
 * defers everything.
 */
import type { HostFilter, RestartWindow } from './policy.js';

/** What was decided about one restart, as the audit trail records it. */
export type AuditOutcome =
  | 'restarted'
  | 'failed'
  | 'rejected'
  | 'in-doubt'
  | 'leashed'
  | 'already-done'
  | 'conflict'
  | 'skipped-denied'
  | 'skipped-too-soon'
  | 'skipped-busy'
  | 'deferred-paused'
  | 'deferred-outside-window'
  | 'deferred-too-soon'
  | 'deferred-busy'
  // The kill switch, fleet-wide (host '*'):
  | 'paused'
  | 'resumed'
  // Stop conditions (probes/runner.ts), fleet-wide (host '*'): a probe failed --probe-tolerance
  // checks in a row (the fleet is paused), or holds again after that.
  | 'probe-failed'
  | 'probe-recovered';

/** One row of the audit trail. */
export interface AuditEntry {
  /** ms since epoch. */
  readonly at: number;
  /** Which mayhem instance decided (host:pid unless named). */
  readonly instance: string;
  readonly host: string;
  /** The request's instance name (empty for fleet-wide rows): `mayhem audit --host` matches it or the host. */
  readonly instanceName?: string;
  readonly messageId: string;
  readonly executor: string;
  readonly outcome: AuditOutcome;
  /** One line: why (the error, the rule that refused, the window). Empty when there is nothing to add. */
  readonly reason: string;
  /** The experiment (`mayhem run --experiment NAME`) the row belongs to; empty when none. */
  readonly experiment?: string;
}

export interface AuditQuery {
  /** Entries at or after this time (ms since epoch). */
  readonly since?: number;
  /** Rows of this host, or of this request instance name. */
  readonly host?: string;
  /** Rows of this experiment only. */
  readonly experiment?: string;
  /** Most entries, newest first. */
  readonly limit: number;
}

/** The kill switch, as set by `mayhem pause`. */
export interface PauseState {
  readonly by: string;
  readonly at: number;
  readonly reason: string;
}

/**
 * Fleet-wide state the rails read and write, kept by the storage every instance shares (a file for
 * one instance, a database for a fleet).
 */
export interface FleetControl {
  /** The kill switch as last read: kept fresh by the adapter (read every `refreshMs`, ≤ 500 ms). */
  pauseState(): PauseState | undefined;
  /** Set or clear the kill switch (the `pause` / `resume` commands). */
  setPause(state: PauseState | undefined): Promise<void>;
  /** When `host` was last restarted by anyone (ms since epoch), if ever. Read holding the host. */
  lastRestart(host: string): Promise<number | undefined>;
  /** Record that `host` is being restarted now (holding the host, just before the executor runs). */
  stampRestart(host: string, at: number): Promise<void>;
  /** Take one of `max` restart slots (fleet-wide where the storage is shared); false when all are taken. */
  takeSlot(max: number): Promise<boolean>;
  /** Give back a slot taken by {@link takeSlot}. */
  releaseSlot(): void;
  /** Append to the audit trail. Batched; a failed write is retried by the adapter, never thrown here. */
  audit(entry: AuditEntry): void;
  readAudit(query: AuditQuery): Promise<AuditEntry[]>;
  /** Flush the audit trail and stop refreshing. */
  close(): Promise<void>;
}

export interface RailsSettings {
  readonly hosts: HostFilter;
  readonly window: RestartWindow | undefined;
  /** 0 = no minimum. */
  readonly minIntervalMs: number;
  /** 0 = no limit. */
  readonly maxConcurrent: number;
  /** What a message that would break the interval or the concurrency limit gets. */
  readonly onLimit: 'delay' | 'skip';
  /** Log and record what would be restarted; restart nothing. */
  readonly leashed: boolean;
}

/** Why the consumer pulls nothing for now; `kind` says which, `text` says it to a person. */
export interface IntakeHold {
  readonly kind: 'paused' | 'window';
  readonly text: string;
}

/** A rail's verdict: `undefined` = go (and, with a concurrency limit, a slot is held). */
export interface Verdict {
  readonly action: 'skip' | 'defer';
  readonly outcome: AuditOutcome;
  readonly reason: string;
  /** `defer` only: redeliver after this long. */
  readonly delayMs: number;
}

// A deferral is a nack with a delay: capped, so a long wait (a closed window over a weekend) is a few
// redeliveries rather than one that outlives a broker's limits; busy slots get a short, jittered one.
const MAX_DEFER_MS = 60 * 60_000;
const PAUSED_DEFER_MS = 5_000;
const BUSY_DEFER_MS = 2_000;

export class Rails {
  readonly settings: RailsSettings;
  readonly #control: FleetControl;
  readonly #random: () => number;

  constructor(settings: RailsSettings, control: FleetControl, random: () => number) {
    this.settings = settings;
    this.#control = control;
    this.#random = random;
  }

  /** Why intake should pause now (a paused fleet, a closed window), or undefined. Cheap: no I/O. */
  holdIntake(now: number): IntakeHold | undefined {
    const pause = this.#control.pauseState();
    if (pause !== undefined)
      return { kind: 'paused', text: `restarts paused by ${pause.by}${pause.reason ? ` (${pause.reason})` : ''}` };
    const w = this.settings.window;
    if (w !== undefined && !w.isOpen(now))
      return {
        kind: 'window',
        text: `outside the restart window ${w.text} (opens in ${duration(w.msUntilOpen(now))})`,
      };
    return undefined;
  }

  /** Whether restarts are paused fleet-wide right now (checked again before each retry). */
  get paused(): boolean {
    return this.#control.pauseState() !== undefined;
  }

  /**
   * Decide for `host`, holding it. On go with a concurrency limit a slot is taken: give it back with
   * {@link releaseSlot} when the restart ends.
   */
  async decide(host: string, now: number): Promise<Verdict | undefined> {
    const s = this.settings;
    const refused = s.hosts.refusal(host);
    if (refused !== undefined) return { action: 'skip', outcome: 'skipped-denied', reason: refused, delayMs: 0 };
    const pause = this.#control.pauseState();
    if (pause !== undefined) {
      return {
        action: 'defer',
        outcome: 'deferred-paused',
        reason: `restarts paused by ${pause.by} at ${new Date(pause.at).toISOString()}${pause.reason ? `: ${pause.reason}` : ''}`,
        delayMs: this.#jitter(PAUSED_DEFER_MS),
      };
    }
    if (s.window !== undefined && !s.window.isOpen(now)) {
      const wait = s.window.msUntilOpen(now);
      return {
        action: 'defer',
        outcome: 'deferred-outside-window',
        reason: `outside the restart window ${s.window.text}; it opens in ${duration(wait)}`,
        delayMs: Math.min(MAX_DEFER_MS, wait + this.#jitter(1000)),
      };
    }
    if (s.minIntervalMs > 0) {
      const last = await this.#control.lastRestart(host);
      const left = last === undefined ? 0 : last + s.minIntervalMs - now;
      if (left > 0) {
        const reason = `${host} was restarted ${duration(now - (last ?? now))} ago; --min-interval-per-host is ${duration(s.minIntervalMs)}`;
        if (s.onLimit === 'skip') return { action: 'skip', outcome: 'skipped-too-soon', reason, delayMs: 0 };
        return {
          action: 'defer',
          outcome: 'deferred-too-soon',
          reason,
          delayMs: Math.min(MAX_DEFER_MS, left + this.#jitter(1000)),
        };
      }
    }
    if (s.maxConcurrent > 0 && !(await this.#control.takeSlot(s.maxConcurrent))) {
      const reason = `${s.maxConcurrent} restarts already running (--max-concurrent-restarts)`;
      if (s.onLimit === 'skip') return { action: 'skip', outcome: 'skipped-busy', reason, delayMs: 0 };
      return { action: 'defer', outcome: 'deferred-busy', reason, delayMs: this.#jitter(BUSY_DEFER_MS) };
    }
    return undefined;
  }

  /** The restart that took a slot in {@link decide} has ended. */
  releaseSlot(): void {
    if (this.settings.maxConcurrent > 0) this.#control.releaseSlot();
  }

  /** Stamp the host's restart time for the interval rule (only when there is one). */
  stamp(host: string, at: number): Promise<void> | undefined {
    return this.settings.minIntervalMs > 0 ? this.#control.stampRestart(host, at) : undefined;
  }

  #jitter(ms: number): number {
    return Math.round(ms * (0.5 + this.#random()));
  }
}

/** `3h 12m`, `45 s`, `250 ms`: a wait as a person reads it. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h}h ${m % 60}m` : `${Math.floor(h / 24)}d ${h % 24}h`;
}
