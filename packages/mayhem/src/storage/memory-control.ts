/**
 * The rails' fleet state kept in this process: the kill switch, when each host was last restarted,
 * the restart slots and the audit trail. Right for `memory:` storage (tests, benchmarks) and the
 * in-process part of the others; nothing here outlives the process.
 */
import type { AuditEntry, AuditQuery, FleetControl, PauseState } from '../core/rails.js';
import { DONE } from '../core/settled.js';
import { auditMatchesHost } from './audit-row.js';

export class LocalFleetControl implements FleetControl {
  #pause: PauseState | undefined;
  readonly #lastRestart = new Map<string, number>();
  #slotsTaken = 0;
  // The audit trail: a ring of at most #maxAudit entries, so a decision costs O(1) however long the
  // run (the oldest is overwritten). Until it is full, #oldest stays 0 and it is a plain array.
  readonly #audit: AuditEntry[] = [];
  #oldest = 0;
  readonly #maxAudit: number;

  /** @param maxAudit audit entries kept (the oldest go first); at least 1. */
  constructor(maxAudit = 100_000) {
    this.#maxAudit = Math.max(1, maxAudit);
  }

  /** Every entry kept, oldest first (tests). */
  get entries(): readonly AuditEntry[] {
    return this.#oldest === 0
      ? this.#audit
      : [...this.#audit.slice(this.#oldest), ...this.#audit.slice(0, this.#oldest)];
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
    const n = this.#audit.length;
    // Newest first: the entry just before #oldest, going back round the ring.
    for (let k = n - 1; k >= 0 && out.length < query.limit; k--) {
      const e = this.#audit[(this.#oldest + k) % n]!;
      if (query.since !== undefined && e.at < query.since) break;
      if (query.host !== undefined && !auditMatchesHost(e, query.host)) continue;
      if (query.experiment !== undefined && e.experiment !== query.experiment) continue;
      out.push(e);
    }
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return DONE;
  }
}
