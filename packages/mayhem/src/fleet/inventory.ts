/**
 * `--inventory`: the hosts `--max-restart-percent` is a share of. A file (one host per line, `#`
 * comments and blank lines allowed) or an http(s) URL answering the same text or a JSON list of
 * host names. Read when the fleet's settings are stored (the first instance, `mayhem settings`),
 * and kept with them, so every instance counts the same hosts.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/config.js';
import { errorText } from '../core/errors.js';
import { isHostname } from '../core/hostname.js';

const FETCH_TIMEOUT_MS = 10_000;

/** The inventory's distinct hosts, in the order given; a bad one is one line naming where. */
export async function readInventory(source: string): Promise<string[]> {
  const text = /^https?:\/\//i.test(source) ? await fetchText(source) : readFile(source);
  const trimmed = text.trim();
  let hosts: string[];
  if (trimmed.startsWith('[')) {
    let list: unknown;
    try {
      list = JSON.parse(trimmed);
    } catch (err) {
      throw new ConfigError(`--inventory ${source} is not a valid JSON list: ${errorText(err)}`);
    }
    if (!Array.isArray(list) || !list.every((h) => typeof h === 'string'))
      throw new ConfigError(`--inventory ${source}: expected a JSON list of host names`);
    hosts = list.map((h) => h.trim());
  } else {
    hosts = text
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l !== '');
  }
  const bad = hosts.find((h) => !isHostname(h));
  if (bad !== undefined)
    throw new ConfigError(`--inventory ${source}: ${JSON.stringify(bad.slice(0, 80))} is not a host name`);
  const distinct = [...new Set(hosts)];
  if (distinct.length === 0) throw new ConfigError(`--inventory ${source} holds no host`);
  return distinct;
}

function readFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read --inventory ${path}: ${(err as NodeJS.ErrnoException).code ?? errorText(err)}`);
  }
}

async function fetchText(url: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (err) {
    throw new ConfigError(`cannot read --inventory ${url}: ${errorText((err as Error).cause ?? err)}`);
  }
  if (!res.ok) throw new ConfigError(`cannot read --inventory ${url}: HTTP ${res.status}`);
  return res.text();
}
