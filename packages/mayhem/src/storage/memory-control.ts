/**
 * The rails' fleet state kept in this process: the kill switch, when each host was last restarted,
 * the restart slots and the audit trail. Right for `memory:` storage (tests, benchmarks) and the
 * in-process part of the others; nothing here outlives the process.
 */
import type { AuditEntry, AuditQuery, FleetControl, PauseState } from '../core/rails.js';
import { DONE } from '../core/settled.js';

export class LocalFleetControl implements FleetControl {
  #pause: PauseState | undefined;
  readonly #lastRestart = new Map<string, number>();
  #slotsTaken = 0;
  // A ring: once full, each entry overwrites the oldest. (Removing the oldest with splice moved the
  // whole array per decision: at 100,000 entries that was ~100 ms a callback and 4x the run time.)
  readonly #audit: AuditEntry[] = [];
  #oldest = 0;
  readonly #maxAudit: number;

  /** @param maxAudit audit entries kept (the oldest go first). */
  constructor(maxAudit = 100_000) {
    this.#maxAudit = Math.max(1, maxAudit);
  }

  /** Every entry kept, oldest first (tests). */
  get entries(): readonly AuditEntry[] {
    return [...this.#audit.slice(this.#oldest), ...this.#audit.slice(0, this.#oldest)];
  }

  /** Slots in use now (tests). */
  get slotsTaken(): number {
    return this.#slotsTaken;
  }

  pauseState(): PauseState | undefined {
    return this.#pause;
  }

  setPause(state: PauseState | undefined): Promise<void> {
    this.#pause = state;
    return DONE;
  }

  lastRestart(host: string): Promise<number | undefined> {
    return Promise.resolve(this.#lastRestart.get(host));
  }

  stampRestart(host: string, at: number): Promise<void> {
    this.#lastRestart.set(host, Math.max(at, this.#lastRestart.get(host) ?? 0));
    return DONE;
  }

  takeSlot(max: number): Promise<boolean> {
    if (this.#slotsTaken >= max) return Promise.resolve(false);
    this.#slotsTaken += 1;
    return Promise.resolve(true);
  }

  releaseSlot(): void {
    this.#slotsTaken = Math.max(0, this.#slotsTaken - 1);
  }

  audit(entry: AuditEntry): void {
    if (this.#audit.length < this.#maxAudit) {
      this.#audit.push(entry);
      return;
    }
    this.#audit[this.#oldest] = entry;
    this.#oldest = (this.#oldest + 1) % this.#maxAudit;
  }

  readAudit(query: AuditQuery): Promise<AuditEntry[]> {
    const out: AuditEntry[] = [];
    const kept = this.#audit.length;
    // Newest first: the newest sits just before the oldest in the ring.
    for (let k = 1; k <= kept && out.length < query.limit; k++) {
      const e = this.#audit[(this.#oldest - k + kept) % kept]!;
      if (query.since !== undefined && e.at < query.since) break;
      if (query.host !== undefined && e.host !== query.host) continue;
      out.push(e);
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return DONE;
  }
}
