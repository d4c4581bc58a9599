/**
 * Flags + env (`MAYHEM_*`) + an optional JSON file → one validated config. One table describes
 * every setting; the CLI flags, the env names, the zod schema and the help text all come from it.
 */
import { experimentNameProblem } from '../core/experiment.js';
import { ConfigError } from '../core/errors.js';
import { isHostname, parseHostTemplate } from '../core/hostname.js';
import { redactSecrets } from '../core/redact.js';
import { NATS_URL_FORM, parseNatsUrls } from '../brokers/nats/url.js';
import { readConfigFile } from './config-file.js';
import type { KindValue } from './kinds.js';
import { checkRails } from './rails-config.js';
import { checkEnvAndNames, checkHttpExposure } from './input-checks.js';
import { allowed, schemaOf } from './schema.js';
import { SETTINGS, type CommandName, type Setting, type SettingKey } from './settings.js';

export { formatDuration, parseBytes, parseDuration, TIMER_MAX_MS } from './units.js';
export { isLeashed, railsSettings } from './rails-config.js';
export { settingsFor } from './settings-for.js';
export { OTHER_MAYHEM_ENV } from './input-checks.js';
export { SETTINGS, type CommandName, type SettingKey } from './settings.js';

export { ConfigError } from '../core/errors.js';

/**
 * Resolved settings, derived from the table: one field per entry, of its kind's value type
 * (`KindValue`: durations in ms, sizes in bytes), `| undefined` where the entry has no default.
 */
export type Config = { -readonly [K in SettingKey]: ValueOf<(typeof SETTINGS)[K]> };
type ValueOf<S extends Setting> = KindValue[S['kind']] | (S extends { readonly default: unknown } ? never : undefined);

// Where each value of a resolved config came from (`--db`, `MAYHEM_DB`, `"db" in f.json`, `default of --db`).
const ORIGINS = new WeakMap<Config, Readonly<Record<string, string>>>();

/** Whether `key` was given (flag, environment or config file) rather than left at its default. */
export function isGiven(config: Config, key: SettingKey): boolean {
  const origin = ORIGINS.get(config)?.[key];
  return origin !== undefined && !origin.startsWith('default of ');
}

/** Whether `key` was given on the command line. */
export function isFlag(config: Config, key: SettingKey): boolean {
  return ORIGINS.get(config)?.[key]?.startsWith('--') === true;
}

/** One value as the settings table parses it (flag text, or a config-file JSON value); `origin` names it in the error. */
export function parseSetting(key: SettingKey, raw: unknown, origin: string): unknown {
  const s: Setting = SETTINGS[key];
  if (raw === null) throw new ConfigError(`invalid ${origin} null: expected ${allowed(s)}`);
  const parsed = schemaOf(s).safeParse(raw);
  if (!parsed.success)
    throw new ConfigError(
      `invalid ${origin} ${quote(raw)}: ${parsed.error.issues[0]?.message ?? `expected ${allowed(s)}`}`,
    );
  return parsed.data;
}

/** Every setting at its default, as `resolveConfig` gives it when nothing is given (no checks across settings). */
export function defaultConfig(): Config {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(SETTINGS) as [SettingKey, Setting][])
    out[key] = s.default === undefined ? undefined : parseSetting(key, s.default, `default of --${s.flag}`);
  return out as Config;
}

/** `max-in-flight` → `MAYHEM_MAX_IN_FLIGHT`. */
export function envName(flag: string): string {
  return `MAYHEM_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export interface Sources {
  /** Parsed flag values keyed by setting key (commander's camelCase matches the table keys). */
  readonly flags: Partial<Record<string, unknown>>;
  readonly env: NodeJS.ProcessEnv;
  /** Path of a JSON config file, from `--config` or `MAYHEM_CONFIG`. */
  readonly file?: string | undefined;
}

/** Merge defaults < file < env < flags, validate each value, and name the culprit on error. */
export function resolveConfig(sources: Sources, command: CommandName): Config {
  const fileValues = sources.file ? readConfigFile(sources.file) : {};
  const fileName = sources.file ?? 'the config file';
  const out: Record<string, unknown> = {};
  // Where each value came from, for errors: `--db`, `MAYHEM_DB` or `"db" in ./mayhem.json`.
  const origins: Record<string, string> = {};
  for (const [key, s] of Object.entries(SETTINGS) as [SettingKey, Setting][]) {
    let raw: unknown;
    let origin: string;
    const fileKey = Object.hasOwn(fileValues, key) ? key : Object.hasOwn(fileValues, s.flag) ? s.flag : undefined;
    if (sources.flags[key] !== undefined) {
      raw = sources.flags[key];
      origin = `--${s.flag}`;
    } else if (sources.env[envName(s.flag)] !== undefined) {
      raw = sources.env[envName(s.flag)];
      origin = envName(s.flag);
    } else if (fileKey !== undefined) {
      raw = fileValues[fileKey];
      origin = `"${fileKey}" in ${fileName}`;
      // null is a bad value, not "unset": it must not fall through to the default unnoticed.
      if (raw === null) throw new ConfigError(`invalid ${origin} null: expected ${allowed(s)}`);
    } else {
      raw = s.default;
      origin = `default of --${s.flag}`;
    }
    origins[key] = origin;
    out[key] = raw === undefined ? undefined : parseSetting(key, raw, origin);
  }
  const config = out as unknown as Config;
  ORIGINS.set(config, origins);
  const where = (key: SettingKey): string => origins[key] ?? `--${SETTINGS[key].flag}`;
  checkEnvAndNames(sources.env, out, where);
  if (command === 'run') crossCheck(config, where);
  if (command === 'plan' || command === 'settings') checkRails(config, where);
  if (command === 'settings') checkControlDb(config, where, 'the fleet settings live in');
  if (config.experiment !== undefined) {
    const problem = experimentNameProblem(config.experiment);
    if (problem !== undefined)
      throw new ConfigError(`invalid ${where('experiment')} ${quote(config.experiment)}: ${problem}`);
  }
  if (command === 'report' && config.experiment === undefined)
    throw new ConfigError('report needs --experiment NAME (the name given to mayhem run --experiment)');
  if (command === 'report') checkControlDb(config, where);
  if (command === 'pause' || command === 'resume' || command === 'audit') checkControlDb(config, where);
  checkBroker(config.broker, where('broker'));
  if (config.instances !== undefined && !config.instances.split(',').every((n) => isHostname(n.trim()))) {
    throw new ConfigError(
      `invalid --instances ${JSON.stringify(config.instances)}: expected instance names (letters, digits, '-' and dots) separated by commas`,
    );
  }
  return config;
}

/** A value as echoed in an error: JSON, one line, credentials redacted. */
export function quote(raw: unknown): string {
  return redactSecrets(JSON.stringify(raw) ?? String(raw));
}

function crossCheck(c: Config, where: (key: SettingKey) => string): void {
  if (c.extendEvery >= c.ackDeadline) {
    throw new ConfigError(
      `${where('extendEvery')} (${c.extendEvery}ms) must be shorter than ${where('ackDeadline')} (${c.ackDeadline}ms), or leases expire while work is in flight`,
    );
  }
  const scheme = /^[a-z]+:/.exec(c.db)?.[0];
  if (!scheme || !['sqlite:', 'postgres:', 'postgresql:', 'memory:'].includes(scheme)) {
    throw new ConfigError(
      `invalid ${where('db')} ${quote(c.db)}: expected sqlite:<path>, postgres://user@host:port/db or memory:`,
    );
  }
  if (
    scheme === 'sqlite:' &&
    c.db
      .slice('sqlite:'.length)
      .replace(/^\/\/(?=\/)/, '')
      .trim() === ''
  ) {
    throw new ConfigError(
      `invalid ${where('db')} ${quote(c.db)}: sqlite: needs a file path, e.g. sqlite:./mayhem.db (memory: keeps nothing)`,
    );
  }
  try {
    parseHostTemplate(c.hostTemplate);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  checkRails(c, where);
  checkHttpExposure(c, where);
  if (scheme === 'postgres:' || scheme === 'postgresql:') {
    try {
      new URL(c.db);
    } catch {
      throw new ConfigError(
        `invalid ${where('db')} ${quote(c.db)}: not a valid URL (expected postgres://user@host:port/db; percent-encode special characters in the password, or use PGPASSWORD)`,
      );
    }
  }
}

/** The kill switch and the audit trail live in a database other processes can open: not memory:. */
function checkControlDb(c: Config, where: (key: SettingKey) => string, who = 'pause, resume and audit need'): void {
  if (/^(sqlite|postgres|postgresql):/.test(c.db) && c.db.slice(c.db.indexOf(':') + 1).trim() !== '') return;
  throw new ConfigError(
    `invalid ${where('db')} ${quote(c.db)}: ${who} the service's database: sqlite:<path> or postgres://user@host:port/db`,
  );
}

/** `memory`, or a comma list of nats://host[:port] URLs with a port from 1 to 65535. */
function checkBroker(broker: string, origin: string): void {
  if (broker === 'memory' || parseNatsUrls(broker) !== undefined) return;
  throw new ConfigError(`invalid ${origin} ${quote(broker)}: expected memory or ${NATS_URL_FORM}`);
}

export function describeSetting(s: Setting): string {
  return `${s.help} (${allowed(s)}${s.default !== undefined ? `; default ${String(s.default)}` : ''}; env ${envName(s.flag)})`;
}
