/**
 * The fleet's settings and the blast radius in the SQLite file (no schema change: the settings are
 * `meta`'s 'settings' row, restart times are `host_restarts`, the hosts seen are the audit trail's).
 * One process owns the file, so a transaction is the whole fleet's lock; `mayhem settings` writes
 * the row from another process, as `mayhem pause` writes 'pause'.
 */
import type Database from 'better-sqlite3';
import { blastTake, type BlastTake } from '../../core/blast.js';
import type { StoredSettings } from '../../core/rails.js';

export interface SqliteFleetState {
  readSettings(): StoredSettings | undefined;
  /** The stored version only (read every half second). */
  settingsVersion(): number;
  writeSettings(next: Omit<StoredSettings, 'version'>, expected: number): StoredSettings;
  restartedSince(since: number): Map<string, number>;
  hostsSeenSince(since: number): Set<string>;
  takeBlast(host: string, at: number, since: number, cap: number): BlastTake;
}

export function sqliteFleetState(db: Database.Database): SqliteFleetState {
  const read = db.prepare("SELECT value FROM meta WHERE key = 'settings'").pluck();
  const version = db.prepare("SELECT json_extract(value, '$.version') FROM meta WHERE key = 'settings'").pluck();
  const write = db.prepare(
    "INSERT INTO meta (key, value) VALUES ('settings', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  );
  const restarted = db.prepare('SELECT host, at FROM host_restarts WHERE at >= ?');
  const seen = db.prepare("SELECT DISTINCT host FROM audit WHERE at >= ? AND host <> '*'").pluck();
  const stamp = db.prepare(
    'INSERT INTO host_restarts (host, at) VALUES (?, ?) ON CONFLICT (host) DO UPDATE SET at = max(at, excluded.at)',
  );
  const readSettings = (): StoredSettings | undefined => {
    const text = read.get() as string | undefined;
    return text === undefined ? undefined : (JSON.parse(text) as StoredSettings);
  };
  const restartedSince = (since: number): Map<string, number> =>
    new Map((restarted.all(since) as { host: string; at: number }[]).map((r) => [r.host, r.at]));
  const writeSettings = db.transaction((next: Omit<StoredSettings, 'version'>, expected: number) => {
    const now = readSettings();
    if ((now?.version ?? 0) !== expected) return now!;
    const stored: StoredSettings = { ...next, version: expected + 1 };
    write.run(JSON.stringify(stored));
    return stored;
  });
  const takeBlast = db.transaction((host: string, at: number, since: number, cap: number) => {
    const take = blastTake(restartedSince(since), host, cap);
    if (take.ok) stamp.run(host, at);
    return take;
  });
  return {
    readSettings,
    settingsVersion: () => Number((version.get() as number | null | undefined) ?? 0),
    writeSettings: (next, expected) => writeSettings.immediate(next, expected),
    restartedSince,
    hostsSeenSince: (since) => new Set(seen.all(since) as string[]),
    takeBlast: (host, at, since, cap) => takeBlast.immediate(host, at, since, cap),
  };
}
