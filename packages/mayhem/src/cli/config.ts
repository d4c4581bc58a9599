/**
 * Flags + env (`MAYHEM_*`) + an optional JSON file → one validated config. One table describes
 * every setting; the CLI flags, the env names, the zod schema and the help text all come from it.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { errorText } from '../core/errors.js';
import { HostFilter, PolicyError, RestartWindow } from '../core/policy.js';
import type { RailsSettings } from '../core/rails.js';
import { redactSecrets } from '../core/redact.js';
import { NATS_URL_FORM, parseNatsUrls } from '../brokers/nats/url.js';

/** A problem with the user's settings: printed as one line, exit code 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250ms`, `2s`, `1.5m`, `1h`, `30d`; a bare number is milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1));
}

/** The largest unit that writes `ms` exactly: 3600000 → `1h`, 1500 → `1500ms`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };

/** `1073741824`, `512MB`, `1GiB` → bytes. */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (BYTE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1));
}

/**
 * Node's timers hold at most 2^31-1 ms (~24.8 days); a longer delay silently becomes 1 ms. Every
 * duration that ends up in a timer has a maximum well below that.
 */
export const TIMER_MAX_MS = 2 ** 31 - 1;

type Kind = 'int' | 'number' | 'duration' | 'bytes' | 'bool' | 'string' | 'hostport' | 'listen' | 'level' | 'format' | 'file' | 'inDoubt' | 'executor' | 'leash' | 'onLimit';

interface Setting {
  readonly kind: Kind;
  readonly flag: string;
  readonly help: string;
  readonly default?: string | number | boolean;
  readonly min?: number;
  readonly max?: number;
  /** Which commands take it. */
  readonly commands: readonly CommandName[];
}

// host:port, an IPv6 host in brackets.
const HOSTPORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;

/** The commands that take settings. */
export type CommandName = 'run' | 'publish' | 'pause' | 'resume' | 'audit';

const BOTH = ['run', 'publish'] as const;
// The kill switch and the audit trail: commands that only open the database.
const CONTROL = ['pause', 'resume', 'audit'] as const;
const RUN = ['run'] as const;

/** Every setting. Keys are the config-file names; flags and env names derive from `flag`. */
export const SETTINGS = {
  broker: { kind: 'string', flag: 'broker', help: 'memory (embedded) or nats://host:port[,nats://host:port...]', default: 'memory', commands: BOTH },
  db: { kind: 'string', flag: 'db', help: 'sqlite:<path>, postgres://..., or memory: (nothing kept)', default: 'sqlite:./mayhem.db', commands: ['run', ...CONTROL] },
  maxInFlight: { kind: 'int', flag: 'max-in-flight', help: 'messages handled at once; pulling waits when full', default: 1000, min: 1, max: 1_000_000, commands: RUN },
  extendEvery: { kind: 'duration', flag: 'extend-every', help: 'extend the ack deadline this often while a message is in flight', default: '2s', min: 10, max: 3_600_000, commands: RUN },
  ackDeadline: { kind: 'duration', flag: 'ack-deadline', help: 'lease length (memory broker) / ack wait (NATS)', default: '10s', min: 50, max: 43_200_000, commands: RUN },
  restartAttempts: { kind: 'int', flag: 'restart-attempts', help: 'restart tries per delivery (exponential backoff with jitter)', default: 3, min: 1, max: 100, commands: RUN },
  saveAttempts: { kind: 'int', flag: 'save-attempts', help: 'save tries per delivery', default: 3, min: 1, max: 100, commands: RUN },
  retryBackoff: { kind: 'duration', flag: 'retry-backoff', help: 'base delay between tries (doubles each try, capped at 20x)', default: '100ms', min: 0, max: 60_000, commands: RUN },
  nackDelay: { kind: 'duration', flag: 'nack-delay', help: 'base redelivery delay of a nacked message (doubles per delivery, capped at 60s)', default: '1s', min: 0, max: 60_000, commands: RUN },
  maxDeliveries: { kind: 'int', flag: 'max-deliveries', help: 'dead-letter a message that failed this many deliveries', default: 5, min: 1, max: 1000, commands: RUN },
  publishRate: { kind: 'number', flag: 'publish-rate', help: 'simulated publisher on the memory broker, messages/s (0 = as fast as possible)', default: 2, min: 0, max: 1_000_000, commands: RUN },
  maxBacklog: { kind: 'int', flag: 'max-backlog', help: 'memory broker: messages it holds at most (ready, leased or waiting to be redelivered); the simulated publisher waits while it is full', default: 10_000, min: 1, max: 10_000_000, commands: RUN },
  rate: { kind: 'number', flag: 'rate', help: 'messages/s (0 = as fast as possible)', default: 0, min: 0, max: 1_000_000, commands: ['publish'] },
  count: { kind: 'int', flag: 'count', help: 'stop after this many messages settled (run) / published (publish); default unlimited', min: 1, max: Number.MAX_SAFE_INTEGER, commands: BOTH },
  restartLatency: { kind: 'duration', flag: 'restart-latency', help: 'mock restart latency, uniform in [0, this]', default: '1s', min: 0, max: 3_600_000, commands: RUN },
  restartFailureRate: { kind: 'number', flag: 'restart-failure-rate', help: 'probability a mock restart fails', default: 0.25, min: 0, max: 1, commands: RUN },
  saveFailureRate: { kind: 'number', flag: 'save-failure-rate', help: 'probability a save fails (fault injection)', default: 0, min: 0, max: 1, commands: RUN },
  malformedEvery: { kind: 'int', flag: 'malformed-every', help: 'fault injection: the simulated publisher makes every Nth message malformed (default never)', min: 1, max: 1_000_000_000, commands: RUN },
  seed: { kind: 'int', flag: 'seed', help: 'seed the random choices (reproducible runs)', min: 0, max: 4_294_967_295, commands: BOTH },
  inDoubt: { kind: 'inDoubt', flag: 'in-doubt', help: 'a restart found in doubt (its instance died mid-restart): skip it (at most once) or restart it again (at least once)', default: 'skip', commands: RUN },
  dryRun: { kind: 'bool', flag: 'dry-run', help: 'the same as --leashed true (its older name)', default: false, commands: RUN },
  leashed: { kind: 'leash', flag: 'leashed', help: 'log and record what would be restarted, restart nothing; auto = leashed unless --executor mock', default: 'auto', commands: RUN },
  allowHosts: { kind: 'string', flag: 'allow-hosts', help: 'restart only hosts matching one of these globs, comma-separated (e.g. web-*.example.net); default every host', commands: RUN },
  denyHosts: { kind: 'string', flag: 'deny-hosts', help: 'never restart hosts matching one of these globs, comma-separated; deny wins over allow', commands: RUN },
  window: { kind: 'string', flag: 'window', help: "restart only inside this weekly window, e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin' (spans joined with ;); outside it messages wait", commands: RUN },
  minIntervalPerHost: { kind: 'duration', flag: 'min-interval-per-host', help: 'never restart one host twice within this, fleet-wide through the database (0 = no minimum)', default: '0', min: 0, max: 7 * 86_400_000, commands: RUN },
  maxConcurrentRestarts: { kind: 'int', flag: 'max-concurrent-restarts', help: 'restarts running at once at most, fleet-wide with PostgreSQL (0 = no limit)', default: 0, min: 0, max: 100_000, commands: RUN },
  onLimit: { kind: 'onLimit', flag: 'on-limit', help: 'a restart the interval or the concurrency limit holds back: delay (nack until it may run) or skip (ack it as skipped)', default: 'delay', commands: RUN },
  instanceName: { kind: 'string', flag: 'instance-name', help: "this instance's name in the audit trail and on `pause` (default host:pid)", commands: ['run', 'pause', 'resume'] },
  reason: { kind: 'string', flag: 'reason', help: 'why restarts are paused (shown by every instance and in the audit trail)', commands: ['pause'] },
  since: { kind: 'duration', flag: 'since', help: 'audit entries from this long ago on', default: '1h', min: 0, max: 3650 * 86_400_000, commands: ['audit'] },
  host: { kind: 'string', flag: 'host', help: 'audit entries of this host only', commands: ['audit'] },
  limit: { kind: 'int', flag: 'limit', help: 'audit entries at most (newest first)', default: 100, min: 1, max: 1_000_000, commands: ['audit'] },
  json: { kind: 'bool', flag: 'json', help: 'audit entries as JSON lines instead of a table', default: false, commands: ['audit'] },
  grace: { kind: 'duration', flag: 'grace', help: 'on shutdown, time in-flight messages get to finish before they are cancelled and nacked', default: '5s', min: 0, max: 3_600_000, commands: RUN },
  statsd: { kind: 'hostport', flag: 'statsd', help: 'send metrics to StatsD at host:port', commands: RUN },
  statusEvery: { kind: 'duration', flag: 'status-every', help: 'status line interval on a terminal (0 = off)', default: '5s', min: 0, max: 86_400_000, commands: RUN },
  logLevel: { kind: 'level', flag: 'log-level', help: 'trace, debug, info, warn, error, fatal or silent', default: 'info', commands: BOTH },
  logFormat: { kind: 'format', flag: 'log-format', help: 'auto (pretty on a terminal, JSON otherwise), json or pretty', default: 'auto', commands: BOTH },
  debug: { kind: 'bool', flag: 'debug', help: 'loopwatch debug mode: task tracking, unhandled errors with their origin, slow callbacks', default: false, commands: RUN },
  slowCallbackMs: { kind: 'number', flag: 'slow-callback-ms', help: 'report loop turns longer than this (loopwatch)', min: 1, max: 3_600_000, commands: RUN },
  monitorTasksMs: { kind: 'duration', flag: 'monitor-tasks-ms', help: 'print a task dump this often (loopwatch)', min: 10, max: 86_400_000, commands: RUN },
  stream: { kind: 'string', flag: 'stream', help: 'NATS stream name', default: 'MAYHEM', commands: BOTH },
  subject: { kind: 'string', flag: 'subject', help: 'NATS subject of restart requests', default: 'mayhem.restart', commands: BOTH },
  durable: { kind: 'string', flag: 'durable', help: 'NATS durable consumer shared by all instances', default: 'mayhem', commands: RUN },
  deadLetterSubject: { kind: 'string', flag: 'dead-letter-subject', help: 'NATS subject dead letters are republished to (kept by the stream <stream>_DEAD)', default: 'mayhem.dead', commands: RUN },
  deadLetterMaxAge: { kind: 'duration', flag: 'dead-letter-max-age', help: 'NATS: dead letters older than this are dropped from <stream>_DEAD (0 = kept forever)', default: '30d', min: 0, max: 3650 * 86_400_000, commands: RUN },
  deadLetterMaxBytes: { kind: 'bytes', flag: 'dead-letter-max-bytes', help: 'NATS: <stream>_DEAD holds at most this much, dropping the oldest (0 = no limit)', default: '1GiB', min: 0, max: 2 ** 50, commands: RUN },
  retention: { kind: 'duration', flag: 'retention', help: 'delete acked message records older than this, in small batches off the hot path (0 = keep everything)', default: '7d', min: 0, max: 3650 * 86_400_000, commands: RUN },
  deadLetterRetention: { kind: 'duration', flag: 'dead-letter-retention', help: 'delete dead letters (and dead-lettered records) older than this (0 = keep everything)', default: '30d', min: 0, max: 3650 * 86_400_000, commands: RUN },
  replicas: { kind: 'int', flag: 'replicas', help: 'NATS stream replicas (3 on a 3-node cluster)', default: 1, min: 1, max: 5, commands: BOTH },
  natsCreds: { kind: 'file', flag: 'nats-creds', help: 'NATS credentials file (JWT + nkey seed, as nsc writes it)', commands: BOTH },
  natsNkey: { kind: 'file', flag: 'nats-nkey', help: 'file holding a NATS nkey seed (SU...)', commands: BOTH },
  natsTokenFile: { kind: 'file', flag: 'nats-token-file', help: 'file holding a NATS auth token', commands: BOTH },
  executor: { kind: 'executor', flag: 'executor', help: "what restarts a host: mock (the article's; restarts nothing), command, http or docker", default: 'mock', commands: RUN },
  restartCommand: { kind: 'string', flag: 'restart-command', help: "--executor command: program and arguments per restart, e.g. 'ssh {host} sudo systemctl reboot' ({host}, {instance} as whole arguments; no shell)", commands: RUN },
  restartShell: { kind: 'bool', flag: 'restart-shell', help: '--executor command: run --restart-command with /bin/sh -c; fields only as env vars MAYHEM_HOST, MAYHEM_INSTANCE, MAYHEM_MESSAGE_ID', default: false, commands: RUN },
  restartTimeout: { kind: 'duration', flag: 'restart-timeout', help: 'command, http, docker: longest one restart may take (a command is then killed)', default: '30s', min: 100, max: 3_600_000, commands: RUN },
  restartUrl: { kind: 'string', flag: 'restart-url', help: '--executor http: webhook to POST to, e.g. https://ops.example/restart/{host} (fields URL-encoded)', commands: RUN },
  restartHeaders: { kind: 'file', flag: 'restart-headers', help: '--executor http: file of request headers, one "Name: value" per line (values never logged)', commands: RUN },
  container: { kind: 'string', flag: 'container', help: '--executor docker: container name template', default: '{instance}', commands: RUN },
  dockerHost: { kind: 'string', flag: 'docker-host', help: '--executor docker: unix:///path or tcp://host:port (default: DOCKER_HOST, else unix:///var/run/docker.sock)', commands: RUN },
  dockerStopTimeout: { kind: 'duration', flag: 'docker-stop-timeout', help: "--executor docker: how long Docker waits for a container to stop before it kills it (the API's t)", default: '10s', min: 0, max: 3_600_000, commands: RUN },
  http: { kind: 'listen', flag: 'http', help: 'serve /metrics (Prometheus), /healthz and /readyz at host:port, e.g. 127.0.0.1:9464 (port 0: any free port, logged)', commands: RUN },
  instances: { kind: 'string', flag: 'instances', help: 'simulated publisher: pick instance names from this comma-separated list instead of inventing cattle-xxxx', commands: BOTH },
} as const satisfies Record<string, Setting>;

export type SettingKey = keyof typeof SETTINGS;

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
const FORMATS = ['auto', 'json', 'pretty'] as const;
const IN_DOUBT = ['skip', 'restart'] as const;
const EXECUTORS = ['mock', 'command', 'http', 'docker'] as const;
const LEASH = ['auto', 'true', 'false'] as const;
const ON_LIMIT = ['delay', 'skip'] as const;

function allowed(s: Setting): string {
  const range = (lo?: number, hi?: number): string =>
    lo !== undefined && hi !== undefined ? ` from ${lo} to ${hi}` : lo !== undefined ? ` ≥ ${lo}` : hi !== undefined ? ` ≤ ${hi}` : '';
  switch (s.kind) {
    case 'int': return `a whole number${range(s.min, s.max)}`;
    case 'number': return `a number${range(s.min, s.max)}`;
    case 'duration': return `a duration like 250ms, 2s or 1m (a bare number is ms)${s.min !== undefined && s.min > 0 ? `, at least ${s.min}ms` : ''}${s.max !== undefined ? `${s.min !== undefined && s.min > 0 ? ' and' : ','} at most ${formatDuration(s.max)}` : ''}`;
    case 'bytes': return 'a size like 512MB or 1GiB (a bare number is bytes)';
    case 'bool': return 'true or false';
    case 'hostport': return 'host:port with a port from 1 to 65535, e.g. 127.0.0.1:8125';
    case 'listen': return 'host:port to listen on, port 0 to 65535 (0: any free port), e.g. 127.0.0.1:9464';
    case 'file': return 'the path of a readable file';
    case 'level': return LEVELS.join(', ');
    case 'format': return FORMATS.join(', ');
    case 'inDoubt': return IN_DOUBT.join(' or ');
    case 'executor': return EXECUTORS.join(', ');
    case 'leash': return LEASH.join(', ');
    case 'onLimit': return ON_LIMIT.join(' or ');
    case 'string': return 'a non-empty string';
  }
}

/** The zod type of one setting; raw values arrive as strings (flags, env) or JSON values (file). */
function schemaOf(s: Setting): z.ZodType {
  const msg = { error: `expected ${allowed(s)}` };
  const num = (int: boolean) => {
    let n = z.number(msg).refine(Number.isFinite, msg);
    if (int) n = n.refine(Number.isInteger, msg);
    if (s.min !== undefined) { const min = s.min; n = n.refine((v) => v >= min, msg); }
    if (s.max !== undefined) { const max = s.max; n = n.refine((v) => v <= max, msg); }
    return n;
  };
  switch (s.kind) {
    case 'int': return z.union([z.number(), z.string().regex(/^\s*-?\d+\s*$/, msg).transform(Number)], msg).pipe(num(true));
    case 'number': return z.union([z.number(), z.string().regex(/^\s*-?\d+(\.\d+)?\s*$/, msg).transform(Number)], msg).pipe(num(false));
    case 'duration':
    case 'bytes': {
      const min = s.min ?? 0;
      const max = s.max ?? TIMER_MAX_MS;
      const parseText = s.kind === 'bytes' ? parseBytes : parseDuration;
      return z.union([z.number(), z.string()], msg)
        .transform((v, ctx) => {
          const ms = typeof v === 'number' ? v : parseText(v);
          if (ms === undefined || !Number.isFinite(ms) || ms < min || ms > max) {
            ctx.addIssue({ code: 'custom', message: msg.error });
            return z.NEVER;
          }
          return ms;
        });
    }
    case 'bool': return z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'], msg)], msg).transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
    case 'listen': return z.string(msg).regex(HOSTPORT, msg).refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, msg);
    case 'hostport': return z.string(msg).regex(HOSTPORT, msg).refine((v) => { const port = Number(v.slice(v.lastIndexOf(':') + 1)); return port >= 1 && port <= 65535; }, msg);
    case 'file': return z.string(msg).min(1, msg).refine(readableFile, msg);
    case 'level': return z.enum(LEVELS, msg);
    case 'format': return z.enum(FORMATS, msg);
    case 'inDoubt': return z.enum(IN_DOUBT, msg);
    case 'executor': return z.enum(EXECUTORS, msg);
    case 'leash': return z.union([z.boolean().transform((b) => (b ? 'true' : 'false')), z.enum(LEASH, msg)], msg);
    case 'onLimit': return z.enum(ON_LIMIT, msg);
    case 'string': return z.string(msg).min(1, msg);
  }
}

/** Resolved settings: durations in ms, numbers as numbers. */
export interface Config {
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
  restartTimeout: number;
  restartUrl: string | undefined;
  restartHeaders: string | undefined;
  container: string;
  dockerHost: string | undefined;
  dockerStopTimeout: number;
  http: string | undefined;
  instances: string | undefined;
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
    if (raw === undefined) {
      out[key] = undefined;
      continue;
    }
    const parsed = schemaOf(s).safeParse(raw);
    if (!parsed.success) {
      throw new ConfigError(`invalid ${origin} ${quote(raw)}: ${parsed.error.issues[0]?.message ?? `expected ${allowed(s)}`}`);
    }
    out[key] = parsed.data;
  }
  const config = out as unknown as Config;
  const where = (key: SettingKey): string => origins[key] ?? `--${SETTINGS[key].flag}`;
  if (command === 'run') crossCheck(config, where);
  if (command === 'pause' || command === 'resume' || command === 'audit') checkControlDb(config, where);
  checkBroker(config.broker, where('broker'));
  if (config.instances !== undefined && !config.instances.split(',').every((n) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(n.trim()))) {
    throw new ConfigError(`invalid --instances ${JSON.stringify(config.instances)}: expected instance names (letters, digits, '-') separated by commas`);
  }
  return config;
}

/** A value as echoed in an error: JSON, one line, credentials redacted. */
function quote(raw: unknown): string {
  return redactSecrets(JSON.stringify(raw) ?? String(raw));
}

function crossCheck(c: Config, where: (key: SettingKey) => string): void {
  if (c.extendEvery >= c.ackDeadline) {
    throw new ConfigError(`${where('extendEvery')} (${c.extendEvery}ms) must be shorter than ${where('ackDeadline')} (${c.ackDeadline}ms), or leases expire while work is in flight`);
  }
  const scheme = /^[a-z]+:/.exec(c.db)?.[0];
  if (!scheme || !['sqlite:', 'postgres:', 'postgresql:', 'memory:'].includes(scheme)) {
    throw new ConfigError(`invalid ${where('db')} ${quote(c.db)}: expected sqlite:<path>, postgres://user@host:port/db or memory:`);
  }
  if (scheme === 'sqlite:' && c.db.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '').trim() === '') {
    throw new ConfigError(`invalid ${where('db')} ${quote(c.db)}: sqlite: needs a file path, e.g. sqlite:./mayhem.db (memory: keeps nothing)`);
  }
  // The rails' patterns and window, read once here so a mistake is a setting error (exit 2).
  try {
    new HostFilter(commaList(c.allowHosts), commaList(c.denyHosts));
    if (c.window !== undefined) RestartWindow.parse(c.window);
  } catch (err) {
    if (err instanceof PolicyError) throw new ConfigError(err.message);
    throw err;
  }
  if (scheme === 'postgres:' || scheme === 'postgresql:') {
    try {
      new URL(c.db);
    } catch {
      throw new ConfigError(`invalid ${where('db')} ${quote(c.db)}: not a valid URL (expected postgres://user@host:port/db; percent-encode special characters in the password, or use PGPASSWORD)`);
    }
  }
}

/** The rails as the settings say (patterns and the window were validated by {@link resolveConfig}). */
export function railsSettings(config: Config): RailsSettings {
  return {
    hosts: new HostFilter(commaList(config.allowHosts), commaList(config.denyHosts)),
    window: config.window === undefined ? undefined : RestartWindow.parse(config.window),
    minIntervalMs: config.minIntervalPerHost,
    maxConcurrent: config.maxConcurrentRestarts,
    onLimit: config.onLimit,
    leashed: config.dryRun || config.leashed === 'true' || (config.leashed === 'auto' && config.executor !== 'mock'),
  };
}

/** `a, b,,c` → `['a', 'b', 'c']`; unset → `[]`. */
function commaList(v: string | undefined): string[] {
  return v === undefined ? [] : v.split(',').map((x) => x.trim()).filter(Boolean);
}

/** The kill switch and the audit trail live in a database other processes can open: not memory:. */
function checkControlDb(c: Config, where: (key: SettingKey) => string): void {
  if (/^(sqlite|postgres|postgresql):/.test(c.db) && c.db.slice(c.db.indexOf(':') + 1).trim() !== '') return;
  throw new ConfigError(`invalid ${where('db')} ${quote(c.db)}: pause, resume and audit need the service's database: sqlite:<path> or postgres://user@host:port/db`);
}

/** `memory`, or a comma list of nats://host[:port] URLs with a port from 1 to 65535. */
function checkBroker(broker: string, origin: string): void {
  if (broker === 'memory' || parseNatsUrls(broker) !== undefined) return;
  throw new ConfigError(`invalid ${origin} ${quote(broker)}: expected memory or ${NATS_URL_FORM}`);
}

function readableFile(path: string): boolean {
  try {
    accessSync(path, fsConstants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? errorText(err)}`);
  }
  // Editors on Windows save UTF-8 with a byte order mark; JSON.parse rejects it.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${errorText(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  const record = value as Record<string, unknown>;
  const entries = Object.entries(SETTINGS) as [SettingKey, Setting][];
  const known = new Set<string>(entries.flatMap(([k, s]) => [k, s.flag]));
  for (const k of Object.keys(record)) if (!known.has(k)) throw new ConfigError(`config file ${path}: unknown setting ${JSON.stringify(k)}`);
  for (const [k, s] of entries) {
    if (k !== s.flag && Object.hasOwn(record, k) && Object.hasOwn(record, s.flag)) {
      throw new ConfigError(`config file ${path}: "${k}" and "${s.flag}" are the same setting; keep one`);
    }
  }
  return record;
}

/** Settings a command takes, for building its flags. */
export function settingsFor(command: CommandName): [SettingKey, Setting][] {
  return (Object.entries(SETTINGS) as [SettingKey, Setting][]).filter(([, s]) => (s.commands as readonly string[]).includes(command));
}

export function describeSetting(s: Setting): string {
  return `${s.help} (${allowed(s)}${s.default !== undefined ? `; default ${String(s.default)}` : ''}; env ${envName(s.flag)})`;
}
