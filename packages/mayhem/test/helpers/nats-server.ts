/**
 * Starts real nats-server processes for tests: one node, or a JetStream cluster with routes on
 * loopback. Each server gets free ports and its own store directory under a temp dir; readiness is
 * the server's own "Server is ready" log line (and, for a cluster, a JetStream meta leader), never a
 * sleep. Every process started here is killed by `stop()`, and — as a last resort — when the test
 * process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (the OS picks it; it is released just before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface NatsNode {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly storeDir: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Last lines the server logged (for assertion messages). */
  logTail(): string;
  /** Stop the process (SIGTERM: clean shutdown; SIGKILL: crash) and wait for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Start it again with the same ports and store (after stop). Resolves when it is ready. */
  start(): Promise<void>;
}

interface NodeSpec {
  name: string;
  port: number;
  storeDir: string;
  cluster?: { name: string; port: number; routes: number[] };
  /** More nats-server arguments (auth: --user/--pass, --auth, -c config). */
  extraArgs?: readonly string[];
}

class NodeProcess implements NatsNode {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly storeDir: string;
  #spec: NodeSpec;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log: string[] = [];
  #waiters: { re: RegExp; resolve: () => void }[] = [];

  constructor(spec: NodeSpec) {
    this.#spec = spec;
    this.name = spec.name;
    this.port = spec.port;
    this.url = `nats://127.0.0.1:${spec.port}`;
    this.storeDir = spec.storeDir;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  logTail(): string {
    return this.#log.slice(-40).join('\n');
  }

  /** Resolves when a log line (from now on, or already logged since the last start) matches. */
  waitForLog(re: RegExp, timeoutMs = 20_000): Promise<void> {
    if (this.#log.some((line) => re.test(line))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new Error(`nats-server ${this.name}: no log line matching ${re} within ${timeoutMs} ms\n${this.logTail()}`),
        );
      }, timeoutMs);
      const waiter = {
        re,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.push(waiter);
    });
  }

  start(): Promise<void> {
    if (this.#child) return Promise.reject(new Error(`nats-server ${this.name} is already running`));
    if (!existsSync(NATS_SERVER_BIN)) {
      return Promise.reject(
        new Error(
          `nats-server binary not found at ${NATS_SERVER_BIN} (apt-get install nats-server, or set NATS_SERVER_BIN)`,
        ),
      );
    }
    const s = this.#spec;
    const args = ['-a', '127.0.0.1', '-p', String(s.port), '-n', s.name, '-js', '-sd', s.storeDir];
    if (s.cluster) {
      args.push(
        '--cluster_name',
        s.cluster.name,
        '--cluster',
        `nats://127.0.0.1:${s.cluster.port}`,
        '--routes',
        s.cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(','),
      );
    }
    args.push(...(s.extraArgs ?? []));
    this.#log = [];
    const child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    live.add(child);
    let pending = '';
    const onData = (chunk: Buffer): void => {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        this.#log.push(line);
        if (this.#log.length > 2000) this.#log.splice(0, 1000);
        for (const w of [...this.#waiters]) {
          if (w.re.test(line)) {
            this.#waiters = this.#waiters.filter((x) => x !== w);
            w.resolve();
          }
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const ready = new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        reject(
          new Error(`nats-server ${this.name} exited during start (code ${code}, signal ${signal})\n${this.logTail()}`),
        );
      };
      child.once('exit', onExit);
      child.once('error', reject);
      this.waitForLog(/Server is ready/).then(() => {
        child.off('exit', onExit);
        resolve();
      }, reject);
    });
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        live.delete(child);
        if (this.#child === child) this.#child = undefined;
        resolve();
      });
    });
    return ready.catch(async (err: unknown) => {
      await this.stop('SIGKILL');
      throw err;
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child) return;
    const exited = this.#exited;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}

function tempRoot(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface NatsServer extends NatsNode {
  /** Stop the server and delete its store. */
  destroy(): Promise<void>;
}

/** One JetStream-enabled nats-server on a free loopback port with a fresh store (`extraArgs`: e.g. auth). */
export async function startNatsServer(opts: { extraArgs?: readonly string[] } = {}): Promise<NatsServer> {
  const root = tempRoot('mayhem-nats-');
  const node = new NodeProcess({
    name: 'mayhem-test',
    port: await freePort(),
    storeDir: join(root, 'store'),
    extraArgs: opts.extraArgs,
  });
  const server = Object.assign(node, {
    destroy: async () => {
      await node.stop('SIGKILL');
      rmSync(root, { recursive: true, force: true });
    },
  });
  try {
    await node.start();
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return server;
}

export interface NatsCluster {
  readonly nodes: readonly NatsNode[];
  /** Client URLs of every node. */
  readonly urls: string[];
  /** Resolves once some node reports a JetStream meta leader (the cluster can serve JetStream). */
  waitForMetaLeader(timeoutMs?: number): Promise<void>;
  /** Stop every node and delete the stores. */
  destroy(): Promise<void>;
}

/** A JetStream cluster of `size` nodes with routes on loopback (R3 streams need 3). */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  const root = tempRoot('mayhem-nats-cluster-');
  const clientPorts: number[] = [];
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) {
    clientPorts.push(await freePort());
    routePorts.push(await freePort());
  }
  const nodes = clientPorts.map(
    (port, i) =>
      new NodeProcess({
        name: `n${i + 1}`,
        port,
        storeDir: join(root, `n${i + 1}`),
        cluster: { name: 'mayhem-test', port: routePorts[i] ?? 0, routes: routePorts.filter((_, j) => j !== i) },
      }),
  );
  const waitForMetaLeader = async (timeoutMs = 30_000): Promise<void> => {
    const running = nodes.filter((n) => n.running);
    await Promise.any(
      running.map((n) =>
        n.waitForLog(/JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/, timeoutMs),
      ),
    );
  };
  const destroy = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await waitForMetaLeader();
  } catch (err) {
    await destroy();
    throw err;
  }
  return { nodes, urls: nodes.map((n) => n.url), waitForMetaLeader, destroy };
}
