/**
 * `node --import loopwatch/register app.js`: reads `LOOPWATCH*` from the environment and turns the
 * chosen mode on before the application's first module loads (so its source maps are kept).
 */
import { OptionsError, optionsFromEnv, type LoopwatchOptions } from './options.js';
import { enableDebug, enableProduction } from './lifecycle.js';
import { writeStderr } from './sinks/stderr.js';

let opts: LoopwatchOptions | undefined;
try {
  opts = optionsFromEnv();
} catch (e) {
  // A typo in an env var is worth one line, not a stack trace, and not a broken program.
  if (e instanceof OptionsError) writeStderr(`${e.message}; loopwatch stays off\n`);
  else throw e;
}
if (opts && opts.mode !== 'off') {
  const common = {
    slowMs: opts.slowMs,
    format: opts.format,
    ...(opts.monitorMs === undefined ? {} : { monitorMs: opts.monitorMs }),
    ...(opts.statsd === undefined ? {} : { statsd: opts.statsd }),
  };
  if (opts.mode === 'debug') enableDebug(common);
  else enableProduction(common);
}
