/**
 * What an executor would act on for one restart, exactly, without acting: the argv a command would
 * run, the request a webhook or Docker would get (method, URL, headers with their secret values
 * masked), for the preview (`mayhem plan`). Built from the same templates and renderers the
 * executors use; settings are checked as `openExecutor` checks them (nothing connects).
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.js';
import { redactSecrets } from '../core/redact.js';
import { fillFields, parseArgvTemplate, renderArgs, TemplateError } from './argv-template.js';
import { DEFAULT_DOCKER_HOST, parseContainerTemplate, parseDockerHost } from './docker.js';
import { idempotencyKey, parseHeaders } from './headers.js';
import { FIXED_HEADERS, parseUrlTemplate, renderPath } from './http.js';
import type { ExecutorSettings } from './open.js';
import { seconds } from './outcome.js';

export type RestartTarget =
  | { readonly kind: 'mock'; readonly what: string }
  | {
      readonly kind: 'command';
      readonly argv: readonly string[];
      /** What the command gets besides mayhem's environment. */
      readonly env: Readonly<Record<string, string>>;
    }
  | {
      readonly kind: 'http' | 'docker';
      readonly method: 'POST';
      readonly url: string;
      readonly headers: Readonly<Record<string, string>>;
    };

/** Who a restart is for. */
export interface TargetOf {
  readonly host: string;
  readonly instanceName: string;
  readonly messageId: string;
}

/** The describer of `s`'s executor; a bad setting is a ConfigError (exit 2), as at `mayhem run`. */
export function restartTargets(
  s: ExecutorSettings,
  env: NodeJS.ProcessEnv = process.env,
): (t: TargetOf) => RestartTarget {
  const bad = (err: unknown, what: string): never => {
    throw new ConfigError(`${what}${(err as Error).message}`);
  };
  switch (s.executor) {
    case 'mock':
      return () => ({
        kind: 'mock',
        what: `the mock: waits up to ${seconds(s.restartLatency)}, fails at rate ${s.restartFailureRate}; restarts nothing`,
      });
    case 'command': {
      if (s.restartCommand === undefined) throw new ConfigError('--executor command needs --restart-command');
      const text = s.restartCommand;
      let template: ReturnType<typeof parseArgvTemplate> | undefined;
      if (!s.restartShell) {
        try {
          template = parseArgvTemplate(text);
        } catch (err) {
          if (err instanceof TemplateError) bad(err, 'invalid --restart-command: ');
          throw err;
        }
      }
      return ({ host, instanceName, messageId }) => ({
        kind: 'command',
        argv:
          template === undefined
            ? ['/bin/sh', '-c', text]
            : [template.program, ...renderArgs(template, { host, instance: instanceName })],
        env: { MAYHEM_HOST: host, MAYHEM_INSTANCE: instanceName, MAYHEM_MESSAGE_ID: messageId },
      });
    }
    case 'http': {
      if (s.restartUrl === undefined) throw new ConfigError('--executor http needs --restart-url');
      let url: ReturnType<typeof parseUrlTemplate>;
      let names: string[] = [];
      try {
        url = parseUrlTemplate(s.restartUrl);
        if (s.restartHeaders !== undefined)
          names = Object.keys(parseHeaders(readFileSync(s.restartHeaders, 'utf8'), s.restartHeaders));
      } catch (err) {
        return bad(err, '');
      }
      const secret = Object.fromEntries(names.map((n) => [n, '***']));
      return ({ host, instanceName, messageId }) => ({
        kind: 'http',
        method: 'POST',
        url: redactSecrets(url.origin + renderPath(url, { host, instance: instanceName })),
        headers: { ...secret, ...FIXED_HEADERS, 'idempotency-key': idempotencyKey(messageId) },
      });
    }
    case 'docker': {
      let endpoint: ReturnType<typeof parseDockerHost>;
      let container: ReturnType<typeof parseContainerTemplate>;
      try {
        endpoint = parseDockerHost(s.dockerHost ?? (env['DOCKER_HOST'] || undefined) ?? DEFAULT_DOCKER_HOST, env);
        container = parseContainerTemplate(s.container);
      } catch (err) {
        return bad(err, '');
      }
      const t = Math.ceil(s.dockerStopTimeout / 1000);
      return ({ host, instanceName }) => ({
        kind: 'docker',
        method: 'POST',
        url: `${endpoint.url}/containers/${encodeURIComponent(fillFields(container, { host, instance: instanceName }))}/restart?t=${t}`,
        headers: {},
      });
    }
  }
}

/** One line: `argv: ssh web-1.example.net sudo reboot`, `POST https://ops/restart/web-1 (headers …)`. */
export function describeTarget(t: RestartTarget): string {
  switch (t.kind) {
    case 'mock':
      return t.what;
    case 'command':
      return `argv: ${t.argv.map(shellWord).join(' ')}`;
    case 'http':
    case 'docker': {
      const headers = Object.entries(t.headers).map(([k, v]) => `${k}: ${v}`);
      return `${t.method} ${t.url}${headers.length > 0 ? ` (${headers.join('; ')})` : ''}`;
    }
  }
}

/** An argument as a shell would need it quoted to mean the same (for reading, never run). */
function shellWord(a: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}
