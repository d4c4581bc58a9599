/**
 * `node --import loopwatch/register app.js`: reads `LOOPWATCH*` from the environment and turns the
 * chosen mode on before the application's first module loads (so its source maps are kept).
 *
 * Kept tiny on purpose: under `NODE_OPTIONS` this file is loaded by every process and every worker
 * thread, so it decides first (main thread? a process the user wants watched? a mode at all?) and only
 * then loads the instruments.
 */
import { isMainThread } from 'node:worker_threads';
import { OptionsError, optionsFromEnv, type LoopwatchOptions } from './options.js';
import { writeStderr } from './sinks/stderr.js';
import { wantedHere } from './entry.js';

let opts: LoopwatchOptions | undefined;
if (isMainThread) {
  try {
    opts = optionsFromEnv();
  } catch (e) {
    // A typo in an env var is worth one line, not a stack trace, and not a broken program.
    if (e instanceof OptionsError) writeStderr(`${e.message}; loopwatch stays off\n`);
    else throw e;
  }
}
if (opts && opts.mode !== 'off' && wantedHere(opts.only)) {
  const { enableFromOptions } = await import('./lifecycle.js');
  enableFromOptions(opts);
}
