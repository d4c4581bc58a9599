/**
 * `--executor` and its settings → a RestartExecutor, validated at start. The one place that knows
 * every executor. A bad setting is a {@link ConfigError} (one line, exit 2) before anything connects;
 * a Docker daemon that does not answer is an Error (exit 1), like an unreachable broker.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Metrics, RestartContext, RestartExecutor } from '../core/contracts.js';
import { ConfigError } from '../core/errors.js';
import type { RestartOutcome, RestartOutcomeKind } from '../core/restart-outcome.js';
import { noopMetrics } from '../metrics/noop.js';
import { parseArgvTemplate, placeholdersIn, TemplateError } from './argv-template.js';
import { parseEnvNames } from './child-env.js';
import { CommandRestartExecutor, findProgram } from './command.js';
import { DEFAULT_DOCKER_HOST, DockerRestartExecutor, parseContainerTemplate, parseDockerHost } from './docker.js';
import { parseHeaders } from './headers.js';
import { HttpRestartExecutor, parseUrlTemplate } from './http.js';
import type { ExecutorKind } from './kinds.js';
import { MockRestartExecutor } from './mock.js';
import { seconds } from './outcome.js';

/** The settings executors read (the service passes its Config, which has these and more). */
export interface ExecutorSettings {
  readonly executor: ExecutorKind;
  readonly restartLatency: number;
  readonly restartFailureRate: number;
  readonly restartCommand: string | undefined;
  readonly restartShell: boolean;
  /** `--restart-env`: comma-separated names passed on to the command (see child-env.ts). */
  readonly restartEnv?: string | undefined;
  readonly restartTimeout: number;
  readonly restartUrl: string | undefined;
  readonly restartHeaders: string | undefined;
  readonly container: string;
  readonly dockerHost: string | undefined;
  readonly dockerStopTimeout: number;
  readonly httpMaxCalls: number;
}

export interface OpenedExecutor {
  readonly executor: RestartExecutor;
  /** One line for the start-up log: which executor, and its settings without secrets. */
  readonly description: string;
  /** Release connections (after the last restart has ended). */
  close(): Promise<void>;
}

export interface OpenExecutorDeps {
  readonly logger: Logger;
  readonly random: () => number;
  readonly env?: NodeJS.ProcessEnv;
}

/** Check the settings, build the executor and, for Docker, make sure the daemon answers. */
export async function openExecutor(s: ExecutorSettings, deps: OpenExecutorDeps): Promise<OpenedExecutor> {
  const env = deps.env ?? process.env;
  checkUnused(s);
  return build(s, deps, env);
}

// A flag for another executor is a mistake worth stopping for: the user believes something runs that does not.
function checkUnused(s: ExecutorSettings): void {
  const given: [string, boolean, ExecutorKind][] = [
    ['--restart-command', s.restartCommand !== undefined, 'command'],
    ['--restart-shell', s.restartShell, 'command'],
    ['--restart-env', s.restartEnv !== undefined, 'command'],
    ['--restart-url', s.restartUrl !== undefined, 'http'],
    ['--restart-headers', s.restartHeaders !== undefined, 'http'],
    ['--docker-host', s.dockerHost !== undefined, 'docker'],
  ];
  for (const [flag, set, kind] of given) {
    if (set && s.executor !== kind)
      throw new ConfigError(
        `${flag} is for --executor ${kind}, but the executor is ${s.executor}; add --executor ${kind} (or drop ${flag})`,
      );
  }
}

async function build(s: ExecutorSettings, deps: OpenExecutorDeps, env: NodeJS.ProcessEnv): Promise<OpenedExecutor> {
  const { logger } = deps;
  const nothing = (): Promise<void> => Promise.resolve();
  switch (s.executor) {
    case 'mock': {
      const mock = new MockRestartExecutor({
        latencyMs: s.restartLatency,
        failureRate: s.restartFailureRate,
        random: deps.random,
      });
      return {
        executor: mock,
        description: `mock (latency up to ${seconds(s.restartLatency)}, failure rate ${s.restartFailureRate}; restarts nothing)`,
        close: () => Promise.resolve(mock.close()),
      };
    }
    case 'command': {
      if (s.restartCommand === undefined || s.restartCommand.trim() === '')
        throw new ConfigError(
          "--executor command needs --restart-command, e.g. --restart-command 'ssh {host} sudo systemctl reboot'",
        );
      let template;
      if (s.restartShell) {
        const found = placeholdersIn(s.restartCommand);
        if (found.length > 0)
          throw new ConfigError(
            `with --restart-shell the fields are environment variables, never text in the command: use "$MAYHEM_HOST" / "$MAYHEM_INSTANCE" instead of ${found[0]}`,
          );
        template = parseArgvTemplate('/bin/sh');
      } else {
        try {
          template = parseArgvTemplate(s.restartCommand);
        } catch (err) {
          if (err instanceof TemplateError) throw new ConfigError(`invalid --restart-command: ${err.message}`);
          throw err;
        }
      }
      const found = findProgram(template.program, env);
      if ('error' in found) throw new ConfigError(`invalid --restart-command: its program ${found.error}`);
      let passEnv: string[] = [];
      if (s.restartEnv !== undefined) {
        const parsed = parseEnvNames(s.restartEnv);
        if ('error' in parsed) throw new ConfigError(`invalid --restart-env: ${parsed.error}`);
        passEnv = parsed.names;
      }
      const executor = new CommandRestartExecutor({
        template,
        shellCommand: s.restartShell ? s.restartCommand : undefined,
        timeoutMs: s.restartTimeout,
        logger,
        env,
        passEnv,
      });
      const what = s.restartShell
        ? 'run by /bin/sh -c, fields as MAYHEM_* environment variables'
        : `program ${found.path}${template.fields.length > 0 ? `, fields ${template.fields.map((f) => `{${f}}`).join(' ')}` : ''}`;
      return { executor, description: `command (${what}; timeout ${seconds(s.restartTimeout)})`, close: nothing };
    }
    case 'http': {
      if (s.restartUrl === undefined)
        throw new ConfigError(
          '--executor http needs --restart-url, e.g. --restart-url https://ops.example/restart/{host}',
        );
      let url;
      try {
        url = parseUrlTemplate(s.restartUrl);
      } catch (err) {
        throw new ConfigError((err as Error).message);
      }
      let headers: Record<string, string> = {};
      if (s.restartHeaders !== undefined) {
        let text: string;
        try {
          text = readFileSync(s.restartHeaders, 'utf8');
        } catch (err) {
          throw new ConfigError(
            `cannot read --restart-headers ${s.restartHeaders}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          );
        }
        try {
          headers = parseHeaders(text, s.restartHeaders);
        } catch (err) {
          throw new ConfigError(`invalid --restart-headers: ${(err as Error).message}`);
        }
      }
      const executor = new HttpRestartExecutor({
        url,
        headers,
        timeoutMs: s.restartTimeout,
        logger,
        maxCalls: s.httpMaxCalls,
      });
      const names = Object.keys(headers);
      return {
        executor,
        description: `http (POST ${url.display}${names.length > 0 ? `, headers ${names.join(', ')} from ${s.restartHeaders}` : ''}; timeout ${seconds(s.restartTimeout)}; at most ${s.httpMaxCalls} calls per message)`,
        close: () => executor.close(),
      };
    }
    case 'docker': {
      const host = s.dockerHost ?? (env['DOCKER_HOST'] || undefined) ?? DEFAULT_DOCKER_HOST;
      let endpoint;
      let container;
      try {
        endpoint = parseDockerHost(host, env);
        container = parseContainerTemplate(s.container);
      } catch (err) {
        throw new ConfigError((err as Error).message);
      }
      if (s.restartTimeout <= s.dockerStopTimeout) {
        throw new ConfigError(
          `--restart-timeout (${seconds(s.restartTimeout)}) must be longer than --docker-stop-timeout (${seconds(s.dockerStopTimeout)}): Docker's restart waits that long for the container to stop, then starts it`,
        );
      }
      const executor = new DockerRestartExecutor({
        endpoint,
        container,
        stopTimeoutSeconds: Math.ceil(s.dockerStopTimeout / 1000),
        timeoutMs: s.restartTimeout,
        logger,
      });
      try {
        await executor.ping();
      } catch (err) {
        await executor.close().catch(() => undefined);
        throw err;
      }
      return {
        executor,
        description: `docker (${endpoint.url}, container ${s.container}, stop timeout ${seconds(s.dockerStopTimeout)}; timeout ${seconds(s.restartTimeout)})`,
        close: () => executor.close(),
      };
    }
  }
}

/**
 * Times every restart call into `restart_duration`, labelled by its outcome (unless `metrics` is the
 * no-op). A call that rejects (a bug) is timed as `unknown`, then passed on as it came.
 */
export function withRestartTimings(inner: RestartExecutor, metrics: Metrics): RestartExecutor {
  if (metrics === noopMetrics) return inner;
  return {
    restart(hostname: string, signal: AbortSignal, context?: RestartContext): Promise<RestartOutcome> {
      const started = performance.now();
      return inner.restart(hostname, signal, context).then(
        (outcome) => {
          metrics.timing('restart_duration', performance.now() - started, TIMING_LABEL[outcome.kind]);
          return outcome;
        },
        (err: unknown) => {
          metrics.timing('restart_duration', performance.now() - started, 'unknown');
          throw err;
        },
      );
    },
  };
}

// The metric's labels predate the outcome's names: `failed` is `not-restarted` (could not start included).
const TIMING_LABEL: Readonly<Record<RestartOutcomeKind, string>> = {
  restarted: 'restarted',
  'not-restarted': 'failed',
  rejected: 'rejected',
  cancelled: 'cancelled',
  unknown: 'unknown',
};
