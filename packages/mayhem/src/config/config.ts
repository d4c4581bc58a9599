/**
 * Flags + env (`MAYHEM_*`) + an optional JSON file → one validated config. One table describes
 * every setting; the CLI flags, the env names, the zod schema and the help text all come from it.
 */
import { z } from 'zod';
import { experimentNameProblem } from '../core/experiment.js';
import { isHostname, parseHostTemplate } from '../core/hostname.js';
import type { ProbeSpec } from '../probes/spec.js';
import { probesSchema } from './probe-config.js';
import { redactSecrets } from '../core/redact.js';
import { NATS_URL_FORM, parseNatsUrls } from '../brokers/nats/url.js';
import { formatDuration, parseBytes, parseDuration, TIMER_MAX_MS } from './units.js';
import { readableFile, readConfigFile } from './config-file.js';
import { checkRails } from './rails-config.js';
import { checkEnvAndNames, checkHttpExposure } from './input-checks.js';
import type { LimitsConfig } from './settings-limits.js';
import { SETTINGS, type CommandName, type Setting, type SettingKey } from './settings.js';

export { formatDuration, parseBytes, parseDuration, TIMER_MAX_MS } from './units.js';
export { isLeashed, railsSettings } from './rails-config.js';
export { settingsFor } from './settings-for.js';
export { OTHER_MAYHEM_ENV } from './input-checks.js';
export { SETTINGS, type CommandName, type SettingKey } from './settings.js';

/** A problem with the user's settings: printed as one line, exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

// host:port, an IPv6 host in brackets.
const HOSTPORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const FORMATS = ['auto', 'json', 'pretty'] as const;
const IN_DOUBT = ['skip', 'restart'] as const;
const EXECUTORS = ['mock', 'command', 'http', 'docker'] as const;
const LEASH = ['auto', 'true', 'false'] as const;
const ON_LIMIT = ['delay', 'skip'] as const;
const PICK = ['round-robin', 'random'] as const;
const REPORT_FORMATS = ['md', 'html', 'json'] as const;
const FLEET_POLICY = ['check', 'adopt'] as const;

function allowed(s: Setting): string {
  const range = (lo?: number, hi?: number): string =>
    lo !== undefined && hi !== undefined
      ? ` from ${lo} to ${hi}`
      : lo !== undefined
        ? ` ≥ ${lo}`
        : hi !== undefined
          ? ` ≤ ${hi}`
          : '';
  switch (s.kind) {
    case 'int':
      return `a whole number${range(s.min, s.max)}`;
    case 'number':
      return `a number${range(s.min, s.max)}`;
    case 'duration':
      return `a duration like 250ms, 2s or 1m (a bare number is ms)${s.min !== undefined && s.min > 0 ? `, at least ${s.min}ms` : ''}${s.max !== undefined ? `${s.min !== undefined && s.min > 0 ? ' and' : ','} at most ${formatDuration(s.max)}` : ''}`;
    case 'bytes':
      return 'a size like 512MB or 1GiB (a bare number is bytes)';
    case 'bool':
      return 'true or false';
    case 'hostport':
      return 'host:port with a port from 1 to 65535, e.g. 127.0.0.1:8125';
    case 'listen':
      return 'host:port to listen on, port 0 to 65535 (0: any free port), e.g. 127.0.0.1:9464';
    case 'file':
      return 'the path of a readable file';
    case 'level':
      return LEVELS.join(', ');
    case 'format':
      return FORMATS.join(', ');
    case 'inDoubt':
      return IN_DOUBT.join(' or ');
    case 'executor':
      return EXECUTORS.join(', ');
    case 'leash':
      return LEASH.join(', ');
    case 'onLimit':
      return ON_LIMIT.join(' or ');
    case 'pick':
      return PICK.join(' or ');
    case 'reportFormat':
      return REPORT_FORMATS.join(', ');
    case 'fleetSettings':
      return FLEET_POLICY.join(' or ');
    case 'probes':
      return "probes like 'http:https://svc/health status=200'";
    case 'string':
      return 'a non-empty string';
  }
}

/** The zod type of one setting; raw values arrive as strings (flags, env) or JSON values (file). */
function schemaOf(s: Setting): z.ZodType {
  const msg = { error: `expected ${allowed(s)}` };
  const num = (int: boolean) => {
    let n = z.number(msg).refine(Number.isFinite, msg);
    if (int) n = n.refine(Number.isInteger, msg);
    if (s.min !== undefined) {
      const min = s.min;
      n = n.refine((v) => v >= min, msg);
    }
    if (s.max !== undefined) {
      const max = s.max;
      n = n.refine((v) => v <= max, msg);
    }
    return n;
  };
  switch (s.kind) {
    case 'int':
      return z
        .union(
          [
            z.number(),
            z
              .string()
              .regex(/^\s*-?\d+\s*$/, msg)
              .transform(Number),
          ],
          msg,
        )
        .pipe(num(true));
    case 'number':
      return z
        .union(
          [
            z.number(),
            z
              .string()
              .regex(/^\s*-?\d+(\.\d+)?\s*$/, msg)
              .transform(Number),
          ],
          msg,
        )
        .pipe(num(false));
    case 'duration':
    case 'bytes': {
      const min = s.min ?? 0;
      const max = s.max ?? TIMER_MAX_MS;
      const parseText = s.kind === 'bytes' ? parseBytes : parseDuration;
      return z.union([z.number(), z.string()], msg).transform((v, ctx) => {
        const ms = typeof v === 'number' ? v : parseText(v);
        if (ms === undefined || !Number.isFinite(ms) || ms < min || ms > max) {
          ctx.addIssue({ code: 'custom', message: msg.error });
          return z.NEVER;
        }
        return ms;
      });
    }
    case 'bool':
      return z
        .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'], msg)], msg)
        .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
    case 'listen':
      return z
        .string(msg)
        .regex(HOSTPORT, msg)
        .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, msg);
    case 'hostport':
      return z
        .string(msg)
        .regex(HOSTPORT, msg)
        .refine((v) => {
          const port = Number(v.slice(v.lastIndexOf(':') + 1));
          return port >= 1 && port <= 65535;
        }, msg);
    case 'file':
      return z.string(msg).min(1, msg).refine(readableFile, msg);
    case 'level':
      return z.enum(LEVELS, msg);
    case 'format':
      return z.enum(FORMATS, msg);
    case 'inDoubt':
      return z.enum(IN_DOUBT, msg);
    case 'executor':
      return z.enum(EXECUTORS, msg);
    case 'leash':
      return z.union([z.boolean().transform((b) => (b ? 'true' : 'false')), z.enum(LEASH, msg)], msg);
    case 'onLimit':
      return z.enum(ON_LIMIT, msg);
    case 'pick':
      return z.enum(PICK, msg);
    case 'reportFormat':
      return z.enum(REPORT_FORMATS, msg);
    case 'fleetSettings':
      return z.enum(FLEET_POLICY, msg);
    case 'probes':
      return probesSchema();
    case 'string':
      return z.string(msg).min(1, msg);
  }
}

/** Resolved settings: durations in ms, numbers as numbers. */
export interface Config extends LimitsConfig {
  broker: string;
  db: string;
  maxInFlight: number;
  extendEvery: number;
  ackDeadline: number;
  restartAttempts: number;
  saveAttempts: number;
  retryBackoff: number;
  nackDelay: number;
  maxDeliveries: number;
  publishRate: number;
  maxBacklog: number;
  rate: number;
  count: number | undefined;
  restartLatency: number;
  restartFailureRate: number;
  saveFailureRate: number;
  malformedEvery: number | undefined;
  seed: number | undefined;
  inDoubt: (typeof IN_DOUBT)[number];
  dryRun: boolean;
  grace: number;
  statsd: string | undefined;
  statusEvery: number;
  logLevel: (typeof LEVELS)[number];
  logFormat: (typeof FORMATS)[number];
  debug: boolean;
  slowCallbackMs: number | undefined;
  monitorTasksMs: number | undefined;
  stream: string;
  subject: string;
  durable: string;
  deadLetterSubject: string;
  deadLetterMaxAge: number;
  deadLetterMaxBytes: number;
  retention: number;
  deadLetterRetention: number;
  replicas: number;
  natsCreds: string | undefined;
  natsNkey: string | undefined;
  natsTokenFile: string | undefined;
  executor: (typeof EXECUTORS)[number];
  leashed: (typeof LEASH)[number];
  allowHosts: string | undefined;
  denyHosts: string | undefined;
  window: string | undefined;
  minIntervalPerHost: number;
  maxConcurrentRestarts: number;
  onLimit: (typeof ON_LIMIT)[number];
  instanceName: string | undefined;
  reason: string | undefined;
  since: number;
  host: string | undefined;
  limit: number;
  json: boolean;
  restartCommand: string | undefined;
  restartShell: boolean;
  restartEnv: string | undefined;
  restartTimeout: number;
  restartUrl: string | undefined;
  restartHeaders: string | undefined;
  httpMaxCalls: number;
  container: string;
  dockerHost: string | undefined;
  dockerStopTimeout: number;
  http: string | undefined;
  instances: string | undefined;
  pick: (typeof PICK)[number];
  probe: ProbeSpec[] | undefined;
  probeEvery: number;
  probeTolerance: number;
  probeTimeout: number;
  probeResume: boolean;
  experiment: string | undefined;
  format: (typeof REPORT_FORMATS)[number];
  out: string | undefined;
  hostTemplate: string;
  maxRestartPercent: number;
  blastWindow: number;
  inventory: string | undefined;
  fleetSettings: (typeof FLEET_POLICY)[number];
  previewRestartTime: number;
  requests: string | undefined;
  fromStream: boolean;
  ack: boolean;
  unset: string | undefined;
}

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
