/**
 * Which settings are the fleet's (kept in its database, the same for every instance), by class:
 * the class decides what happens when an instance is started with a different value (fleet/join.ts).
 */
import type { SettingKey } from '../config/settings.js';

export type FleetClass = 'leash' | 'rails' | 'probes';

export const FLEET_CLASS = {
  leashed: 'leash',
  allowHosts: 'rails',
  denyHosts: 'rails',
  window: 'rails',
  minIntervalPerHost: 'rails',
  maxConcurrentRestarts: 'rails',
  onLimit: 'rails',
  maxRestartPercent: 'rails',
  blastWindow: 'rails',
  inventory: 'rails',
  probe: 'probes',
  probeEvery: 'probes',
  probeTolerance: 'probes',
  probeTimeout: 'probes',
  probeResume: 'probes',
} as const satisfies Partial<Record<SettingKey, FleetClass>>;

export type FleetKey = keyof typeof FLEET_CLASS;

export const FLEET_KEYS = Object.keys(FLEET_CLASS) as FleetKey[];

/** Besides the fleet's: what `mayhem plan` takes (where the requests are, what would act on them). */
export const PLAN_KEYS: readonly SettingKey[] = [
  'broker',
  'db',
  'stream',
  'subject',
  'natsCreds',
  'natsNkey',
  'natsTokenFile',
  'hostTemplate',
  'maxMessageBytes',
  'executor',
  'restartLatency',
  'restartFailureRate',
  'restartCommand',
  'restartShell',
  'restartEnv',
  'restartTimeout',
  'restartUrl',
  'restartHeaders',
  'httpMaxCalls',
  'container',
  'dockerHost',
  'dockerStopTimeout',
  'dryRun',
  'json',
  'instanceName',
];

/** Besides the fleet's: what `mayhem settings` takes. */
export const SETTINGS_COMMAND_KEYS: readonly SettingKey[] = ['db', 'json', 'instanceName'];
