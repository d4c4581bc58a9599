/**
 * The settings table's entries for fleets: the blast radius, following the fleet's stored settings,
 * and the preview (`mayhem plan`, `mayhem settings`). Part of SETTINGS (config/settings.ts); a data
 * table like it.
 */
import type { Setting } from './settings.js';

const RUN = ['run'] as const;

export const FLEET_SETTINGS = {
  maxRestartPercent: {
    kind: 'number',
    flag: 'max-restart-percent',
    help: 'restart at most this share of the inventory per --blast-window, fleet-wide (floor, at least 1 host; 0 = no cap)',
    default: 0,
    min: 0,
    max: 100,
    commands: RUN,
  },
  blastWindow: {
    kind: 'duration',
    flag: 'blast-window',
    help: 'the window --max-restart-percent counts restarted hosts in',
    default: '1h',
    min: 1000,
    max: 7 * 86_400_000,
    commands: RUN,
  },
  inventory: {
    kind: 'string',
    flag: 'inventory',
    help: 'the hosts --max-restart-percent is a share of: a file (one host per line) or an http(s) URL (text, or a JSON list); default: the hosts seen in the window',
    commands: RUN,
  },
  fleetSettings: {
    kind: 'fleetSettings',
    flag: 'fleet-settings',
    help: "settings given that differ from the fleet's stored ones: check (refuse to start; probes: warn) or adopt (follow the fleet's, warn)",
    default: 'check',
    commands: RUN,
  },
  previewRestartTime: {
    kind: 'duration',
    flag: 'preview-restart-time',
    help: 'plan, and a leashed run: how long a restart it would make is taken to last (it holds its host and a slot that long)',
    default: '5s',
    min: 0,
    max: 3_600_000,
    commands: ['run', 'plan'],
  },
  requests: {
    kind: 'file',
    flag: 'requests',
    help: 'plan: the restart requests to plan, one JSON request per line (or a JSON list)',
    commands: ['plan'],
  },
  fromStream: {
    kind: 'bool',
    flag: 'from-stream',
    help: 'plan: the requests pending on the NATS stream, read without taking any (the default with --broker nats://)',
    default: false,
    commands: ['plan'],
  },
  ack: {
    kind: 'bool',
    flag: 'ack',
    help: 'plan --from-stream: consume the planned requests (removed from the stream, recorded as leashed)',
    default: false,
    commands: ['plan'],
  },
  unset: {
    kind: 'string',
    flag: 'unset',
    help: 'settings set: fleet settings to clear, comma-separated flag names (e.g. deny-hosts,window)',
    commands: ['settings'],
  },
} as const satisfies Record<string, Setting>;
