/**
 * Which processes `loopwatch/register` instruments. Loaded through `NODE_OPTIONS`, the register file
 * runs in every node process of a command line (npm, npx, the test runner and each of its children)
 * and in every worker thread:
 *  - worker threads get nothing: loopwatch watches the main thread's loop (a worker's own stalls show
 *    as nothing on the main loop, and a worker must behave exactly as without loopwatch);
 *  - package managers (npm, npx, yarn, pnpm, corepack), the wrappers that only start the user's program
 *    in a child (tsx's CLI, nodemon) and loopwatch's own commands are never what a user means to watch,
 *    however they are reached;
 *  - `LOOPWATCH_ONLY=glob[,glob]` narrows it to the main scripts that match (e.g. `dist/server.js`,
 *    `**\/*.test.js`); a process without a main script (`node -e`, the REPL) matches only `-`.
 */
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PathGlobs } from './model/glob.js';

// The usual layouts, recognised by name alone. Node keeps `process.argv[1]` as typed (`/usr/bin/npm`,
// `node_modules/.bin/tsx`), so the real path is tried too.
const TOOL_PATHS =
  /[\\/](?:npm[\\/]bin[\\/](?:npm|npx)-cli\.js|corepack[\\/]dist[\\/]\w+\.js|yarn[\\/]bin[\\/]yarn(?:\.js)?|pnpm[\\/]bin[\\/]pnpx?\.c?js|tsx[\\/]dist[\\/]cli\.m?js|\.yarn[\\/]releases[\\/][^\\/]+\.c?js|\.bin[\\/](?:npm|npx|yarn|yarnpkg|pnpm|pnpx|corepack|tsx|nodemon))$/;

/**
 * Packages whose declared bins are tools or wrappers. Read from the nearest package.json, so any install
 * layout counts (a version manager's `…/image/npm/10.9.0/bin/npm-cli.js`, corepack's cache, pnpm's store).
 * tsx's bin is only its CLI parent: the child it starts runs the user's script and is instrumented.
 */
const TOOL_PACKAGES: ReadonlySet<string> = new Set([
  'npm',
  'corepack',
  'yarn',
  '@yarnpkg/cli-dist',
  'pnpm',
  'node-gyp',
  'tsx',
  'nodemon',
  'loopwatch',
]);

/** loopwatch's own commands (the CLI and attach's door keeper), which are not bins of the package. */
const OWN_ENTRIES: ReadonlySet<string> = new Set(
  ['./cli.js', './attach/door-keeper.js'].map((f) => fileURLToPath(new URL(f, import.meta.url))),
);

/** The main script of this process (`-` when there is none). */
export function mainScript(): string {
  return process.argv[1] ?? '-';
}

function realPath(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

function binsOf(pkg: { name?: unknown; bin?: unknown }): string[] {
  if (typeof pkg.bin === 'string') return [pkg.bin];
  if (pkg.bin && typeof pkg.bin === 'object') return Object.values(pkg.bin).filter((b) => typeof b === 'string');
  return [];
}

/** Whether `file` (a real path) is a declared bin of a tool package: the nearest named package.json decides. */
function isToolBin(file: string): boolean {
  for (let dir = path.dirname(file); ;) {
    let pkg: { name?: unknown; bin?: unknown } | undefined;
    try {
      pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; bin?: unknown };
    } catch {
      pkg = undefined; // none here (or unreadable): look further up
    }
    // A nameless package.json (`{"type": "module"}` in dist/) is not a package boundary.
    if (pkg && typeof pkg.name === 'string') {
      if (!TOOL_PACKAGES.has(pkg.name)) return false;
      return binsOf(pkg).some((b) => path.resolve(dir, b) === file);
    }
    const up = path.dirname(dir);
    if (up === dir) return false;
    dir = up;
  }
}

/** Whether the process's main script is a package manager, a wrapper or loopwatch's own command. */
export function isToolScript(script: string): boolean {
  if (script === '-') return false;
  if (TOOL_PATHS.test(script)) return true;
  const real = realPath(script);
  if (real !== script && TOOL_PATHS.test(real)) return true;
  return OWN_ENTRIES.has(real) || isToolBin(real);
}

/** Whether `register` should turn loopwatch on in this process (main thread assumed). */
export function wantedHere(only: readonly string[] | undefined, script = mainScript()): boolean {
  if (isToolScript(script)) return false;
  if (!only) return true;
  return new PathGlobs(only).matches(script);
}
