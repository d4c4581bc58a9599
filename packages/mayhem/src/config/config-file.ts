/** The JSON config file (`--config`, `MAYHEM_CONFIG`): read, checked against the settings table. */
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { errorText } from '../core/errors.js';
import { ConfigError } from './config.js';
import { SETTINGS, type Setting, type SettingKey } from './settings.js';

export function readableFile(path: string): boolean {
  try {
    accessSync(path, fsConstants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? errorText(err)}`);
  }
  // Editors on Windows save UTF-8 with a byte order mark; JSON.parse rejects it.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${errorText(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  const record = value as Record<string, unknown>;
  const entries = Object.entries(SETTINGS) as [SettingKey, Setting][];
  const known = new Set<string>(entries.flatMap(([k, s]) => [k, s.flag]));
  for (const k of Object.keys(record))
    if (!known.has(k)) throw new ConfigError(`config file ${path}: unknown setting ${JSON.stringify(k)}`);
  for (const [k, s] of entries) {
    if (k !== s.flag && Object.hasOwn(record, k) && Object.hasOwn(record, s.flag)) {
      throw new ConfigError(`config file ${path}: "${k}" and "${s.flag}" are the same setting; keep one`);
    }
  }
  return record;
}
