/**
 * The table of every setting: its flag, help, default, range and the commands that take it. The CLI
 * flags, the env names (`MAYHEM_*`), the zod schema and the help text are all derived from it
 * (cli/config.ts). A data table, so it is allowed more lines than a module of logic.
 */
import { FLEET_SETTINGS } from './settings-fleet.js';
import { LIMIT_SETTINGS } from './settings-limits.js';

export type Kind =
  | 'int'
  | 'number'
  | 'duration'
  | 'bytes'
  | 'bool'
  | 'string'
  | 'hostport'
  | 'listen'
  | 'level'
  | 'format'
  | 'file'
  | 'inDoubt'
  | 'executor'
  | 'leash'
  | 'onLimit'
  | 'pick'
  | 'probes'
  | 'reportFormat'
  | 'fleetSettings';

export interface Setting {
  readonly kind: Kind;
  readonly flag: string;
  readonly help: string;
  readonly default?: string | number | boolean;
  readonly min?: number;
  readonly max?: number;
  /** Which commands take it. */
  readonly commands: readonly CommandName[];
}

/** The commands that take settings. */
export type CommandName = 'run' | 'publish' | 'pause' | 'resume' | 'audit' | 'report' | 'plan' | 'settings';

const BOTH = ['run', 'publish'] as const;
// The kill switch and the audit trail: commands that only open the database.
const CONTROL = ['pause', 'resume', 'audit'] as const;
const RUN = ['run'] as const;

/** Every setting. Keys are the config-file names; flags and env names derive from `flag`. */
export const SETTINGS = {
  broker: {
    kind: 'string',
    flag: 'broker',
    help: 'memory (embedded) or nats://host:port[,nats://host:port...]',
    default: 'memory',
    commands: BOTH,
  },
  db: {
    kind: 'string',
    flag: 'db',
    help: 'sqlite:<path>, postgres://..., or memory: (nothing kept)',
    default: 'sqlite:./mayhem.db',
    commands: ['run', ...CONTROL, 'report'],
  },
  maxInFlight: {
    kind: 'int',
    flag: 'max-in-flight',
    help: 'messages handled at once; pulling waits when full',
    default: 1000,
    min: 1,
    max: 1_000_000,
    commands: RUN,
  },
  extendEvery: {
    kind: 'duration',
    flag: 'extend-every',
    help: 'extend the ack deadline this often while a message is in flight',
    default: '2s',
    min: 10,
    max: 3_600_000,
    commands: RUN,
  },
  ackDeadline: {
    kind: 'duration',
    flag: 'ack-deadline',
    help: 'lease length (memory broker) / ack wait (NATS)',
    default: '10s',
    min: 50,
    max: 43_200_000,
    commands: RUN,
  },
  restartAttempts: {
    kind: 'int',
    flag: 'restart-attempts',
    help: 'restart tries per delivery (exponential backoff with jitter)',
    default: 3,
    min: 1,
    max: 100,
    commands: RUN,
  },
  saveAttempts: {
    kind: 'int',
    flag: 'save-attempts',
    help: 'save tries per delivery',
    default: 3,
    min: 1,
    max: 100,
    commands: RUN,
  },
  retryBackoff: {
    kind: 'duration',
    flag: 'retry-backoff',
    help: 'base delay between tries (doubles each try, capped at 20x)',
    default: '100ms',
    min: 0,
    max: 60_000,
    commands: RUN,
  },
  nackDelay: {
    kind: 'duration',
    flag: 'nack-delay',
    help: 'base redelivery delay of a nacked message (doubles per delivery, capped at 60s)',
    default: '1s',
    min: 0,
    max: 60_000,
    commands: RUN,
  },
  maxDeliveries: {
    kind: 'int',
    flag: 'max-deliveries',
    help: 'dead-letter a message that failed this many deliveries',
    default: 5,
    min: 1,
    max: 1000,
    commands: RUN,
  },
  publishRate: {
    kind: 'number',
    flag: 'publish-rate',
    help: 'simulated publisher on the memory broker, messages/s (0 = as fast as possible)',
    default: 2,
    min: 0,
    max: 1_000_000,
    commands: RUN,
  },
  maxBacklog: {
    kind: 'int',
    flag: 'max-backlog',
    help: 'memory broker: messages it holds at most (ready, leased or waiting to be redelivered); the simulated publisher waits while it is full',
    default: 10_000,
    min: 1,
    max: 10_000_000,
    commands: RUN,
  },
  rate: {
    kind: 'number',
    flag: 'rate',
    help: 'messages/s (0 = as fast as possible)',
    default: 0,
    min: 0,
    max: 1_000_000,
    commands: ['publish'],
  },
  count: {
    kind: 'int',
    flag: 'count',
    help: 'stop after this many messages settled (run) / published (publish); default unlimited',
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    commands: BOTH,
  },
  restartLatency: {
    kind: 'duration',
    flag: 'restart-latency',
    help: 'mock restart latency, uniform in [0, this]',
    default: '1s',
    min: 0,
    max: 3_600_000,
    commands: RUN,
  },
  restartFailureRate: {
    kind: 'number',
    flag: 'restart-failure-rate',
    help: 'probability a mock restart fails',
    default: 0.25,
    min: 0,
    max: 1,
    commands: RUN,
  },
  saveFailureRate: {
    kind: 'number',
    flag: 'save-failure-rate',
    help: 'probability a save fails (fault injection)',
    default: 0,
    min: 0,
    max: 1,
    commands: RUN,
  },
  malformedEvery: {
    kind: 'int',
    flag: 'malformed-every',
    help: 'fault injection: the simulated publisher makes every Nth message malformed (default never)',
    min: 1,
    max: 1_000_000_000,
    commands: RUN,
  },
  seed: {
    kind: 'int',
    flag: 'seed',
    help: 'seed the random choices (reproducible runs)',
    min: 0,
    max: 4_294_967_295,
    commands: BOTH,
  },
  inDoubt: {
    kind: 'inDoubt',
    flag: 'in-doubt',
    help: 'a restart found in doubt (its instance died mid-restart): skip it (at most once) or restart it again (at least once)',
    default: 'skip',
    commands: RUN,
  },
  dryRun: {
    kind: 'bool',
    flag: 'dry-run',
    help: 'the same as --leashed true (its older name)',
    default: false,
    commands: RUN,
  },
  leashed: {
    kind: 'leash',
    flag: 'leashed',
    help: 'log and record what would be restarted, restart nothing; auto = leashed unless --executor mock',
    default: 'auto',
    commands: RUN,
  },
  allowHosts: {
    kind: 'string',
    flag: 'allow-hosts',
    help: 'restart only hosts matching one of these globs, comma-separated (e.g. web-*.example.net); default every host',
    commands: RUN,
  },
  denyHosts: {
    kind: 'string',
    flag: 'deny-hosts',
    help: 'never restart hosts matching one of these globs, comma-separated; deny wins over allow',
    commands: RUN,
  },
  window: {
    kind: 'string',
    flag: 'window',
    help: "restart only inside this weekly window, e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin' (spans joined with ;); outside it messages wait",
    commands: RUN,
  },
  minIntervalPerHost: {
    kind: 'duration',
    flag: 'min-interval-per-host',
    help: 'never restart one host twice within this, fleet-wide through the database (0 = no minimum)',
    default: '0',
    min: 0,
    max: 7 * 86_400_000,
    commands: RUN,
  },
  maxConcurrentRestarts: {
    kind: 'int',
    flag: 'max-concurrent-restarts',
    help: 'restarts running at once at most, fleet-wide with PostgreSQL (0 = no limit)',
    default: 0,
    min: 0,
    max: 100_000,
    commands: RUN,
  },
  onLimit: {
    kind: 'onLimit',
    flag: 'on-limit',
    help: 'a restart the interval, the concurrency limit or the blast radius holds back: delay (nack until it may run) or skip (ack it as skipped)',
    default: 'delay',
    commands: RUN,
  },
  instanceName: {
    kind: 'string',
    flag: 'instance-name',
    help: "this instance's name in the audit trail and on `pause` (default host:pid)",
    commands: ['run', 'pause', 'resume'],
  },
  reason: {
    kind: 'string',
    flag: 'reason',
    help: 'why restarts are paused (shown by every instance and in the audit trail)',
    commands: ['pause'],
  },
  since: {
    kind: 'duration',
    flag: 'since',
    help: 'audit entries from this long ago on',
    default: '1h',
    min: 0,
    max: 3650 * 86_400_000,
    commands: ['audit'],
  },
  host: {
    kind: 'string',
    flag: 'host',
    help: 'audit entries of this host only: its host name or its instance name',
    commands: ['audit'],
  },
  limit: {
    kind: 'int',
    flag: 'limit',
    help: 'audit entries at most (newest first)',
    default: 100,
    min: 1,
    max: 1_000_000,
    commands: ['audit'],
  },
  json: {
    kind: 'bool',
    flag: 'json',
    help: 'audit entries as JSON lines instead of a table (plan, settings show: the output as JSON)',
    default: false,
    commands: ['audit'],
  },
  grace: {
    kind: 'duration',
    flag: 'grace',
    help: 'on shutdown, time in-flight messages get to finish before they are cancelled and nacked',
    default: '5s',
    min: 0,
    max: 3_600_000,
    commands: RUN,
  },
  statsd: { kind: 'hostport', flag: 'statsd', help: 'send metrics to StatsD at host:port', commands: RUN },
  statusEvery: {
    kind: 'duration',
    flag: 'status-every',
    help: 'status line interval on a terminal (0 = off)',
    default: '5s',
    min: 0,
    max: 86_400_000,
    commands: RUN,
  },
  logLevel: {
    kind: 'level',
    flag: 'log-level',
    help: 'trace, debug, info, warn, error, fatal or silent',
    default: 'info',
    commands: BOTH,
  },
  logFormat: {
    kind: 'format',
    flag: 'log-format',
    help: 'auto (pretty on a terminal, JSON otherwise), json or pretty',
    default: 'auto',
    commands: BOTH,
  },
  debug: {
    kind: 'bool',
    flag: 'debug',
    help: 'loopwatch debug mode: task tracking, unhandled errors with their origin, slow callbacks',
    default: false,
    commands: RUN,
  },
  slowCallbackMs: {
    kind: 'number',
    flag: 'slow-callback-ms',
    help: 'report loop turns longer than this (loopwatch)',
    min: 1,
    max: 3_600_000,
    commands: RUN,
  },
  monitorTasksMs: {
    kind: 'duration',
    flag: 'monitor-tasks-ms',
    help: 'print a task dump this often (loopwatch)',
    min: 10,
    max: 86_400_000,
    commands: RUN,
  },
  stream: { kind: 'string', flag: 'stream', help: 'NATS stream name', default: 'MAYHEM', commands: BOTH },
  subject: {
    kind: 'string',
    flag: 'subject',
    help: 'NATS subject of restart requests',
    default: 'mayhem.restart',
    commands: BOTH,
  },
  durable: {
    kind: 'string',
    flag: 'durable',
    help: 'NATS durable consumer shared by all instances',
    default: 'mayhem',
    commands: RUN,
  },
  deadLetterSubject: {
    kind: 'string',
    flag: 'dead-letter-subject',
    help: 'NATS subject dead letters are republished to (kept by the stream <stream>_DEAD)',
    default: 'mayhem.dead',
    commands: RUN,
  },
  deadLetterMaxAge: {
    kind: 'duration',
    flag: 'dead-letter-max-age',
    help: 'NATS: dead letters older than this are dropped from <stream>_DEAD (0 = kept forever)',
    default: '30d',
    min: 0,
    max: 3650 * 86_400_000,
    commands: RUN,
  },
  deadLetterMaxBytes: {
    kind: 'bytes',
    flag: 'dead-letter-max-bytes',
    help: 'NATS: <stream>_DEAD holds at most this much, dropping the oldest (0 = no limit)',
    default: '1GiB',
    min: 0,
    max: 2 ** 50,
    commands: RUN,
  },
  retention: {
    kind: 'duration',
    flag: 'retention',
    help: 'delete acked message records older than this, in small batches off the hot path (0 = keep everything)',
    default: '7d',
    min: 0,
    max: 3650 * 86_400_000,
    commands: RUN,
  },
  deadLetterRetention: {
    kind: 'duration',
    flag: 'dead-letter-retention',
    help: 'delete dead letters (and dead-lettered records) older than this (0 = keep everything)',
    default: '30d',
    min: 0,
    max: 3650 * 86_400_000,
    commands: RUN,
  },
  replicas: {
    kind: 'int',
    flag: 'replicas',
    help: 'NATS stream replicas (3 on a 3-node cluster)',
    default: 1,
    min: 1,
    max: 5,
    commands: BOTH,
  },
  natsCreds: {
    kind: 'file',
    flag: 'nats-creds',
    help: 'NATS credentials file (JWT + nkey seed, as nsc writes it)',
    commands: BOTH,
  },
  natsNkey: { kind: 'file', flag: 'nats-nkey', help: 'file holding a NATS nkey seed (SU...)', commands: BOTH },
  natsTokenFile: { kind: 'file', flag: 'nats-token-file', help: 'file holding a NATS auth token', commands: BOTH },
  executor: {
    kind: 'executor',
    flag: 'executor',
    help: "what restarts a host: mock (the article's; restarts nothing), command, http or docker",
    default: 'mock',
    commands: RUN,
  },
  restartCommand: {
    kind: 'string',
    flag: 'restart-command',
    help: "--executor command: program and arguments per restart, e.g. 'ssh {host} sudo systemctl reboot' ({host}, {instance} as whole arguments; no shell)",
    commands: RUN,
  },
  restartShell: {
    kind: 'bool',
    flag: 'restart-shell',
    help: '--executor command: run --restart-command with /bin/sh -c; fields only as env vars MAYHEM_HOST, MAYHEM_INSTANCE, MAYHEM_MESSAGE_ID',
    default: false,
    commands: RUN,
  },
  restartEnv: { kind: 'string', flag: 'restart-env', help: 'command: env vars to pass on, e.g. A,B', commands: RUN },
  restartTimeout: {
    kind: 'duration',
    flag: 'restart-timeout',
    help: 'command, http, docker: longest one restart may take (a command is then killed)',
    default: '30s',
    min: 100,
    max: 3_600_000,
    commands: RUN,
  },
  restartUrl: {
    kind: 'string',
    flag: 'restart-url',
    help: '--executor http: webhook to POST to, e.g. https://ops.example/restart/{host} (fields URL-encoded)',
    commands: RUN,
  },
  restartHeaders: {
    kind: 'file',
    flag: 'restart-headers',
    help: '--executor http: file of request headers, one "Name: value" per line (values never logged)',
    commands: RUN,
  },
  httpMaxCalls: {
    kind: 'int',
    flag: 'http-max-calls',
    help: '--executor http: requests per message at most, across its attempts and deliveries; past it the restart is in doubt (a request may have arrived unanswered) or failed (none did anything)',
    default: 3,
    min: 1,
    max: 1000,
    commands: RUN,
  },
  container: {
    kind: 'string',
    flag: 'container',
    help: '--executor docker: container name template',
    default: '{instance}',
    commands: RUN,
  },
  dockerHost: {
    kind: 'string',
    flag: 'docker-host',
    help: '--executor docker: unix:///path or tcp://host:port (default: DOCKER_HOST, else unix:///var/run/docker.sock)',
    commands: RUN,
  },
  dockerStopTimeout: {
    kind: 'duration',
    flag: 'docker-stop-timeout',
    help: "--executor docker: how long Docker waits for a container to stop before it kills it (the API's t)",
    default: '10s',
    min: 0,
    max: 3_600_000,
    commands: RUN,
  },
  http: {
    kind: 'listen',
    flag: 'http',
    help: 'serve /metrics (Prometheus), /healthz and /readyz at host:port, e.g. 127.0.0.1:9464 (port 0: any free port, logged)',
    commands: RUN,
  },
  instances: {
    kind: 'string',
    flag: 'instances',
    help: 'simulated publisher: pick instance names from this comma-separated list instead of inventing cattle-xxxx',
    commands: BOTH,
  },
  pick: {
    kind: 'pick',
    flag: 'pick',
    help: 'how --instances are picked: round-robin (each in turn) or random',
    default: 'round-robin',
    commands: BOTH,
  },
  probe: {
    kind: 'probes',
    flag: 'probe',
    help: "a steady-state probe, repeatable: 'http:URL status=200 body=/re/', 'command:PROGRAM ARGS code=0', 'prometheus:URL query=Q threshold=<0.05' (each also name=, timeout=; command env=NAMES); MAYHEM_PROBE: one per line",
    commands: RUN,
  },
  probeEvery: {
    kind: 'duration',
    flag: 'probe-every',
    help: 'check the probes this often while running',
    default: '10s',
    min: 100,
    max: 3_600_000,
    commands: RUN,
  },
  probeTolerance: {
    kind: 'int',
    flag: 'probe-tolerance',
    help: 'failed checks of one probe in a row that pause every instance (the stop condition)',
    default: 3,
    min: 1,
    max: 1000,
    commands: RUN,
  },
  probeTimeout: {
    kind: 'duration',
    flag: 'probe-timeout',
    help: 'longest one probe check may take (a probe may set its own timeout=)',
    default: '5s',
    min: 10,
    max: 600_000,
    commands: RUN,
  },
  probeResume: {
    kind: 'bool',
    flag: 'probe-resume',
    help: 'resume restarts when the probe that paused them holds again (default: they stay paused until mayhem resume)',
    default: false,
    commands: RUN,
  },
  experiment: {
    kind: 'string',
    flag: 'experiment',
    help: 'run: stamp every audit row with this experiment and record its start, end and probe checks; report: the experiment to report on',
    commands: ['run', 'report'],
  },
  format: {
    kind: 'reportFormat',
    flag: 'format',
    help: 'the report as md (Markdown), html (one self-contained file with charts) or json',
    default: 'md',
    commands: ['report'],
  },
  out: {
    kind: 'string',
    flag: 'out',
    help: 'write the report to this file (default: standard output)',
    commands: ['report'],
  },
  hostTemplate: {
    kind: 'string',
    flag: 'host-template',
    help: "the host of a request that carries none, from its instance name, e.g. '{instance}.prod.example.com' (the default is the article's mock)",
    default: '{instance}.example.net',
    commands: RUN,
  },
  // The blast radius, the fleet's settings, the preview (`mayhem plan`, `mayhem settings`).
  ...FLEET_SETTINGS,
  ...LIMIT_SETTINGS,
} as const satisfies Record<string, Setting>;

export type SettingKey = keyof typeof SETTINGS;
