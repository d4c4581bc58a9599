/**
 * A preview of the fleet's state: reads the real one (the kill switch, settings, restart times,
 * hosts seen) and keeps what the preview would do to it to itself. The rails decide on it exactly as
 * on the real one, so a preview applies the interval, the blast radius and the slots to the restarts
 * it would make without touching the fleet:
 *
 * - `mayhem plan` on simulated time (its clock is the simulation's; nothing is forwarded);
 * - a leashed `mayhem run` on real time (its audit rows go to the fleet's trail, as they always did).
 *
 * A restart it would make holds a slot for `restartMs` (the executor is not run, so its end is
 * assumed), then the slot frees itself: whoever uses it does not give it back.
 */
import { blastTake, type BlastTake } from './blast.js';
import type { AuditEntry, AuditQuery, FleetControl, PauseState, StoredSettings } from './rails.js';
import { DONE } from './settled.js';

export interface ShadowOptions {
  /** How long a restart the preview would make is taken to last. */
  readonly restartMs: number;
  /** The preview's clock (simulated for the plan). */
  readonly now: () => number;
  /** Audit rows go to the real trail (a leashed run) or only mark the host as seen (the plan). */
  readonly forwardAudit: boolean;
}

export class ShadowControl implements FleetControl {
  readonly #base: FleetControl;
  readonly #o: ShadowOptions;
  readonly #stamps = new Map<string, number>();
  readonly #seen = new Map<string, number>();
  /** When each slot taken frees itself (ms). */
  #slots: number[] = [];

  constructor(base: FleetControl, options: ShadowOptions) {
    this.#base = base;
    this.#o = options;
  }

  pauseState(): PauseState | undefined {
    return this.#base.pauseState();
  }

  settingsState(): StoredSettings | undefined {
    return this.#base.settingsState();
  }

  refresh(): Promise<void> {
    return this.#base.refresh();
  }

  writeSettings(next: Omit<StoredSettings, 'version'>, expected: number): Promise<StoredSettings> {
    return this.#base.writeSettings(next, expected);
  }

  setPause(state: PauseState | undefined): Promise<void> {
    return this.#base.setPause(state);
  }

  async lastRestart(host: string): Promise<number | undefined> {
    const real = await this.#base.lastRestart(host);
    const mine = this.#stamps.get(host);
    return mine === undefined ? real : Math.max(mine, real ?? mine);
  }

  stampRestart(host: string, at: number): Promise<void> {
    this.#stamps.set(host, Math.max(at, this.#stamps.get(host) ?? at));
    return DONE;
  }

  takeSlot(max: number): Promise<boolean> {
    const now = this.#o.now();
    this.#slots = this.#slots.filter((until) => until > now);
    if (this.#slots.length >= max) return Promise.resolve(false);
    this.#slots.push(now + this.#o.restartMs);
    return Promise.resolve(true);
  }

  /**
   * Give back the slot taken last, at once: one taken for a restart that then did not go (a later
   * rail refused). A restart that goes keeps its slot until its assumed end, and is not given back.
   */
  releaseSlot(): void {
    this.#slots.pop();
  }

  /** When the next slot taken frees itself (the plan's clock moves there), if one is taken. */
  nextSlotFree(): number | undefined {
    const now = this.#o.now();
    const held = this.#slots.filter((until) => until > now);
    return held.length === 0 ? undefined : Math.min(...held);
  }

  async takeBlast(host: string, at: number, since: number, cap: number): Promise<BlastTake> {
    const take = blastTake(await this.restartedSince(since), host, cap);
    if (take.ok) await this.stampRestart(host, at);
    return take;
  }

  async restartedSince(since: number): Promise<Map<string, number>> {
    const out = await this.#base.restartedSince(since);
    for (const [host, at] of this.#stamps) if (at >= since) out.set(host, Math.max(at, out.get(host) ?? at));
    return out;
  }

  async hostsSeenSince(since: number): Promise<Set<string>> {
    const out = await this.#base.hostsSeenSince(since);
    for (const [host, at] of this.#seen) if (at >= since) out.add(host);
    return out;
  }

  audit(entry: AuditEntry): void {
    if (entry.host !== '*') this.#seen.set(entry.host, Math.max(entry.at, this.#seen.get(entry.host) ?? entry.at));
    if (this.#o.forwardAudit) this.#base.audit(entry);
  }

  readAudit(query: AuditQuery): Promise<AuditEntry[]> {
    return this.#base.readAudit(query);
  }

  /** The real control is its owner's to close. */
  close(): Promise<void> {
    return DONE;
  }
}
