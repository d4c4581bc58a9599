/**
 * The environment of every child process mayhem starts (a restart command, a probe command): an
 * allow-list, never mayhem's own environment, which holds its secrets (`PGPASSWORD`, a broker token
 * in `MAYHEM_BROKER`, a database URL with its password, any `MAYHEM_*` setting). A child gets PATH,
 * HOME and LANG, the names its user listed (`--restart-env`, a probe's `env=`), and the fields
 * mayhem sets for it (`MAYHEM_HOST`, …), which win over anything inherited.
 */

/** What every child gets from mayhem's environment, when set there. */
export const BASE_CHILD_ENV = ['PATH', 'HOME', 'LANG'] as const;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The child's environment: the base names and `names` taken from `from`, then `fields` on top. */
export function childEnv(
  from: NodeJS.ProcessEnv,
  names: readonly string[] = [],
  fields: Readonly<Record<string, string>> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const n of BASE_CHILD_ENV) if (from[n] !== undefined) env[n] = from[n];
  for (const n of names) if (from[n] !== undefined) env[n] = from[n];
  for (const [n, v] of Object.entries(fields)) env[n] = v;
  return env;
}

/**
 * A comma-separated list of variable names (`--restart-env PGHOST,SSH_AUTH_SOCK`), or a one-line
 * reason it is not one.
 */
export function parseEnvNames(text: string): { names: string[] } | { error: string } {
  const names = text
    .split(',')
    .map((n) => n.trim())
    .filter((n) => n !== '');
  if (names.length === 0) return { error: 'expected variable names separated by commas, e.g. SSH_AUTH_SOCK,PGHOST' };
  const bad = names.find((n) => !NAME.test(n));
  if (bad !== undefined)
    return {
      error: `${JSON.stringify(bad.slice(0, 60))} is not an environment variable name (letters, digits and _, not starting with a digit)`,
    };
  return { names: [...new Set(names)] };
}
