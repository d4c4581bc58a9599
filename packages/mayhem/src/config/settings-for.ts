/** Which settings a command takes, for building its flags. */
import { FLEET_KEYS, PLAN_KEYS, SETTINGS_COMMAND_KEYS } from '../fleet/keys.js';
import { SETTINGS, type CommandName, type Setting, type SettingKey } from './settings.js';

/** Settings a command takes, for building its flags (plan and settings: the fleet's, and their own). */
export function settingsFor(command: CommandName): [SettingKey, Setting][] {
  const more: ReadonlySet<string> =
    command === 'plan'
      ? new Set([...FLEET_KEYS, ...PLAN_KEYS])
      : command === 'settings'
        ? new Set([...FLEET_KEYS, ...SETTINGS_COMMAND_KEYS])
        : new Set();
  return (Object.entries(SETTINGS) as [SettingKey, Setting][]).filter(
    ([key, s]) => more.has(key) || (s.commands as readonly string[]).includes(command),
  );
}
