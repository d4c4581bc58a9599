/**
 * `mayhem settings show|set|import FILE`: the fleet's settings (the leash, the rails, the probes) in
 * its database, from any terminal. `set` changes the settings given as flags (`--unset NAME` clears
 * one), `import` replaces them all from a JSON file (`show --json` writes one); both check every value
 * as the flags are checked, store a new version (compare-and-set: two writers cannot both win), and
 * write the change to the audit trail. Running instances follow within a second.
 */
import { readFileSync } from 'node:fs';
import { redactUrl } from '../core/redact.js';
import { isHostname } from '../core/hostname.js';
import type { FleetControl, StoredSettings } from '../core/rails.js';
import { readInventory } from '../fleet/inventory.js';
import { summary } from '../fleet/join.js';
import { FLEET_KEYS, type FleetKey } from '../fleet/keys.js';
import {
  configOf,
  defaultValue,
  defaultValues,
  describeStored,
  fleetValues,
  sameValue,
  showValue,
  storedValue,
} from '../fleet/values.js';
import { ConfigError, isFlag, parseSetting, type Config } from '../config/config.js';
import { openControl, who } from './control.js';
import { SETTINGS } from '../config/settings.js';

type Values = Record<FleetKey, unknown>;
type Inventory = StoredSettings['inventory'];

export async function runSettingsShow(config: Config): Promise<string> {
  const opened = await openControl(config.db);
  try {
    await opened.control.refresh();
    const stored = opened.control.settingsState();
    if (config.json) return `${JSON.stringify(stored === undefined ? null : showJson(stored))}\n`;
    if (stored === undefined)
      return `No fleet settings on ${redactUrl(config.db)} yet: the first \`mayhem run\` stores its own, or \`mayhem settings set\`.\n`;
    const rows = FLEET_KEYS.map((k) => {
      const v = stored.values[k];
      const value =
        k === 'inventory' && stored.inventory
          ? `${showValue(k, v)} (${stored.inventory.hosts.length} hosts)`
          : showValue(k, v);
      return [`--${SETTINGS[k].flag}`, value, sameValue(v, defaultValue(k)) ? '(default)' : ''];
    });
    const width = Math.max(...rows.map((r) => r[0]!.length));
    return (
      `Fleet settings on ${redactUrl(config.db)}: version ${stored.version}, set by ${stored.by} at ${new Date(stored.at).toISOString()}\n` +
      rows.map(([flag, value, note]) => `  ${flag!.padEnd(width)}  ${value}${note ? `  ${note}` : ''}`).join('\n') +
      '\n'
    );
  } finally {
    await opened.close();
  }
}

export async function runSettingsSet(config: Config): Promise<string> {
  const unset = (config.unset ?? '')
    .split(',')
    .map((s) => s.trim().replace(/^--/, ''))
    .filter(Boolean)
    .map((flag) => {
      const key = FLEET_KEYS.find((k) => SETTINGS[k].flag === flag);
      if (key === undefined)
        throw new ConfigError(
          `invalid --unset ${JSON.stringify(flag)}: not a fleet setting (${FLEET_KEYS.map((k) => SETTINGS[k].flag).join(', ')})`,
        );
      return key;
    });
  const given = FLEET_KEYS.filter((k) => isFlag(config, k));
  if (given.length === 0 && unset.length === 0)
    throw new ConfigError(
      "settings set: nothing to set; give fleet settings as flags (e.g. --deny-hosts 'db-*' or --leashed false), or --unset NAME",
    );
  const both = given.find((k) => unset.includes(k));
  if (both !== undefined) throw new ConfigError(`--${SETTINGS[both].flag} is both set and unset`);
  const mine = fleetValues(config);
  const inventory =
    config.inventory !== undefined && given.includes('inventory')
      ? { source: config.inventory, hosts: await readInventory(config.inventory) }
      : undefined;
  return replace(config, (current, currentInventory) => {
    const values = { ...current };
    for (const k of given) values[k] = mine[k];
    for (const k of unset) values[k] = defaultValue(k);
    const inv = given.includes('inventory') ? inventory : unset.includes('inventory') ? undefined : currentInventory;
    return { values, inventory: inv };
  });
}

export async function runSettingsImport(config: Config, file: string): Promise<string> {
  let doc: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    doc = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new ConfigError(
      `cannot read settings file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new ConfigError(`settings file ${file} must hold a JSON object (as \`mayhem settings show --json\` writes)`);
  const record = doc as Record<string, unknown>;
  // `show --json`'s document, or the settings alone.
  const settings = (Object.hasOwn(record, 'settings') ? record.settings : record) as Record<string, unknown>;
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings))
    throw new ConfigError(`settings file ${file}: "settings" must be a JSON object`);
  const values = defaultValues();
  for (const [name, raw] of Object.entries(settings)) {
    const key = FLEET_KEYS.find((k) => k === name || SETTINGS[k].flag === name);
    if (key === undefined)
      throw new ConfigError(`settings file ${file}: ${JSON.stringify(name)} is not a fleet setting`);
    values[key] = raw === null ? defaultValue(key) : storedValue(key, parseSetting(key, raw, `"${name}" in ${file}`));
  }
  // Checked as the flags are (a window, patterns, the inventory source).
  configOf(values, file);
  let inventory: Inventory;
  if (typeof values.inventory === 'string') {
    const hosts = record.inventoryHosts;
    if (Array.isArray(hosts) && hosts.every((h) => typeof h === 'string' && isHostname(h)))
      inventory = { source: values.inventory, hosts: hosts as string[] };
    else inventory = { source: values.inventory, hosts: await readInventory(values.inventory) };
  }
  return replace(config, () => ({ values, inventory }));
}

/** Store the next version (retried when another writer came first), audit it, say what changed. */
async function replace(
  config: Config,
  next: (current: Values, inventory: Inventory) => { values: Values; inventory: Inventory },
): Promise<string> {
  const opened = await openControl(config.db);
  try {
    const by = who(config);
    const { control } = opened;
    for (let attempt = 1; ; attempt++) {
      await control.refresh();
      const current = control.settingsState();
      const wanted = next({ ...defaultValues(), ...current?.values }, current?.inventory);
      // Checked as a flag is, before anything is written.
      configOf(wanted.values, 'the new fleet settings');
      const changes = describe(current, wanted.values, wanted.inventory);
      if (current !== undefined && changes === '')
        return `Nothing changed: ${describeStored(current)} already say so.\n`;
      const stored = await control.writeSettings({ by, at: Date.now(), ...wanted }, current?.version ?? 0);
      if (stored.by !== by || stored.version !== (current?.version ?? 0) + 1) {
        if (attempt < 3) continue;
        throw new Error(`the fleet settings kept changing while being replaced (now ${describeStored(stored)})`);
      }
      audit(control, by, stored, changes);
      return `Fleet settings on ${redactUrl(config.db)} are now version ${stored.version} (by ${by}): ${changes}. Running instances follow within a second.\n`;
    }
  } finally {
    await opened.close();
  }
}

function describe(current: StoredSettings | undefined, values: Values, inventory: Inventory): string {
  const out: string[] = [];
  for (const k of FLEET_KEYS) {
    const was = current?.values[k] ?? defaultValue(k);
    if (k === 'inventory') {
      if (!sameValue(current?.inventory, inventory))
        out.push(
          `--inventory ${current?.inventory ? `${current.inventory.hosts.length} hosts` : '(none)'} → ${inventory ? `${inventory.hosts.length} hosts from ${inventory.source}` : '(none)'}`,
        );
      continue;
    }
    if (current === undefined || !sameValue(was, values[k]))
      if (current !== undefined || !sameValue(values[k], defaultValue(k)))
        out.push(`--${SETTINGS[k].flag} ${showValue(k, was)} → ${showValue(k, values[k])}`);
  }
  return current === undefined && out.length === 0 ? 'all defaults' : out.join('; ');
}

function audit(control: FleetControl, by: string, stored: StoredSettings, changes: string): void {
  control.audit({
    at: stored.at,
    instance: by,
    host: '*',
    messageId: '',
    executor: '',
    outcome: 'settings-changed',
    reason: `version ${stored.version}: ${changes}`,
  });
}

function showJson(stored: StoredSettings): Record<string, unknown> {
  return {
    version: stored.version,
    setBy: stored.by,
    setAt: new Date(stored.at).toISOString(),
    summary: summary(stored),
    settings: stored.values,
    ...(stored.inventory ? { inventoryHosts: stored.inventory.hosts } : {}),
  };
}
