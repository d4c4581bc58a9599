/**
 * The kinds of setting in the table (config/settings.ts), the values each may take, and what each
 * resolves to: `Config` (config/config.ts) is derived from the table through `KindValue`.
 */
import { EXECUTOR_KINDS } from '../executors/kinds.js';
import type { ProbeSpec } from '../probes/spec.js';

// The executors' own list: adding an executor there adds it to --executor.
export const EXECUTORS = EXECUTOR_KINDS;

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const FORMATS = ['auto', 'json', 'pretty'] as const;
export const IN_DOUBT = ['skip', 'restart'] as const;
export const LEASH = ['auto', 'true', 'false'] as const;
export const ON_LIMIT = ['delay', 'skip'] as const;
export const PICK = ['round-robin', 'random'] as const;
export const REPORT_FORMATS = ['md', 'html', 'json'] as const;
export const FLEET_POLICY = ['check', 'adopt'] as const;

export type Kind = keyof KindValue;

/** What a setting of each kind resolves to (durations in ms, sizes in bytes). */
export interface KindValue {
  int: number;
  number: number;
  duration: number;
  bytes: number;
  bool: boolean;
  string: string;
  hostport: string;
  listen: string;
  file: string;
  level: (typeof LEVELS)[number];
  format: (typeof FORMATS)[number];
  inDoubt: (typeof IN_DOUBT)[number];
  executor: (typeof EXECUTORS)[number];
  leash: (typeof LEASH)[number];
  onLimit: (typeof ON_LIMIT)[number];
  pick: (typeof PICK)[number];
  probes: ProbeSpec[];
  reportFormat: (typeof REPORT_FORMATS)[number];
  fleetSettings: (typeof FLEET_POLICY)[number];
}
