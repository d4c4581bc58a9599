/**
 * `mayhem run` and `mayhem publish` (loaded by main.ts once the signal handlers are in place).
 * Every user error is one line on stderr and exit code 2; an unreachable server is one line and
 * exit code 1; no stack traces for either, and no credentials (every line is redacted).
 */
import { Command, CommanderError, Option } from 'commander';
import { runService } from '../service.js';
import { fullErrorText } from '../core/errors.js';
import { redactSecrets } from '../core/redact.js';
import { seededRandom } from '../core/timing.js';
import { openPublisher } from '../brokers/open.js';
import { runSimulatedPublisher } from '../publisher/simulated.js';
import {
  ConfigError,
  describeSetting,
  resolveConfig,
  settingsFor,
  type CommandName,
  type Config,
} from '../config/config.js';
import { runAudit, runPause, runReport, runResume } from './control.js';
import { runSettingsImport, runSettingsSet, runSettingsShow } from './settings-command.js';
import { runPlan } from './plan-command.js';
import { createLogger, type LoggerHandle } from './logger.js';
import { enableLoopwatch } from './loopwatch.js';
import { onExitSignal } from './signals.js';

function fail(message: string, code: number): never {
  const oneLine = redactSecrets(message).replace(/\s*\n\s*/g, ' ');
  process.stderr.write(`mayhem: ${oneLine}\n`);
  process.exit(code);
}

function addSettings(cmd: Command, command: CommandName): Command {
  for (const [, s] of settingsFor(command)) {
    if (s.kind === 'probes') {
      cmd.addOption(
        new Option(`--${s.flag} <spec>`, describeSetting(s)).argParser((v: string, prev: string[] | undefined) => [
          ...(prev ?? []),
          v,
        ]),
      );
      continue;
    }
    if (s.kind === 'bool' || s.kind === 'leash') {
      // `--dry-run`, `--dry-run true|false`, and `--no-dry-run` (which undoes MAYHEM_DRY_RUN=true).
      cmd.addOption(new Option(`--${s.flag} [bool]`, describeSetting(s)));
      cmd.addOption(new Option(`--no-${s.flag}`, `same as --${s.flag} false`));
      continue;
    }
    cmd.addOption(new Option(`--${s.flag} <${s.kind === 'file' ? 'file' : 'value'}>`, describeSetting(s)));
  }
  return cmd.option('--config <file>', 'JSON file of settings (env MAYHEM_CONFIG); flags and env win over it');
}

function configFrom(cmd: Command, command: CommandName): Config {
  const flags = cmd.opts<Record<string, unknown>>();
  return resolveConfig(
    { flags, env: process.env, file: (flags.config as string | undefined) ?? process.env.MAYHEM_CONFIG },
    command,
  );
}

/** Runtime failures (unreachable servers, unwritable files) are one line, not a stack. */
async function runtimeFailure(err: unknown, log: LoggerHandle | undefined): Promise<never> {
  await log?.flush();
  // A setting found bad only once the service starts (an executor's) is still a bad setting: exit 2.
  fail(fullErrorText(err), err instanceof ConfigError ? 2 : 1);
}

const program = new Command('mayhem')
  .description(
    'Mayhem Mandrill: consumes "restart this host" requests from a pub/sub and restarts hosts (mock by default)',
  )
  .usage('<command> [flags]')
  .exitOverride()
  .configureOutput({ writeErr: (text) => process.stderr.write(text), outputError: () => undefined })
  .showHelpAfterError(false)
  .addHelpText(
    'after',
    `
Quick start (embedded: in-memory broker with a simulated publisher, SQLite file ./mayhem.db):
  mayhem run
  mayhem run --count 10000 --publish-rate 0 --restart-latency 5ms --log-level warn

A fleet on NATS JetStream + PostgreSQL:
  mayhem run --broker nats://127.0.0.1:4222 --db postgres://postgres@127.0.0.1:5432/mayhem
  mayhem publish --broker nats://127.0.0.1:4222 --count 5000 --rate 1000

Most used flags of run (mayhem run --help lists all of them):
  --broker <url>         memory (default) or nats://host:port[,nats://host:port...]
  --db <url>             sqlite:<path> (default sqlite:./mayhem.db), postgres://user@host:port/db, memory:
  --max-in-flight <n>    messages handled at once (default 1000)
  --count <n>            stop once this many messages are settled
  --publish-rate <n>     simulated publisher, messages/s (default 2; 0 = as fast as possible)
  --restart-latency <d>  mock restart latency (default 1s)
  --dry-run [bool]       restart nothing, log what would be restarted (--no-dry-run undoes it)
  --log-level <level>    trace, debug, info (default), warn, error, fatal, silent
  --config <file>        JSON file of settings

Every flag is also an environment variable MAYHEM_<FLAG> (--max-in-flight → MAYHEM_MAX_IN_FLIGHT).
Credentials: PGPASSWORD and the other PG* variables; --nats-creds, --nats-nkey, --nats-token-file.
Exit codes: 0 done (signal or --count), 1 fatal error or unreachable server, 2 bad flags or settings,
130 a second signal during shutdown.`,
  );

addSettings(
  program.command('run').description('consume restart requests until a signal (SIGHUP/SIGTERM/SIGINT) or --count'),
  'run',
).action(async (_opts, cmd: Command) => {
  const config = configFrom(cmd, 'run');
  const log = createLogger(config.logLevel, config.logFormat);
  try {
    await enableLoopwatch(config, log.logger);
    const { exitCode } = await runService(config, log.logger);
    // The exit is under way: a signal now changes nothing (it no longer kills the process with 143).
    onExitSignal(() => undefined);
    await log.flush();
    process.exit(exitCode);
  } catch (err) {
    await runtimeFailure(err, log);
  }
});

addSettings(
  program
    .command('publish')
    .description('publish restart requests to an external broker')
    .option('--raw <payload>', 'publish this exact payload (e.g. a malformed one) --count times'),
  'publish',
).action(async (_opts, cmd: Command) => {
  const config = configFrom(cmd, 'publish');
  if (config.broker === 'memory') {
    throw new ConfigError(
      'publish needs an external broker (--broker nats://host:port); the in-memory broker lives inside `mayhem run`, which publishes for itself',
    );
  }
  const log = createLogger(config.logLevel, config.logFormat, 'mayhem-publish');
  try {
    const stop = new AbortController();
    // A signal stops publishing (what was sent is confirmed first); a second one exits now.
    onExitSignal((signal) => {
      if (!stop.signal.aborted) {
        log.logger.info({ signal }, `Received ${signal}; stopping after the publishes in flight`);
        stop.abort();
        return;
      }
      log.logger.warn(`Received ${signal} again; exiting now (130)`);
      void log.flush().then(() => process.exit(130));
    });
    const publisher = await openPublisher({
      url: config.broker,
      logger: log.logger,
      stream: config.stream,
      subject: config.subject,
      replicas: config.replicas,
      auth: { credsFile: config.natsCreds, nkeyFile: config.natsNkey, tokenFile: config.natsTokenFile },
    });
    const raw = cmd.opts<{ raw?: string }>().raw;
    const started = performance.now();
    // Publishes are pipelined: a bounded window of unconfirmed publishes in flight at once.
    const window = new Set<Promise<void>>();
    let failed: Error | undefined;
    const send = (payload: string, messageId?: string): void => {
      const p = publisher.publish(payload, messageId).then(
        () => {
          window.delete(p);
        },
        (err: unknown) => {
          window.delete(p);
          failed ??= err instanceof Error ? err : new Error(`publish failed: ${JSON.stringify(err)}`);
          stop.abort();
        },
      );
      window.add(p);
    };
    const published = await runSimulatedPublisher(
      (payload, id) => (raw !== undefined ? send(raw) : send(payload, id)),
      {
        rate: config.rate,
        count: config.count,
        random: config.seed !== undefined ? seededRandom(config.seed) : Math.random,
        chunk: 256,
        instances: config.instances?.split(',').map((n) => n.trim()),
        pick: config.pick,
        waitForRoom: () => (window.size >= 4096 ? Promise.race(window) : undefined),
      },
      stop.signal,
    );
    await Promise.all(window);
    await publisher.close();
    if (failed !== undefined) throw failed;
    const seconds = (performance.now() - started) / 1000;
    log.logger.info(
      { published, seconds, rate: Math.round(published / seconds) },
      `Published ${published} messages in ${seconds.toFixed(2)} s (${Math.round(published / seconds)}/s)`,
    );
    await log.flush();
    process.exit(0);
  } catch (err) {
    await runtimeFailure(err, log);
  }
});

for (const [name, description, action] of [
  ['pause', 'stop every restart of every instance on --db within a second (the kill switch); messages wait', runPause],
  ['resume', 'let restarts run again on every instance on --db', runResume],
  [
    'audit',
    'print the audit trail of --db: one row per decision (restarted, failed, skipped, deferred, leashed, ...)',
    runAudit,
  ],
  [
    'report',
    "write an experiment's report (verdict, restarts by outcome, per-host timeline, probes over time): --format md|html|json, --out FILE",
    runReport,
  ],
] as const) {
  addSettings(program.command(name).description(description), name).action(async (_opts, cmd: Command) => {
    const config = configFrom(cmd, name);
    try {
      process.stdout.write(await action(config));
      process.exit(0);
    } catch (err) {
      await runtimeFailure(err, undefined);
    }
  });
}

addSettings(
  program
    .command('plan')
    .description(
      'what mayhem run would do with the requests pending (--from-stream, nothing taken) or in --requests FILE: every rail on simulated time, and the argv / URL / container each restart would act on',
    ),
  'plan',
).action(async (_opts, cmd: Command) => {
  const config = configFrom(cmd, 'plan');
  try {
    process.stdout.write(await runPlan(config));
    process.exit(0);
  } catch (err) {
    await runtimeFailure(err, undefined);
  }
});

// `mayhem settings show|set|import FILE`: the fleet's settings in its database.
const settings = program
  .command('settings')
  .description("the fleet's settings (leash, rails, probes) in --db: show, set (flags; --unset NAME), import FILE");
for (const [name, description] of [
  ['show', "print the fleet's settings (--json: as `settings import` reads them)"],
  ['set', "change the fleet's settings given as flags (audited); running instances follow within a second"],
  ['import', "replace the fleet's settings with a JSON file's (audited)"],
] as const) {
  const sub = addSettings(settings.command(name).description(description), 'settings');
  if (name === 'import') sub.argument('<file>', 'JSON settings (as `mayhem settings show --json` writes)');
  sub.action(async (...args: unknown[]) => {
    const cmd = args.at(-1) as Command;
    const config = configFrom(cmd, 'settings');
    try {
      process.stdout.write(
        name === 'show'
          ? await runSettingsShow(config)
          : name === 'set'
            ? await runSettingsSet(config)
            : await runSettingsImport(config, args[0] as string),
      );
      process.exit(0);
    } catch (err) {
      await runtimeFailure(err, undefined);
    }
  });
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
      process.exit(0);
    fail(`${err.message.replace(/^error: /, '')} (see mayhem --help)`, 2);
  }
  if (err instanceof ConfigError) fail(err.message, 2);
  fail(fullErrorText(err), 1);
}
