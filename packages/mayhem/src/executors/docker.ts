/**
 * `--executor docker`: restarts a container through the Docker Engine API —
 * `POST /containers/{name}/restart?t=<stop timeout>` — on the daemon's Unix socket (or a `tcp://`
 * endpoint), like `docker restart`. The daemon is `--docker-host`, else `DOCKER_HOST`, else
 * `unix:///var/run/docker.sock`; the container is named by a template (`--container`, default
 * `{instance}`), checked against Docker's name rule before any request.
 *
 * What the pipeline is told (the outcome it resolves with, core/restart-outcome.ts):
 * - 204 (any 2xx): `restarted`.
 * - 404 (no such container) and other 4xx, or a name Docker would not accept: refused for good → `rejected`.
 * - 5xx: the daemon failed the restart → `not-restarted` (retried).
 * - no connection, or still queued when the timeout or shutdown came: never sent → `not-restarted`
 *   (with its `resource` when the machine was short of descriptors or memory) / `cancelled`.
 * - sent and no answer in time, the connection lost, or shutdown: `unknown` → in doubt. The Engine
 *   API has no idempotency key, so unlike the webhook a request that may have arrived is never sent
 *   again for the same message.
 */
import { Pool } from 'undici';
import type { Logger } from 'pino';
import type { RestartContext, RestartExecutor } from '../core/contracts.js';
import { errorText } from '../core/errors.js';
import {
  cancelled,
  notRestarted,
  outcomeUnknown,
  rejected,
  RESTARTED,
  type RestartOutcome,
} from '../core/restart-outcome.js';
import { fillFields, splitFields, type FieldText } from './argv-template.js';
import { describeResourceFault, resourceFaultOf } from '../core/resource-fault.js';
import { bodyLine, closePool, httpCall, HttpCallError } from './http-call.js';
import { instanceOf, seconds } from './outcome.js';

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

export interface DockerEndpoint {
  /** As given, for messages. */
  readonly url: string;
  readonly origin: string;
  readonly socketPath?: string;
}

/** `unix:///path` or `tcp://host:port`; throws an Error with a one-line reason. */
export function parseDockerHost(text: string, env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  if (text.startsWith('unix://')) {
    const socketPath = text.slice('unix://'.length);
    if (!socketPath.startsWith('/'))
      throw new Error(`Docker host ${JSON.stringify(text)}: expected unix:///absolute/path/to/docker.sock`);
    return { url: text, origin: 'http://localhost', socketPath };
  }
  const tcp = /^tcp:\/\/([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})\/?$/.exec(text);
  if (tcp !== null) {
    if (env['DOCKER_TLS_VERIFY'] !== undefined && env['DOCKER_TLS_VERIFY'] !== '' && env['DOCKER_TLS_VERIFY'] !== '0') {
      throw new Error(
        `Docker host ${text} with DOCKER_TLS_VERIFY: TLS to the Docker daemon is not supported; use its Unix socket (e.g. through an SSH tunnel: ssh -L /tmp/docker.sock:/var/run/docker.sock host)`,
      );
    }
    return { url: text, origin: `http://${tcp[1]}:${tcp[2]}` };
  }
  throw new Error(`Docker host ${JSON.stringify(text)}: expected unix:///path/to/docker.sock or tcp://host:port`);
}

/** `--container`: text with `{instance}`/`{host}` anywhere; throws an Error with a one-line reason. */
export function parseContainerTemplate(text: string): FieldText {
  const parts = splitFields(text, '--container');
  if (!CONTAINER_NAME.test(fillFields(parts, { host: 'x', instance: 'x' }))) {
    throw new Error(
      `--container ${JSON.stringify(text)} does not make a valid container name (letters, digits, _ . -, starting with a letter or digit)`,
    );
  }
  return parts;
}

// Docker's rule for container names (an id matches it too).
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,253}$/;

export interface DockerExecutorOptions {
  readonly endpoint: DockerEndpoint;
  readonly container: FieldText;
  /** `t`: seconds Docker waits for the container to stop before it kills it. */
  readonly stopTimeoutSeconds: number;
  /** The whole request, stop and start included. */
  readonly timeoutMs: number;
  readonly logger: Logger;
}

export class DockerRestartExecutor implements RestartExecutor {
  readonly #o: DockerExecutorOptions;
  readonly #pool: Pool;

  constructor(options: DockerExecutorOptions) {
    this.#o = options;
    const backstop = options.timeoutMs + 1000;
    this.#pool = new Pool(options.endpoint.origin, {
      ...(options.endpoint.socketPath !== undefined ? { socketPath: options.endpoint.socketPath } : {}),
      connections: 32,
      headersTimeout: backstop,
      bodyTimeout: backstop,
      connect: { timeout: Math.min(options.timeoutMs, 10_000) },
    });
  }

  /** `GET /_ping` (at start): resolves, or rejects with a one-line reason the daemon cannot be used. */
  async ping(timeoutMs = 5000): Promise<void> {
    const where = `the Docker Engine at ${this.#o.endpoint.url}`;
    let status: number;
    let body: string;
    try {
      ({ status, body } = await httpCall(
        this.#pool,
        { method: 'GET', path: '/_ping' },
        { timeoutMs, signal: new AbortController().signal },
      ));
    } catch (err) {
      throw new Error(`cannot reach ${where}: ${errorText(err)}`);
    }
    if (status !== 200)
      throw new Error(`${where} answered /_ping with HTTP ${status}${body ? `: ${bodyLine(body)}` : ''}`);
  }

  async restart(hostname: string, signal: AbortSignal, context?: RestartContext): Promise<RestartOutcome> {
    if (signal.aborted) return cancelled(`Restart of ${hostname} cancelled before its request was sent`);
    const name = fillFields(this.#o.container, { host: hostname, instance: instanceOf(hostname, context) });
    if (!CONTAINER_NAME.test(name))
      return rejected(`${JSON.stringify(name)} is not a valid container name (for ${hostname})`);
    const path = `/containers/${encodeURIComponent(name)}/restart?t=${this.#o.stopTimeoutSeconds}`;
    const what = `container ${name} (for ${hostname})`;
    let status: number;
    let body: string;
    try {
      ({ status, body } = await httpCall(
        this.#pool,
        { method: 'POST', path },
        { timeoutMs: this.#o.timeoutMs, signal },
      ));
    } catch (err) {
      // Anything but the call's own failure is a bug: it goes to the central handler, not the table.
      if (!(err instanceof HttpCallError)) throw err;
      if (err.stage === 'not-sent') {
        // No connection for want of descriptors or memory: retried until there are (not a fault of the far end).
        const resource = resourceFaultOf(err);
        if (resource !== undefined)
          return notRestarted(
            `could not connect for the restart of ${hostname}: ${describeResourceFault(resource)}`,
            resource,
          );
        if (err.why === 'abort') return cancelled(`Restart of ${what} cancelled before its request was sent`);
        return notRestarted(
          err.why === 'timeout'
            ? `could not reach the Docker Engine at ${this.#o.endpoint.url} within ${seconds(this.#o.timeoutMs)}`
            : `could not reach the Docker Engine at ${this.#o.endpoint.url}: ${err.message}`,
        );
      }
      if (err.why === 'abort')
        return outcomeUnknown(
          `the restart of ${what} was sent to Docker and shutdown came before its answer; it may have been restarted`,
          true,
        );
      return outcomeUnknown(
        err.why === 'timeout'
          ? `Docker did not answer the restart of ${what} within ${seconds(this.#o.timeoutMs)}; it may have been restarted`
          : `the connection to Docker failed during the restart of ${what}: ${err.message}; it may have been restarted`,
      );
    }
    if (status >= 200 && status < 300) return RESTARTED;
    const reason = `Docker answered HTTP ${status} to the restart of ${what}: ${engineMessage(body)}`;
    return status >= 500 ? notRestarted(reason) : rejected(reason);
  }

  /** Close the pool's connections (after the last restart); requests still open get 2 s. */
  close(): Promise<void> {
    return closePool(this.#pool);
  }
}

/** The Engine API's errors are `{"message": "..."}`. */
function engineMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return bodyLine(parsed.message);
  } catch {
    // not JSON: the text itself
  }
  return bodyLine(body) || '(no message)';
}
