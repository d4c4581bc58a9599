#!/usr/bin/env node
/**
 * `mayhem run` and `mayhem publish`. Every user error is one line on stderr and exit code 2;
 * an unreachable server is one line and exit code 1; no stack traces for either.
 */
import { Command, CommanderError, Option } from 'commander';
import { runService } from '../service.js';
import { seededRandom } from '../core/timing.js';
import { openPublisher } from '../brokers/open.js';
import { runSimulatedPublisher } from '../publisher/simulated.js';
import { ConfigError, describeSetting, resolveConfig, settingsFor, type Config } from './config.js';
import { createLogger, type LoggerHandle } from './logger.js';
import { enableLoopwatch } from './loopwatch.js';

function fail(message: string, code: number): never {
  process.stderr.write(`mayhem: ${message}\n`);
  process.exit(code);
}

function addSettings(cmd: Command, command: 'run' | 'publish'): Command {
  for (const [, s] of settingsFor(command)) {
    const flag = s.kind === 'bool' ? `--${s.flag}` : `--${s.flag} <value>`;
    cmd.addOption(new Option(flag, describeSetting(s)));
  }
  return cmd.option('--config <file>', 'JSON file of settings (env MAYHEM_CONFIG); flags and env win over it');
}

function configFrom(cmd: Command, command: 'run' | 'publish'): Config {
  const flags = cmd.opts<Record<string, unknown>>();
  return resolveConfig({ flags, env: process.env, file: (flags.config as string | undefined) ?? process.env.MAYHEM_CONFIG }, command);
}

/** Runtime failures (unreachable servers, unwritable files) are one line, not a stack. */
async function runtimeFailure(err: unknown, log: LoggerHandle | undefined): Promise<never> {
  await log?.flush();
  // A setting found bad only once the service starts (an executor's) is still a bad setting: exit 2.
  fail(err instanceof Error ? err.message : String(err), err instanceof ConfigError ? 2 : 1);
}

const program = new Command('mayhem')
  .description('Mayhem Mandrill: consumes "restart this host" requests from a pub/sub and restarts hosts (mock by default)')
  .exitOverride()
  .configureOutput({ writeErr: (text) => process.stderr.write(text), outputError: () => undefined })
  .showHelpAfterError(false);

addSettings(program.command('run').description('consume restart requests until a signal (SIGHUP/SIGTERM/SIGINT) or --count'), 'run').action(async (_opts, cmd: Command) => {
  const config = configFrom(cmd, 'run');
  const log = createLogger(config.logLevel, config.logFormat);
  try {
    await enableLoopwatch(config, log.logger);
    const { exitCode } = await runService(config, log.logger);
    await log.flush();
    process.exit(exitCode);
  } catch (err) {
    await runtimeFailure(err, log);
  }
});

addSettings(program.command('publish').description('publish restart requests to an external broker').option('--raw <payload>', 'publish this exact payload (e.g. a malformed one) --count times'), 'publish').action(async (_opts, cmd: Command) => {
  const config = configFrom(cmd, 'publish');
  if (config.broker === 'memory') {
    throw new ConfigError('publish needs an external broker (--broker nats://host:port); the in-memory broker lives inside `mayhem run`, which publishes for itself');
  }
  const log = createLogger(config.logLevel, config.logFormat, 'mayhem-publish');
  try {
    const publisher = await openPublisher({ url: config.broker, logger: log.logger, stream: config.stream, subject: config.subject, replicas: config.replicas });
    const raw = cmd.opts<{ raw?: string }>().raw;
    const started = performance.now();
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // Publishes are pipelined: a bounded window of unconfirmed publishes in flight at once.
    const window = new Set<Promise<void>>();
    let failed: Error | undefined;
    const send = (payload: string, messageId?: string): void => {
      const p = publisher.publish(payload, messageId).then(
        () => { window.delete(p); },
        (err: unknown) => { window.delete(p); failed ??= err instanceof Error ? err : new Error(`publish failed: ${JSON.stringify(err)}`); stop.abort(); },
      );
      window.add(p);
    };
    const published = await runSimulatedPublisher(
      (payload, id) => (raw !== undefined ? send(raw) : send(payload, id)),
      { rate: config.rate, count: config.count, random: config.seed !== undefined ? seededRandom(config.seed) : Math.random, chunk: 256, instances: config.instances?.split(',').map((n) => n.trim()), waitForRoom: () => (window.size >= 4096 ? Promise.race(window) : undefined) },
      stop.signal,
    );
    await Promise.all(window);
    await publisher.close();
    if (failed !== undefined) throw failed;
    const seconds = (performance.now() - started) / 1000;
    log.logger.info({ published, seconds, rate: Math.round(published / seconds) }, `Published ${published} messages in ${seconds.toFixed(2)} s (${Math.round(published / seconds)}/s)`);
    await log.flush();
    process.exit(0);
  } catch (err) {
    await runtimeFailure(err, log);
  }
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') process.exit(0);
    fail(`${err.message.replace(/^error: /, '')} (see mayhem --help)`, 2);
  }
  if (err instanceof ConfigError) fail(err.message, 2);
  fail(err instanceof Error ? err.message : String(err), 1);
}
