/**
 * An instance joins its fleet's settings (the leash, the rails, the probes, kept in the database).
 * The first instance stores its own. Every later one follows the fleet's; a setting it was *given*
 * (flag, environment, config file) with another value is decided by its class:
 *
 *   rails (hosts, window, interval, slots, on-limit, blast radius, inventory) → refuse to start (exit
 *     2, each difference named with both values), unless `--fleet-settings adopt`: then warn and
 *     follow the fleet's. Fleet-wide limits are only limits if every instance applies the same ones.
 *   leash: given leashed while the fleet is not → start as a preview beside the fleet (warn): it
 *     takes none of the fleet's messages and restarts nothing. Given unleashed while the fleet is
 *     leashed → refuse, like a rail (unless adopt).
 *   probes → warn and check the fleet's: a probe only ever pauses, so refusing would block scaling
 *     out mid-incident without making anything safer, while the fleet's stop conditions stay checked.
 *
 * Settings are changed with `mayhem settings set` (audited), never by starting an instance.
 */
import { ConfigError, isGiven, isLeashed, type Config } from '../config/config.js';
import type { FleetControl, StoredSettings } from '../core/rails.js';
import { readInventory } from './inventory.js';
import { FLEET_CLASS, FLEET_KEYS, type FleetClass, type FleetKey } from './keys.js';
import { defaultValue, describeStored, fleetValues, sameValue, showValue, withFleet } from './values.js';
import { SETTINGS } from '../config/settings.js';

export interface Difference {
  readonly key: FleetKey;
  readonly cls: FleetClass;
  /** As a person reads them. */
  readonly mine: string;
  readonly fleet: string;
}

export interface Joined {
  /** This instance's settings from now on: the fleet's (a preview keeps its leash). */
  readonly config: Config;
  /** The hosts of `--inventory`, as stored with the settings. */
  readonly inventory: readonly string[] | undefined;
  readonly stored: StoredSettings;
  /** Leashed by its own settings: a preview that takes nothing from the fleet's broker. */
  readonly preview: boolean;
  /** This instance stored the fleet's settings (there were none). */
  readonly first: boolean;
  /** Differences it was let through with (warned about). */
  readonly warnings: readonly Difference[];
}

/** Join the fleet's settings, storing this instance's when there are none; refuses with a ConfigError. */
export async function joinFleet(config: Config, control: FleetControl, by: string, now = Date.now()): Promise<Joined> {
  await control.refresh();
  let stored = control.settingsState();
  const inventory = config.inventory === undefined ? undefined : await readInventory(config.inventory);
  let first = false;
  if (stored === undefined) {
    stored = await control.writeSettings(
      {
        by,
        at: now,
        values: fleetValues(config),
        inventory: inventory && config.inventory ? { source: config.inventory, hosts: inventory } : undefined,
      },
      0,
    );
    // Another instance may have stored its own at the same moment: then this one joins those. (The
    // first store is logged, not audited: the trail records changes, `mayhem settings set`.)
    first = stored.by === by && stored.at === now;
  }
  const { refuse, warn, preview } = compare(config, inventory, stored);
  if (refuse.length > 0)
    throw new ConfigError(
      `this instance's settings differ from ${describeStored(stored)}: ${refuse.map(show).join('; ')}. ` +
        "To follow the fleet's: --fleet-settings adopt; to change them for every instance: mayhem settings set (audited)",
    );
  return {
    config: withFleet(config, stored, preview),
    inventory: stored.inventory?.hosts,
    stored,
    preview,
    first,
    warnings: warn,
  };
}

/** What differs, and what each difference means for this instance. */
export function compare(
  config: Config,
  inventory: readonly string[] | undefined,
  stored: StoredSettings,
): { refuse: Difference[]; warn: Difference[]; preview: boolean } {
  const mine = fleetValues(config);
  const adopt = config.fleetSettings === 'adopt';
  const refuse: Difference[] = [];
  const warn: Difference[] = [];
  let preview = false;
  const differs = (key: FleetKey, mineText: string, fleetText: string, cls: FleetClass, refused: boolean): void => {
    const d = { key, cls, mine: mineText, fleet: fleetText };
    (refused && !adopt ? refuse : warn).push(d);
  };
  for (const key of FLEET_KEYS) {
    const cls = FLEET_CLASS[key];
    if (key === 'leashed') {
      if (!isGiven(config, 'leashed') && !(isGiven(config, 'dryRun') && config.dryRun)) continue;
      const mineLeashed = isLeashed(config.leashed, config.dryRun, config.executor);
      const storedLeash = stored.values.leashed;
      const fleetLeash = (typeof storedLeash === 'string' ? storedLeash : 'auto') as Config['leashed'];
      const fleetLeashed = isLeashed(fleetLeash, false, config.executor);
      // Given leashed: a preview for its whole life, whatever the fleet's leash is or becomes.
      preview = mineLeashed;
      if (mineLeashed === fleetLeashed) continue;
      differs(key, showValue(key, mine.leashed), showValue(key, stored.values.leashed), cls, !mineLeashed);
      continue;
    }
    if (!isGiven(config, key)) continue;
    if (key === 'inventory') {
      const fleetHosts = stored.inventory?.hosts;
      if (sameValue([...(inventory ?? [])].sort(), [...(fleetHosts ?? [])].sort())) continue;
      differs(key, hostsText(inventory, config.inventory), hostsText(fleetHosts, stored.inventory?.source), cls, true);
      continue;
    }
    if (sameValue(mine[key], stored.values[key])) continue;
    differs(key, showValue(key, mine[key]), showValue(key, stored.values[key]), cls, cls === 'rails');
  }
  return { refuse, warn, preview };
}

/** `--deny-hosts: this instance "db-*", the fleet "web-*"`. */
export function show(d: Difference): string {
  return `--${SETTINGS[d.key].flag}: this instance ${d.mine}, the fleet ${d.fleet}`;
}

/** The stored settings that are not their defaults, one line: `--deny-hosts "db-*", --max-concurrent-restarts 2`. */
export function summary(stored: StoredSettings): string {
  const set = FLEET_KEYS.filter((k) => !sameValue(stored.values[k], defaultValue(k)));
  return set.length === 0
    ? 'all defaults'
    : set.map((k) => `--${SETTINGS[k].flag} ${showValue(k, stored.values[k])}`).join(', ');
}

function hostsText(hosts: readonly string[] | undefined, source: string | undefined): string {
  return hosts === undefined ? '(none)' : `${hosts.length} hosts${source !== undefined ? ` from ${source}` : ''}`;
}
