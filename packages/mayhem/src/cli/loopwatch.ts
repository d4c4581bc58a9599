/**
 * `--debug`, `--slow-callback-ms`, `--monitor-tasks-ms` and (with `--statsd`) loop lag: turns on
 * loopwatch for this process. Changes only what the service reports, never what it does.
 */
import type { Logger } from 'pino';
import type { Config } from './config.js';

export async function enableLoopwatch(config: Config, logger: Logger): Promise<void> {
  const wanted = config.debug || config.slowCallbackMs !== undefined || config.monitorTasksMs !== undefined || config.statsd !== undefined;
  if (!wanted) return;
  const lw = await import('loopwatch');
  if (config.debug) lw.enableDebug({ slowMs: config.slowCallbackMs ?? 100 });
  else if (config.slowCallbackMs !== undefined) lw.watchSlowCallbacks({ thresholdMs: config.slowCallbackMs });
  if (config.monitorTasksMs !== undefined) lw.monitorTasks({ intervalMs: config.monitorTasksMs });
  if (config.statsd !== undefined) lw.monitorLoopLag({ statsd: config.statsd, prefix: 'mayhem.' });
  logger.info({ debug: config.debug, slowCallbackMs: config.slowCallbackMs, monitorTasksMs: config.monitorTasksMs }, 'loopwatch enabled');
}
