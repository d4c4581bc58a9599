/**
 * The rails' fleet state, as a contract a storage adapter keeps (and a preview shadows): the kill
 * switch, the fleet's stored settings, per-host restart times, restart slots, the blast radius and
 * the audit trail, with the shapes they are read and written in. core/rails.ts decides with it.
 */
import type { BlastTake } from './blast.js';

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
  // Blast radius (--max-restart-percent); a leashed member of a shared-broker fleet takes nothing.
  | 'skipped-blast-radius'
  | 'deferred-blast-radius'
  | 'deferred-leashed'
  // The kill switch, fleet-wide (host '*'):
  | 'paused'
  | 'resumed'
  // Stop conditions (probes/runner.ts), fleet-wide (host '*'): a probe failed --probe-tolerance
  // checks in a row (the fleet is paused), or holds again after that.
  | 'probe-failed'
  | 'probe-recovered'
  // The fleet's settings were stored or replaced (fleet-wide, host '*'): the reason lists the changes.
  | 'settings-changed';

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
 * The fleet's settings as stored (the leash, the rails, the probes): plain data under config-file
 * keys, validated again whenever read (src/fleet/values.ts). `version` grows by one per change.
 */
export interface StoredSettings {
  readonly version: number;
  /** Who stored them (an instance, or `user@host` of `mayhem settings`). */
  readonly by: string;
  /** ms since epoch. */
  readonly at: number;
  readonly values: Readonly<Record<string, unknown>>;
  /** `--inventory` as read when the settings were stored, so every instance counts the same hosts. */
  readonly inventory?: { readonly source: string; readonly hosts: readonly string[] } | undefined;
}

/**
 * Fleet-wide state the rails read and write, kept by the storage every instance shares (a file for
 * one instance, a database for a fleet).
 */
export interface FleetControl {
  /** The kill switch as last read: kept fresh by the adapter (read every `refreshMs`, ≤ 500 ms). */
  pauseState(): PauseState | undefined;
  /** The fleet's settings as last read (kept fresh like the kill switch); undefined: none stored yet. */
  settingsState(): StoredSettings | undefined;
  /** Read the kill switch and the settings from the database now. */
  refresh(): Promise<void>;
  /**
   * Store settings as version `expected + 1` if the stored version is still `expected` (0: none
   * stored yet). Resolves with what is stored afterwards: these, or the ones another writer stored first.
   */
  writeSettings(next: Omit<StoredSettings, 'version'>, expected: number): Promise<StoredSettings>;
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
  /**
   * The blast radius, fleet-wide and atomic (one taker at a time across the fleet): apply
   * {@link blastTake} to the hosts restarted since `since` and, when it lets `host` go, stamp its
   * restart time `at` in the same step.
   */
  takeBlast(host: string, at: number, since: number, cap: number): Promise<BlastTake>;
  /** Each host restarted since `since` (ms), fleet-wide, with its latest restart time. */
  restartedSince(since: number): Promise<Map<string, number>>;
  /** The distinct hosts the audit trail holds a decision about since `since` (rows not yet written included). */
  hostsSeenSince(since: number): Promise<Set<string>>;
  /** Append to the audit trail. Batched; a failed write is retried by the adapter, never thrown here. */
  audit(entry: AuditEntry): void;
  readAudit(query: AuditQuery): Promise<AuditEntry[]>;
  /** Flush the audit trail and stop refreshing. */
  close(): Promise<void>;
}
