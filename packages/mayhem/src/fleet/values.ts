/**
 * The fleet's settings as plain data: what a config holds for the fleet's keys, as JSON that goes
 * into the database (durations in ms, probes as their config-file objects, unset as null), read
 * back through the same checks as a flag or a config file (a hand-edited row is refused like a bad
 * flag), and shown to a person.
 */
import { ConfigError, formatDuration, parseSetting, SETTINGS, type Config } from '../config/config.js';
import type { StoredSettings } from '../core/rails.js';
import { describeProbe, probeToObject, type ProbeSpec } from '../probes/spec.js';
import { FLEET_KEYS, type FleetKey } from './keys.js';

export type FleetValues = Readonly<Record<FleetKey, unknown>>;

/** The fleet's keys of `config`, as stored. */
export function fleetValues(config: Config): FleetValues {
  const out = {} as Record<FleetKey, unknown>;
  for (const key of FLEET_KEYS) out[key] = storedValue(key, config[key]);
  // --dry-run is the leash's older name: stored as the leash.
  if (config.dryRun) out.leashed = 'true';
  return out;
}

/** One config value as stored. */
export function storedValue(key: FleetKey, value: unknown): unknown {
  if (value === undefined || value === null) return null;
  return key === 'probe' ? (value as ProbeSpec[]).map(probeToObject) : value;
}

/** Every key at its default, as stored. */
export function defaultValues(): Record<FleetKey, unknown> {
  const out = {} as Record<FleetKey, unknown>;
  for (const key of FLEET_KEYS) out[key] = defaultValue(key);
  return out;
}

/**
 * Stored values → the config's fields, each checked as a flag is (`where`: e.g. "the fleet's settings
 * (version 3)"). Unset keys are unset; keys this mayhem does not know are refused.
 */
export function configOf(values: Readonly<Record<string, unknown>>, where: string): Pick<Config, FleetKey> {
  const out = {} as Record<FleetKey, unknown>;
  const known = new Set<string>(FLEET_KEYS);
  for (const k of Object.keys(values))
    if (!known.has(k)) throw new ConfigError(`${where}: ${JSON.stringify(k)} is not a fleet setting`);
  for (const key of FLEET_KEYS) {
    const raw = values[key];
    out[key] =
      raw === null || raw === undefined ? undefined : parseSetting(key, raw, `--${SETTINGS[key].flag} in ${where}`);
  }
  // Unset means the table's default, as for a flag not given.
  for (const key of FLEET_KEYS) if (out[key] === undefined) out[key] = defaultValue(key) ?? undefined;
  return out as Pick<Config, FleetKey>;
}

/** `config` with the fleet's stored values in place of its own (`keepLeash`: a leashed preview keeps its leash). */
export function withFleet(config: Config, stored: StoredSettings, keepLeash: boolean): Config {
  const fleet = configOf(stored.values, describeStored(stored));
  const out: Config = { ...config, ...fleet };
  if (keepLeash) {
    out.leashed = config.dryRun ? 'true' : config.leashed;
    out.dryRun = config.dryRun;
  } else out.dryRun = false;
  return out;
}

/** A key's default as stored (null when it has none). */
export function defaultValue(key: FleetKey): unknown {
  const d = (SETTINGS[key] as { default?: unknown }).default;
  return d === undefined ? null : parseSetting(key, d, `the default of --${SETTINGS[key].flag}`);
}

/** Whether two stored values are the same setting. */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** A stored value as a person reads it: `(none)`, `10m`, `"db-*"`, the probes described. */
export function showValue(key: FleetKey, value: unknown): string {
  if (value === null || value === undefined) return '(none)';
  const kind = SETTINGS[key].kind;
  if (kind === 'duration' && typeof value === 'number') return formatDuration(value);
  if (key === 'probe' && Array.isArray(value)) {
    try {
      const specs = parseSetting('probe', value, 'probe') as ProbeSpec[];
      return specs.map((p) => `${p.name}: ${describeProbe(p)}`).join('; ');
    } catch {
      return JSON.stringify(value);
    }
  }
  return typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
}

/** `the fleet's settings (version 3, set by ops@vm at 2026-12-08T10:00:00.000Z)`. */
export function describeStored(stored: StoredSettings): string {
  return `the fleet's settings (version ${stored.version}, set by ${stored.by} at ${new Date(stored.at).toISOString()})`;
}
