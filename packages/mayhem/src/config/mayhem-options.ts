/**
 * A resolved Config → the core's knobs (`MayhemSettings`, core/assemble.ts): the one mapping, so the
 * defaults `createMayhem` runs with are the settings table's, written once there.
 */
import type { MayhemSettings } from '../core/assemble.js';
import { parseHostTemplate } from '../core/hostname.js';
import { defaultConfig, type Config } from './config.js';

// The caps the help texts promise: retries back off up to 20× --retry-backoff, nacks up to 60 s.
const RETRY_CAP = 20;
const NACK_CAP_MS = 60_000;

export function mayhemSettings(c: Config): MayhemSettings {
  return {
    extendEveryMs: c.extendEvery,
    restartAttempts: c.restartAttempts,
    saveAttempts: c.saveAttempts,
    maxDeliveries: c.maxDeliveries,
    retryBackoff: { baseMs: c.retryBackoff, maxMs: c.retryBackoff * RETRY_CAP },
    nackBackoff: { baseMs: c.nackDelay, maxMs: NACK_CAP_MS },
    dryRun: c.dryRun,
    inDoubt: c.inDoubt,
    maxInFlight: c.maxInFlight,
    maxMessageBytes: c.maxMessageBytes,
    hostTemplate: parseHostTemplate(c.hostTemplate),
  };
}

/** The table's defaults as the core's knobs: what the benches and tests build the core with. */
export function defaultMayhemSettings(): MayhemSettings {
  return mayhemSettings(defaultConfig());
}
