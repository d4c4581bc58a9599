/**
 * The settings table's entries for what the service takes from outside: the `--http` endpoint's
 * limits (connections, timeouts, the /metrics snapshot, who may reach it) and the largest message.
 * Part of SETTINGS (config/settings.ts); a data table like it.
 */
import type { Setting } from './settings.js';

export const LIMIT_SETTINGS = {
  httpPublic: {
    kind: 'bool',
    flag: 'http-public',
    help: '--http may listen on an address other than loopback (127.0.0.1, ::1, localhost): the endpoint has no authentication',
    default: false,
    commands: ['run'],
  },
  httpMaxConnections: {
    kind: 'int',
    flag: 'http-max-connections',
    help: '--http: connections held at most; a new one past it replaces the oldest idle one, else is closed',
    default: 64,
    min: 1,
    max: 10_000,
    commands: ['run'],
  },
  httpTimeout: {
    kind: 'duration',
    flag: 'http-timeout',
    help: "--http: how long a request's headers, a whole request and an idle connection may take; then it is closed",
    default: '10s',
    min: 10,
    max: 600_000,
    commands: ['run'],
  },
  httpMetricsMaxAge: {
    kind: 'duration',
    flag: 'http-metrics-max-age',
    help: '--http: /metrics is a snapshot at most this old, rendered once for every scrape meanwhile (0: rendered for each scrape)',
    default: '1s',
    min: 0,
    max: 60_000,
    commands: ['run'],
  },
  maxMessageBytes: {
    kind: 'bytes',
    flag: 'max-message-bytes',
    help: 'a larger message is not parsed: it is dead-lettered as its size and first 1 KiB (in the database and the dead-letter stream)',
    default: '64KiB',
    min: 1024,
    max: 64 * 2 ** 20,
    commands: ['run', 'plan'],
  },
} as const satisfies Record<string, Setting>;
