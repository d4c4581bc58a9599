/**
 * The rails' fleet state kept in this process: the kill switch, the fleet's settings, when each host
 * was last restarted, the restart slots and the audit trail. Right for `memory:` storage (tests,
 * benchmarks) and the in-process part of the others; nothing here outlives the process.
 */
import { blastTake, type BlastTake } from '../../core/blast.js';
import type { AuditEntry, AuditQuery, FleetControl, PauseState, StoredSettings } from '../../core/rails.js';
import { DONE } from '../../core/settled.js';
import { auditMatchesHost } from '../audit-row.js';

export class LocalFleetControl implements FleetControl {
  #pause: PauseState | undefined;
  #settings: StoredSettings | undefined;
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

  settingsState(): StoredSettings | undefined {
    return this.#settings;
  }

  refresh(): Promise<void> {
    return DONE;
  }

  writeSettings(next: Omit<StoredSettings, 'version'>, expected: number): Promise<StoredSettings> {
    const version = this.#settings?.version ?? 0;
    if (version === expected) this.#settings = { ...next, version: version + 1 };
    return Promise.resolve(this.#settings!);
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

  async takeBlast(host: string, at: number, since: number, cap: number): Promise<BlastTake> {
    const take = blastTake(await this.restartedSince(since), host, cap);
    if (take.ok) await this.stampRestart(host, at);
    return take;
  }

  restartedSince(since: number): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const [host, at] of this.#lastRestart) if (at >= since) out.set(host, at);
    return Promise.resolve(out);
  }

  hostsSeenSince(since: number): Promise<Set<string>> {
    const out = new Set<string>();
    for (const e of this.#audit) if (e.at >= since && e.host !== '*') out.add(e.host);
    return Promise.resolve(out);
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
