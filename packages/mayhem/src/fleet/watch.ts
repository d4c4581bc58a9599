/**
 * The fleet's settings changing while the instance runs (`mayhem settings set`): the storage adapter
 * reads them with the kill switch every half second; this looks at what it read every
 * {@link WATCH_MS}, so a change is in force on every instance within about a second. It is logged
 * once, with what changed, and handed to `apply` (the rails, the probes).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';
import { errorText } from '../core/errors.js';
import type { FleetControl, StoredSettings } from '../core/rails.js';
import { FLEET_KEYS } from './keys.js';
import { fleetValues, sameValue, showValue, withFleet } from './values.js';
import { SETTINGS } from '../config/settings.js';

export const WATCH_MS = 250;

export interface FleetWatch {
  readonly control: FleetControl;
  /** The instance's own settings (a preview keeps its leash). */
  readonly base: Config;
  readonly preview: boolean;
  /** What it runs with now. */
  readonly current: { readonly config: Config; readonly stored: StoredSettings };
  readonly logger: Logger;
  /** Put the new settings in force. */
  readonly apply: (config: Config, stored: StoredSettings) => void;
}

/** Start watching; returns the function that stops it. */
export function watchFleet(w: FleetWatch): () => void {
  let { config, stored } = w.current;
  const timer = setInterval(() => {
    const next = w.control.settingsState();
    if (next === undefined || next.version <= stored.version) return;
    let nextConfig: Config;
    try {
      nextConfig = withFleet(w.base, next, w.preview);
    } catch (err) {
      // A row this mayhem cannot read (hand-edited, a newer version): keep running on the last good one.
      w.logger.error(
        { version: next.version, err: errorText(err) },
        `Fleet settings version ${next.version} cannot be used; keeping version ${stored.version}: ${errorText(err)}`,
      );
      stored = next;
      return;
    }
    const changes = describeChanges(config, nextConfig, stored, next);
    w.logger.warn(
      { version: next.version, by: next.by },
      `Fleet settings changed by ${next.by} (version ${next.version}): ${changes || 'nothing that applies here'}`,
    );
    config = nextConfig;
    stored = next;
    w.apply(config, stored);
  }, WATCH_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** `--deny-hosts "db-*" → "web-*"; --inventory 4 hosts → 5 hosts`. */
function describeChanges(a: Config, b: Config, sa: StoredSettings, sb: StoredSettings): string {
  const va = fleetValues(a);
  const vb = fleetValues(b);
  const out: string[] = [];
  for (const key of FLEET_KEYS) {
    if (key === 'inventory') {
      const ha = sa.inventory?.hosts.length;
      const hb = sb.inventory?.hosts.length;
      if (!sameValue(sa.inventory, sb.inventory))
        out.push(
          `--inventory ${ha === undefined ? '(none)' : `${ha} hosts`} → ${hb === undefined ? '(none)' : `${hb} hosts`}`,
        );
      continue;
    }
    if (!sameValue(va[key], vb[key]))
      out.push(`--${SETTINGS[key].flag} ${showValue(key, va[key])} → ${showValue(key, vb[key])}`);
  }
  return out.join('; ');
}
