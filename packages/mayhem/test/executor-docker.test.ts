/**
 * `--executor docker` against an Engine-API-compatible endpoint this test serves on a Unix socket
 * (no Docker daemon runs on the development and CI machines): `GET /_ping` and
 * `POST /containers/{name}/restart?t=N`, answered the way dockerd answers them (204; 404 and 500
 * with `{"message": …}`). `DOCKER_HOST` unix:// and tcp:// are both exercised.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/config.js';
import { DockerRestartExecutor, parseContainerTemplate, parseDockerHost } from '../src/executors/docker.js';
import { openExecutor, type ExecutorSettings, type OpenedExecutor } from '../src/executors/open.js';
import { executorPipeline } from './helpers/executor-pipeline.js';
import { capturingLogger } from './pipeline-harness.js';

/** The part of the Docker Engine API the executor uses, with containers that can be made to misbehave. */
class FakeEngine {
  readonly containers = new Map<string, { restarts: number }>();
  readonly requests: string[] = [];
  /** Next restart answers: 'hang' never answers; a number is an error status. */
  readonly plan: ('hang' | number)[] = [];
  readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      this.requests.push(`${req.method} ${req.url}`);
      const url = new URL(req.url ?? '/', 'http://docker');
      if (req.method === 'GET' && url.pathname === '/_ping')
        return void res.writeHead(200, { 'content-type': 'text/plain', 'api-version': '1.45' }).end('OK');
      const m = /^\/containers\/([^/]+)\/restart$/.exec(url.pathname);
      if (req.method !== 'POST' || m === null) return json(res, 404, { message: 'page not found' });
      const name = decodeURIComponent(m[1]!);
      const next = this.plan.shift();
      if (next === 'hang') return;
      if (typeof next === 'number')
        return json(res, next, { message: `Cannot restart container ${name}: simulated failure` });
      const c = this.containers.get(name);
      if (c === undefined) return json(res, 404, { message: `No such container: ${name}` });
      c.restarts += 1;
      res.writeHead(204).end();
    });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}

const dir = mkdtempSync(join(tmpdir(), 'mayhem-docker-'));
const socket = join(dir, 'docker.sock');
const engine = new FakeEngine();
const opened: OpenedExecutor[] = [];

beforeAll(() => new Promise<void>((r) => engine.server.listen(socket, r)));
afterEach(() => {
  engine.requests.length = 0;
  engine.plan.length = 0;
  engine.containers.clear();
});
afterAll(async () => {
  await Promise.all(opened.map((o) => o.close()));
  engine.server.closeAllConnections();
  await new Promise((r) => engine.server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const settings = (s: Partial<ExecutorSettings> = {}): ExecutorSettings => ({
  executor: 'docker',
  restartLatency: 0,
  restartFailureRate: 0,
  restartCommand: undefined,
  restartShell: false,
  restartTimeout: 15_000,
  restartUrl: undefined,
  restartHeaders: undefined,
  container: 'app-{instance}',
  dockerHost: undefined,
  dockerStopTimeout: 10_000,
  httpMaxCalls: 3,
  ...s,
});

async function open(
  s: Partial<ExecutorSettings> = {},
  env: NodeJS.ProcessEnv = { DOCKER_HOST: `unix://${socket}` },
): Promise<OpenedExecutor> {
  const o = await openExecutor(settings(s), { logger: capturingLogger().logger, random: Math.random, env });
  opened.push(o);
  return o;
}

describe('docker executor (Engine API on a Unix socket)', () => {
  it('DOCKER_HOST unix://: pings at start, restarts the named container with ?t=, acked through the pipeline', async () => {
    engine.containers.set('app-web-1', { restarts: 0 });
    const o = await open();
    expect(engine.requests).toEqual(['GET /_ping']);
    expect(o.description).toBe(`docker (unix://${socket}, container app-{instance}, stop timeout 10s; timeout 15s)`);
    const p = executorPipeline(o.executor);
    const id = p.publish('web-1');
    expect(await p.handleNext()).toBe('acked');
    expect(engine.requests.at(-1)).toBe('POST /containers/app-web-1/restart?t=10');
    expect(engine.containers.get('app-web-1')).toEqual({ restarts: 1 });
    expect(p.storage.records.get(id)).toMatchObject({ restarted: true, acked: true });
  });

  it("no such container (404): refused for good, dead-lettered at once with the daemon's message", async () => {
    const o = await open();
    const p = executorPipeline(o.executor);
    p.publish('web-9');
    expect(await p.handleNext()).toBe('dead-lettered');
    expect(engine.requests.filter((r) => r.startsWith('POST'))).toHaveLength(1);
    expect(p.storage.deadLetters.map((d) => d.reason)).toEqual([
      'rejected: Docker answered HTTP 404 to the restart of container app-web-9 (for web-9.example.net): No such container: app-web-9',
    ]);
  });

  it('a daemon error (500) is retried, then the restart goes through', async () => {
    engine.containers.set('app-web-1', { restarts: 0 });
    engine.plan.push(500);
    const o = await open();
    const p = executorPipeline(o.executor);
    const id = p.publish('web-1');
    expect(await p.handleNext()).toBe('acked');
    expect(engine.requests.filter((r) => r.startsWith('POST'))).toHaveLength(2);
    expect(p.storage.records.get(id)).toMatchObject({ restarted: true, restartAttempts: 2 });
  });

  it('sent and never answered: outcome unknown, so the restart stays in doubt and is never sent again', async () => {
    engine.containers.set('app-web-1', { restarts: 0 });
    engine.plan.push('hang');
    const o = await open({ restartTimeout: 400, dockerStopTimeout: 0 });
    const p = executorPipeline(o.executor);
    const id = p.publish('web-1');
    expect(await p.handleNext()).toBe('nacked');
    expect(p.storage.records.get(id)).toMatchObject({
      restarted: false,
      lastError:
        'Docker did not answer the restart of container app-web-1 (for web-1.example.net) within 400ms; it may have been restarted',
    });
    // The redelivery finds it in doubt: acked as such, no second request to the daemon.
    expect(await p.handleNext()).toBe('acked');
    expect(engine.requests.filter((r) => r.startsWith('POST'))).toEqual(['POST /containers/app-web-1/restart?t=0']);
    expect(p.storage.records.get(id)).toMatchObject({ restarted: false, restartInDoubt: true, acked: true });
  });

  it('DOCKER_HOST tcp://host:port is honoured; --docker-host wins over it', async () => {
    const tcp = new FakeEngine();
    tcp.containers.set('web-1', { restarts: 0 });
    await new Promise<void>((r) => tcp.server.listen(0, '127.0.0.1', r));
    try {
      const port = (tcp.server.address() as AddressInfo).port;
      const viaEnv = await open({ container: '{instance}' }, { DOCKER_HOST: `tcp://127.0.0.1:${port}` });
      await viaEnv.executor.restart('web-1.example.net', new AbortController().signal);
      expect(tcp.requests).toEqual(['GET /_ping', 'POST /containers/web-1/restart?t=10']);
      const viaFlag = await open(
        { container: '{instance}', dockerHost: `tcp://127.0.0.1:${port}` },
        { DOCKER_HOST: 'unix:///nonexistent/docker.sock' },
      );
      await viaFlag.executor.restart('web-1.example.net', new AbortController().signal);
      expect(tcp.containers.get('web-1')).toEqual({ restarts: 2 });
    } finally {
      await Promise.all(opened.splice(0).map((o) => o.close()));
      tcp.server.closeAllConnections();
      await new Promise((r) => tcp.server.close(r));
    }
  });

  it('no daemon at start: one line naming where it looked (an unreachable server, not a bad setting)', async () => {
    const err = await open({}, { DOCKER_HOST: `unix://${dir}/nothing.sock` }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(
      new RegExp(`^cannot reach the Docker Engine at unix://${dir}/nothing\\.sock: .*ENOENT`),
    );
  });

  it('settings checked at start', async () => {
    const bad: [Partial<ExecutorSettings>, NodeJS.ProcessEnv, RegExp][] = [
      [{ dockerHost: 'ssh://root@box' }, {}, /expected unix:\/\/\/path\/to\/docker\.sock or tcp:\/\/host:port/],
      [{ dockerHost: 'unix://relative.sock' }, {}, /expected unix:\/\/\/absolute\/path/],
      [{ dockerHost: 'tcp://127.0.0.1:2376' }, { DOCKER_TLS_VERIFY: '1' }, /TLS to the Docker daemon is not supported/],
      [{ container: 'app/{instance}' }, {}, /--container "app\/\{instance\}" does not make a valid container name/],
      [{ container: '{name}' }, {}, /unknown placeholder \{name\} in --container/],
      [
        { restartTimeout: 10_000, dockerStopTimeout: 10_000 },
        {},
        /--restart-timeout \(10s\) must be longer than --docker-stop-timeout \(10s\)/,
      ],
      [
        { executor: 'mock', dockerHost: `unix://${socket}` },
        {},
        /--docker-host is for --executor docker, but the executor is mock/,
      ],
    ];
    for (const [s, env, message] of bad) {
      const err = await open(s, { DOCKER_HOST: `unix://${socket}`, ...env }).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
    }
    // Nothing was asked of the daemon for a bad setting.
    expect(engine.requests).toEqual([]);
    expect(parseDockerHost('unix:///var/run/docker.sock')).toEqual({
      url: 'unix:///var/run/docker.sock',
      origin: 'http://localhost',
      socketPath: '/var/run/docker.sock',
    });
    expect(parseContainerTemplate('svc_{instance}.1')).toEqual(['svc_', { field: 'instance' }, '.1']);
  });

  it('a name the template makes from a message that Docker would not accept is refused for good, unsent', async () => {
    const ex = new DockerRestartExecutor({
      endpoint: parseDockerHost(`unix://${socket}`),
      container: parseContainerTemplate('{host}'),
      stopTimeoutSeconds: 1,
      timeoutMs: 1000,
      logger: capturingLogger().logger,
    });
    try {
      expect(await ex.restart('../../images/x', new AbortController().signal)).toEqual({
        kind: 'rejected',
        reason: '"../../images/x" is not a valid container name (for ../../images/x)',
      });
      expect(engine.requests).toEqual([]);
      // Not "refused for good" by mistake: a 5xx is not-restarted (retried), and not in doubt either.
      engine.containers.set('a', { restarts: 0 });
      engine.plan.push(503);
      const failed = await ex.restart('a', new AbortController().signal);
      expect(failed.kind).toBe('not-restarted');
      expect(failed).not.toHaveProperty('resource');
    } finally {
      await ex.close();
    }
  });
});
