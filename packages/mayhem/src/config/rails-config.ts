/**
 * The rails' settings from a config: checked once at start (a bad pattern, window or inventory is a
 * setting error: exit 2) and turned into the rails' plain settings.
 */
import { HostFilter, PolicyError, RestartWindow } from '../core/policy.js';
import type { RailsSettings } from '../core/rails.js';
import { readableFile } from './config-file.js';
import { ConfigError, quote, type Config } from './config.js';
import type { SettingKey } from './settings.js';

/** The rails' patterns, window and inventory, read once here so a mistake is a setting error (exit 2). */
export function checkRails(c: Config, where: (key: SettingKey) => string): void {
  try {
    new HostFilter(commaList(c.allowHosts), commaList(c.denyHosts));
    if (c.window !== undefined) RestartWindow.parse(c.window);
  } catch (err) {
    if (err instanceof PolicyError) throw new ConfigError(err.message);
    throw err;
  }
  if (c.inventory !== undefined && !/^https?:\/\//i.test(c.inventory) && !readableFile(c.inventory))
    throw new ConfigError(
      `invalid ${where('inventory')} ${quote(c.inventory)}: expected a readable file (one host per line) or an http:// or https:// URL`,
    );
}

/** Whether an instance with these settings is leashed: `auto` is leashed unless the executor is the mock. */
export function isLeashed(leashed: Config['leashed'], dryRun: boolean, executor: Config['executor']): boolean {
  return dryRun || leashed === 'true' || (leashed === 'auto' && executor !== 'mock');
}

/**
 * The rails as the settings say (patterns and the window were validated by {@link resolveConfig});
 * `inventory`: the hosts of `--inventory`, as read (fleet/inventory.ts).
 */
export function railsSettings(config: Config, inventory?: readonly string[]): RailsSettings {
  return {
    hosts: new HostFilter(commaList(config.allowHosts), commaList(config.denyHosts)),
    window: config.window === undefined ? undefined : RestartWindow.parse(config.window),
    minIntervalMs: config.minIntervalPerHost,
    maxConcurrent: config.maxConcurrentRestarts,
    onLimit: config.onLimit,
    leashed: isLeashed(config.leashed, config.dryRun, config.executor),
    blast:
      config.maxRestartPercent > 0
        ? {
            percent: config.maxRestartPercent,
            windowMs: config.blastWindow,
            inventory,
            inventorySource: inventory === undefined ? undefined : config.inventory,
          }
        : undefined,
  };
}

/** `a, b,,c` → `['a', 'b', 'c']`; unset → `[]`. */
function commaList(v: string | undefined): string[] {
  return v === undefined
    ? []
    : v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
}
