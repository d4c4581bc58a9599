/**
 * `mayhem run` and its fleet's settings: join them at start (fleet/join.ts; said in the log), and
 * follow their changes while running (fleet/watch.ts): new rails from the next decision on, the new
 * probes checked from their next round.
 */
import type { Logger } from 'pino';
import { railsSettings, type Config } from './config/config.js';
import type { Storage } from './core/contracts.js';
import { errorText } from './core/errors.js';
import type { FleetControl, Rails } from './core/rails.js';
import { joinFleet, show, summary, type Joined } from './fleet/join.js';
import { FLEET_CLASS, FLEET_KEYS } from './fleet/keys.js';
import { describeStored, fleetValues, sameValue } from './fleet/values.js';
import { watchFleet } from './fleet/watch.js';
import type { RunExperiment } from './run-experiment.js';
import { LocalFleetControl } from './storage/memory/control.js';

/** Join the fleet's settings through `storage`'s fleet state (refuses with a ConfigError: exit 2). */
export function joinRunFleet(config: Config, storage: Storage, instance: string): Promise<Joined> {
  return joinFleet(config, storage.control?.() ?? new LocalFleetControl(), instance);
}

/** Say which settings it runs with, once everything is open (nothing is logged while starting up). */
export function announceFleet(joined: Joined, logger: Logger): void {
  const { stored } = joined;
  logger.info(
    { version: stored.version },
    joined.first
      ? `Stored this instance's settings as the fleet's (version ${stored.version}): ${summary(stored)}`
      : `Following ${describeStored(stored)}: ${summary(stored)}`,
  );
  for (const d of joined.warnings)
    logger.warn(
      { setting: d.key },
      d.cls === 'probes'
        ? `Checking the fleet's probes, not this instance's: ${show(d)}`
        : d.cls === 'leash'
          ? `Leashed by its own settings: ${show(d)}; it previews beside the fleet and restarts nothing`
          : `Following the fleet's settings (--fleet-settings adopt): ${show(d)}`,
    );
}

/** Follow the fleet's settings from now on; returns the function that stops following. */
export function followFleet(o: {
  readonly config: Config;
  readonly joined: Joined;
  readonly control: FleetControl;
  readonly rails: Rails;
  readonly experiment: RunExperiment;
  readonly logger: Logger;
}): () => void {
  let current = o.joined.config;
  return watchFleet({
    control: o.control,
    base: o.config,
    preview: o.joined.preview,
    current: { config: o.joined.config, stored: o.joined.stored },
    logger: o.logger,
    apply: (next, stored) => {
      o.rails.update(railsSettings(next, stored.inventory?.hosts));
      const was = fleetValues(current);
      const now = fleetValues(next);
      current = next;
      if (FLEET_KEYS.some((k) => FLEET_CLASS[k] === 'probes' && !sameValue(was[k], now[k])))
        o.experiment.replaceProbes(next).catch((err: unknown) => {
          o.logger.error({ err: errorText(err) }, `Could not start the fleet's new probes: ${errorText(err)}`);
        });
    },
  });
}
