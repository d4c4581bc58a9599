/**
 * Checks of what comes from outside: every `MAYHEM_*` variable is a setting or one of a known few
 * (a mistyped one is refused, as an unknown flag is); names printed on one line (the instance's, a
 * pause reason, a host) hold no control character; `--http` beyond loopback only when meant.
 */
import { controlCharacterIn as textHasControl } from '../core/message.js';
import { isLoopbackHost, splitHostPort } from '../metrics/listen-address.js';
import { ConfigError, quote, type Config } from './config.js';
import { SETTINGS, type Setting, type SettingKey } from './settings.js';

/**
 * `MAYHEM_*` variables that are not settings and are accepted all the same: the config file, what
 * the command executor sets for its children (one of which may run mayhem: `MAYHEM_HOST` is also
 * the `--host` setting), the mock executor's journal, and the tests', benches' and scripts' own.
 */
export const OTHER_MAYHEM_ENV: readonly string[] = [
  'MAYHEM_CONFIG',
  'MAYHEM_INSTANCE',
  'MAYHEM_MESSAGE_ID',
  'MAYHEM_ATTEMPT',
  'MAYHEM_DELIVERY',
  'MAYHEM_MOCK_JOURNAL',
  'MAYHEM_TEST_PG',
  'MAYHEM_BENCH_USAGE',
  'MAYHEM_NODE_CACHE',
  'MAYHEM_CI_LINES',
  // Fault switch for the storage worker's tests (storage/sqlite/worker-storage.ts).
  'MAYHEM_SQLITE_WORKER_CRASH_AFTER',
  // Benchmarks: the storage worker writes its CPU profile to this directory.
  'MAYHEM_SQLITE_WORKER_CPU_PROF',
  'MAYHEM_BENCH_PYTHON',
];

/** `max-in-flight` → `MAYHEM_MAX_IN_FLIGHT`. */
const envOf = (flag: string): string => `MAYHEM_${flag.toUpperCase().replace(/-/g, '_')}`;

function checkEnvNames(env: NodeJS.ProcessEnv): void {
  const known = new Set<string>([...Object.values(SETTINGS).map((s: Setting) => envOf(s.flag)), ...OTHER_MAYHEM_ENV]);
  for (const name of Object.keys(env)) {
    if (!name.startsWith('MAYHEM_') || known.has(name)) continue;
    throw new ConfigError(
      `unknown environment variable ${quote(name).slice(1, -1)}: settings are MAYHEM_<FLAG> (--max-in-flight → MAYHEM_MAX_IN_FLIGHT; mayhem run --help lists them)`,
    );
  }
}

/** Settings that name something, printed on one line. */
const ONE_LINE: readonly SettingKey[] = ['instanceName', 'reason', 'host'];

/** Refuse an unknown `MAYHEM_*` variable, and a name setting holding a control character. */
export function checkEnvAndNames(
  env: NodeJS.ProcessEnv,
  values: Record<string, unknown>,
  where: (key: SettingKey) => string,
): void {
  checkEnvNames(env);
  for (const key of ONE_LINE) {
    const v = values[key];
    if (typeof v === 'string' && textHasControl(v))
      throw new ConfigError(
        `invalid ${where(key)} ${quote(v)}: must not contain control characters (newline, tab, ...)`,
      );
  }
}

/** The endpoint has no authentication: an address beyond loopback needs `--http-public`. */
export function checkHttpExposure(c: Config, where: (key: SettingKey) => string): void {
  if (c.http === undefined || c.httpPublic || isLoopbackHost(splitHostPort(c.http).host)) return;
  throw new ConfigError(
    `${where('http')} ${quote(c.http)} would serve /metrics, /healthz, /readyz and the experiment report without authentication beyond this machine: add --http-public to mean it, or listen on 127.0.0.1`,
  );
}
