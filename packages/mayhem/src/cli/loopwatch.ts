/**
 * `--debug`, `--slow-callback-ms`, `--monitor-tasks-ms` and (with `--statsd`) loop lag: turns on
 * loopwatch for this process. It changes only what the service reports, never what it does.
 * Reports go to stderr, as JSON lines when the log is JSON, as text on a terminal.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/config.js';

export async function enableLoopwatch(config: Config, logger: Logger): Promise<void> {
  const wanted =
    config.debug ||
    config.slowCallbackMs !== undefined ||
    config.monitorTasksMs !== undefined ||
    config.statsd !== undefined;
  if (!wanted) return;
  const lw = await import('loopwatch');
  if (lw.activeMode() !== 'off' && !config.debug) {
    // Already on via `node --import loopwatch/register`; its env settings win.
    logger.info({ mode: lw.activeMode() }, 'loopwatch already enabled by LOOPWATCH');
    return;
  }
  const format =
    config.logFormat === 'json' || (config.logFormat === 'auto' && process.stdout.isTTY !== true) ? 'json' : 'text';
  if (config.debug) {
    // Attachable (`loopwatch top <pid>`) unless LOOPWATCH_ATTACH=0, as under `loopwatch/register`.
    const attach = lw.attachSettingOf(process.env['LOOPWATCH_ATTACH']);
    lw.enableDebug({
      slowMs: config.slowCallbackMs ?? 100,
      monitorMs: config.monitorTasksMs,
      statsd: config.statsd,
      format,
      attach,
    });
  } else {
    if (config.slowCallbackMs !== undefined) lw.watchSlowCallbacks({ thresholdMs: config.slowCallbackMs });
    if (config.monitorTasksMs !== undefined) lw.monitorTasks({ intervalMs: config.monitorTasksMs });
    if (config.statsd !== undefined) lw.monitorLoopLag({ statsd: config.statsd, prefix: 'mayhem.' });
  }
  logger.info(
    {
      debug: config.debug,
      slowCallbackMs: config.slowCallbackMs,
      monitorTasksMs: config.monitorTasksMs,
      loopLagToStatsd: config.statsd !== undefined,
    },
    'loopwatch enabled',
  );
}
