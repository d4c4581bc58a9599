/**
 * Safety rails: decided for each restart before any executor runs, recorded in the audit trail,
 * and shared by a fleet through its database (the {@link FleetControl} a storage adapter keeps).
 *
 *   denied by --allow-hosts / --deny-hosts        → skipped (acked, recorded, never restarted)
 *   paused (`mayhem pause`)                       → deferred (nacked back; intake pauses)
 *   leashed, as a member of a shared-broker fleet → deferred (nothing taken; intake pauses)
 *   outside --window                              → deferred until it opens (intake pauses)
 *   within --min-interval-per-host of the last    → deferred until then, or skipped (--on-limit)
 *   --max-concurrent-restarts already running     → deferred shortly, or skipped (--on-limit)
 *   --max-restart-percent of the inventory done   → deferred until the window has room, or skipped
 *   leashed (--leashed), its own messages         → logged and recorded, not restarted
 *
 * The checks run holding the host (so the per-host interval cannot race another instance) and in
 * that order: a host that may never be restarted is skipped whatever the time, and a paused fleet
 * defers everything. The blast radius comes last: it counts a host the moment it lets it through
 * (fleet-wide, atomically), so only a restart that goes may count (a slot taken is given back when
 * it refuses).
 *
 * `mayhem run` and `mayhem plan` decide with this one class: the plan gives it a preview of the
 * fleet's state on simulated time (core/shadow-control.ts), the leashed run one on real time.
 */
import { blastCap, blastReopensAt, type BlastRadius } from './blast.js';
export type { BlastTake } from './blast.js';
import type { HostFilter, RestartWindow } from './policy.js';

// The fleet-state contract the rails decide with (core/fleet-control.ts), re-exported for its users.
export type {
  AuditOutcome,
  AuditEntry,
  AuditQuery,
  PauseState,
  StoredSettings,
  FleetControl,
} from './fleet-control.js';
import type { AuditOutcome, FleetControl } from './fleet-control.js';

export interface RailsSettings {
  readonly hosts: HostFilter;
  readonly window: RestartWindow | undefined;
  /** 0 = no minimum. */
  readonly minIntervalMs: number;
  /** 0 = no limit. */
  readonly maxConcurrent: number;
  /** What a message that would break the interval, the blast radius or the concurrency limit gets. */
  readonly onLimit: 'delay' | 'skip';
  /** Log and record what would be restarted; restart nothing. */
  readonly leashed: boolean;
  /** `--max-restart-percent` with its window and inventory; undefined: no cap. */
  readonly blast?: BlastRadius | undefined;
}

/** Why the consumer pulls nothing for now; `kind` says which, `text` says it to a person. */
export interface IntakeHold {
  readonly kind: 'paused' | 'window' | 'leashed';
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

/** The rails, in the order they are checked. */
export type RailName = 'hosts' | 'pause' | 'leash' | 'window' | 'interval' | 'concurrency' | 'blast';

/** One rail's answer in a decision, for the preview: go (no verdict) or its verdict. */
export interface RailCheck {
  readonly rail: RailName;
  readonly verdict?: Verdict | undefined;
}

export interface RailsOptions {
  /**
   * What a leashed instance does with a restart the rails let through: `look` (its own messages:
   * record it as leashed, restart nothing) or `hold` (a member of a fleet on a shared broker: take
   * nothing — defer it and pause intake until the fleet is unleashed). Default `look`.
   */
  readonly leash?: 'look' | 'hold';
  /**
   * Where a leashed (`look`) instance keeps the restarts it would make, so the interval, the blast
   * radius and the slots hold for them as for real ones without touching the fleet's state (a
   * {@link FleetControl} over the real one: core/shadow-control.ts). Default: the real one is used
   * and a leashed restart leaves no trace there (it holds no slot, stamps no time).
   */
  readonly shadow?: FleetControl;
}

// A deferral is a nack with a delay: capped, so a long wait (a closed window over a weekend) is a few
// redeliveries rather than one that outlives a broker's limits; busy slots get a short, jittered one.
const MAX_DEFER_MS = 60 * 60_000;
const PAUSED_DEFER_MS = 5_000;
const BUSY_DEFER_MS = 2_000;

export class Rails {
  #settings: RailsSettings;
  readonly #control: FleetControl;
  readonly #shadow: FleetControl | undefined;
  readonly #random: () => number;
  readonly #leash: 'look' | 'hold';
  // Slots taken from the shadow and not yet given back: their release goes there, not to the fleet.
  #shadowSlots = 0;

  constructor(settings: RailsSettings, control: FleetControl, random: () => number, options: RailsOptions = {}) {
    this.#settings = settings;
    this.#control = control;
    this.#random = random;
    this.#leash = options.leash ?? 'look';
    this.#shadow = options.shadow;
  }

  get settings(): RailsSettings {
    return this.#settings;
  }

  /** New settings from now on (the fleet's changed); restarts already let through are not asked again. */
  update(settings: RailsSettings): void {
    this.#settings = settings;
  }

  /** Whether a restart let through now is only recorded as leashed (its own messages, `look`). */
  get looks(): boolean {
    return this.#settings.leashed && this.#leash === 'look';
  }

  /** Why intake should pause now (a paused fleet, a leashed member, a closed window), or undefined. Cheap: no I/O. */
  holdIntake(now: number): IntakeHold | undefined {
    const pause = this.#control.pauseState();
    if (pause !== undefined)
      return { kind: 'paused', text: `restarts paused by ${pause.by}${pause.reason ? ` (${pause.reason})` : ''}` };
    if (this.#holdsForLeash())
      return {
        kind: 'leashed',
        text: 'leashed by the fleet settings: nothing is taken from the broker (`mayhem plan` shows what would run; `mayhem settings set --leashed false` lets it)',
      };
    const w = this.#settings.window;
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
   * {@link releaseSlot} when the restart ends. `trace`, when given, gets each rail's answer in order
   * (the rails not set are left out).
   */
  async decide(host: string, now: number, trace?: RailCheck[]): Promise<Verdict | undefined> {
    const s = this.#settings;
    const c = this.#stateFor(this.looks);
    if (!s.hosts.open) {
      const refused = s.hosts.refusal(host);
      if (refused !== undefined)
        return noted(trace, 'hosts', { action: 'skip', outcome: 'skipped-denied', reason: refused, delayMs: 0 });
      noted(trace, 'hosts');
    }
    const pause = this.#control.pauseState();
    if (pause !== undefined) {
      return noted(trace, 'pause', {
        action: 'defer',
        outcome: 'deferred-paused',
        reason: `restarts paused by ${pause.by} at ${new Date(pause.at).toISOString()}${pause.reason ? `: ${pause.reason}` : ''}`,
        delayMs: this.#jitter(PAUSED_DEFER_MS),
      });
    }
    noted(trace, 'pause');
    if (this.#holdsForLeash())
      return noted(trace, 'leash', {
        action: 'defer',
        outcome: 'deferred-leashed',
        reason: 'leashed by the fleet settings: taken back, nothing restarted',
        delayMs: this.#jitter(PAUSED_DEFER_MS),
      });
    if (s.window !== undefined) {
      if (!s.window.isOpen(now)) {
        const wait = s.window.msUntilOpen(now);
        return noted(trace, 'window', {
          action: 'defer',
          outcome: 'deferred-outside-window',
          reason: `outside the restart window ${s.window.text}; it opens in ${duration(wait)}`,
          delayMs: Math.min(MAX_DEFER_MS, wait + this.#jitter(1000)),
        });
      }
      noted(trace, 'window');
    }
    if (s.minIntervalMs > 0) {
      const last = await c.lastRestart(host);
      const left = last === undefined ? 0 : last + s.minIntervalMs - now;
      if (left > 0) {
        const reason = `${host} was restarted ${duration(now - (last ?? now))} ago; --min-interval-per-host is ${duration(s.minIntervalMs)}`;
        return noted(trace, 'interval', this.#limit('too-soon', reason, left + this.#jitter(1000)));
      }
      noted(trace, 'interval');
    }
    let slot = false;
    if (s.maxConcurrent > 0) {
      if (!(await c.takeSlot(s.maxConcurrent))) {
        const reason = `${s.maxConcurrent} restarts already running (--max-concurrent-restarts)`;
        return noted(trace, 'concurrency', this.#limit('busy', reason, this.#jitter(BUSY_DEFER_MS)));
      }
      slot = true;
      noted(trace, 'concurrency');
    }
    if (s.blast !== undefined) {
      const refused = await this.#blast(c, s.blast, host, now);
      if (refused !== undefined) {
        if (slot) c.releaseSlot();
        return noted(trace, 'blast', refused);
      }
      noted(trace, 'blast');
    }
    if (slot && c === this.#shadow) this.#shadowSlots += 1;
    return undefined;
  }

  /** The restart that took a slot in {@link decide} has ended. */
  releaseSlot(): void {
    // A leashed restart's slot in the shadow frees itself at the restart's assumed end.
    if (this.#shadowSlots > 0) this.#shadowSlots -= 1;
    else this.#control.releaseSlot();
  }

  /**
   * Stamp the host's restart time for the interval rule (only when there is one); `looking`: a
   * restart only recorded as leashed, stamped where the leashed instance keeps its own.
   */
  stamp(host: string, at: number, looking = false): Promise<void> | undefined {
    // Never the fleet's for a restart that does not happen: without a shadow, it leaves no trace.
    if (this.#settings.minIntervalMs === 0 || (looking && this.#shadow === undefined)) return undefined;
    return this.#stateFor(looking).stampRestart(host, at);
  }

  /**
   * The blast radius: taken last, so only a restart that goes counts (its restart time stamped in the
   * same step, fleet-wide); undefined when it may go.
   */
  async #blast(c: FleetControl, b: BlastRadius, host: string, now: number): Promise<Verdict | undefined> {
    const since = now - b.windowMs;
    const size = b.inventory?.length ?? (await c.hostsSeenSince(since)).add(host).size;
    const cap = blastCap(b.percent, size);
    const take = await c.takeBlast(host, now, since, cap);
    if (take.ok) return undefined;
    const of =
      b.inventory !== undefined
        ? `${size} hosts of the inventory${b.inventorySource !== undefined ? ` ${b.inventorySource}` : ''}`
        : `${size} hosts seen in it`;
    const reason = `${take.others.length} of ${of} were restarted in the last ${duration(b.windowMs)}; --max-restart-percent ${b.percent} allows ${cap}`;
    return this.#limit('blast-radius', reason, blastReopensAt(take, cap, b.windowMs) - now + this.#jitter(1000));
  }

  #stateFor(looking: boolean): FleetControl {
    return looking && this.#shadow !== undefined ? this.#shadow : this.#control;
  }

  #holdsForLeash(): boolean {
    return this.#settings.leashed && this.#leash === 'hold';
  }

  /** The interval, the blast radius and the slots: deferred (`delay`) or skipped (`skip`). */
  #limit(what: 'too-soon' | 'blast-radius' | 'busy', reason: string, delayMs: number): Verdict {
    if (this.#settings.onLimit === 'skip') return { action: 'skip', outcome: `skipped-${what}`, reason, delayMs: 0 };
    return { action: 'defer', outcome: `deferred-${what}`, reason, delayMs: Math.min(MAX_DEFER_MS, delayMs) };
  }

  #jitter(ms: number): number {
    return Math.round(ms * (0.5 + this.#random()));
  }
}

/** A rail's answer, added to the trace when there is one (a function, not a closure per decision). */
function noted(trace: RailCheck[] | undefined, rail: RailName, verdict?: Verdict): Verdict | undefined {
  trace?.push({ rail, verdict });
  return verdict;
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
