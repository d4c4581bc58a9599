/**
 * Which processes `loopwatch/register` instruments. Loaded through `NODE_OPTIONS`, the register file
 * runs in every node process of a command line (npm, npx, the test runner and each of its children)
 * and in every worker thread:
 *  - worker threads get nothing: loopwatch watches the main thread's loop (a worker's own stalls show
 *    as nothing on the main loop, and a worker must behave exactly as without loopwatch);
 *  - package managers (npm, npx, yarn, pnpm, corepack) are never what a user means to watch;
 *  - `LOOPWATCH_ONLY=glob[,glob]` narrows it to the main scripts that match (e.g. `dist/server.js`,
 *    `**\/*.test.js`); a process without a main script (`node -e`, the REPL) matches only `-`.
 */
import { PathGlobs } from './model/glob.js';

const TOOLS =
  /[\\/](?:npm[\\/]bin[\\/](?:npm|npx)-cli\.js|corepack[\\/]dist[\\/]\w+\.js|yarn[\\/]bin[\\/]yarn(?:\.js)?|pnpm[\\/]bin[\\/]pnpm\.c?js|\.bin[\\/](?:npm|npx|yarn|pnpm))$/;

/** The main script of this process (`-` when there is none). */
export function mainScript(): string {
  return process.argv[1] ?? '-';
}

/** Whether `register` should turn loopwatch on in this process (main thread assumed). */
export function wantedHere(only: readonly string[] | undefined, script = mainScript()): boolean {
  if (TOOLS.test(script)) return false;
  if (!only) return true;
  return new PathGlobs(only).matches(script);
}
