/**
 * Signals at the edges of the process (issue 8 item 8): the hub (cli/signals.ts) in a child
 * process of its own, and the real CLI when a signal arrives during start-up, twice during
 * shutdown, or after "Successfully shutdown".
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/src/cli');
const MAIN = resolve(DIST, 'main.js');
beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -b packages/mayhem)`);
});

interface Line {
  level: number;
  msg: string;
  [key: string]: unknown;
}

// Every child started here is killed at the end, even when a test failed half-way.
const children = new Set<ReturnType<typeof spawn>>();
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function cli(args: string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const lines: Line[] = [];
  let partial = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') lines.push(JSON.parse(p) as Line);
    for (const w of watchers) w();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((r) =>
    child.on('close', (code, signal) => r({ code, signal, at: performance.now() })),
  );
  const waitFor = (pred: (l: Line) => boolean): Promise<void> =>
    new Promise((res, rej) => {
      const check = (): void => {
        if (lines.some(pred)) {
          watchers.delete(check);
          res();
        } else if (child.exitCode !== null || child.signalCode !== null) {
          watchers.delete(check);
          rej(new Error(`exited before the awaited line; stderr: ${stderr}`));
        }
      };
      watchers.add(check);
      check();
    });
  return { child, lines, exited, waitFor, stderr: () => stderr };
}

describe('the signal hub', () => {
  it('queues a signal that arrives while nobody listens (instead of Node killing the process) and hands it to the next listener', async () => {
    const code = `
      import { installSignalHub, onExitSignal } from ${JSON.stringify(pathToFileURL(resolve(DIST, 'signals.js')).href)};
      installSignalHub();
      process.kill(process.pid, 'SIGTERM');
      process.kill(process.pid, 'SIGHUP');
      await new Promise((r) => setTimeout(r, 200));
      const got = [];
      const off = onExitSignal((s) => got.push(s));
      off();
      process.kill(process.pid, 'SIGINT');
      await new Promise((r) => setTimeout(r, 200));
      process.stdout.write(JSON.stringify({ alive: true, got }) + '\\n');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) =>
      child.on('close', (c, s) => r([c, s])),
    );
    expect(signal).toBeNull();
    expect(exitCode).toBe(0);
    expect(JSON.parse(out)).toEqual({ alive: true, got: ['SIGTERM', 'SIGHUP'] });
  });
});

describe('mayhem run and signals at the edges', () => {
  let server: Server;
  const sockets = new Set<Socket>();
  let connected: () => void = () => undefined;
  let port = 0;
  beforeAll(async () => {
    // A "NATS server" that accepts and never speaks: the client's connect waits (start-up hangs).
    server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
      connected();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('a SIGTERM during start-up (a connection still opening) is logged and ends the process cleanly with 0', async () => {
    const connecting = new Promise<void>((r) => (connected = r));
    const run = cli(['run', '--broker', `nats://127.0.0.1:${port}`, '--db', 'memory:']);
    await connecting;
    const signalled = performance.now();
    run.child.kill('SIGTERM');
    const { code, signal, at } = await run.exited;
    expect(signal).toBeNull();
    expect(code).toBe(0);
    // Not after the 5 s connect timeout: at once.
    expect(at - signalled).toBeLessThan(2000);
    const msgs = run.lines.map((l) => l.msg);
    expect(msgs[0]).toBe('Received exit signal SIGTERM during start-up...');
    expect(msgs.some((m) => m.startsWith('Summary (received SIGTERM during start-up)'))).toBe(true);
    expect(msgs.at(-1)).toBe('Successfully shutdown the Mayhem service.');
    expect(run.stderr()).toBe('');
  });

  it('a double Ctrl-C during shutdown (the same signal twice, quickly) exits 130 at once, as the README says', async () => {
    const run = cli(['run', '--publish-rate', '0', '--restart-latency', '3s', '--grace', '30s', '--db', 'memory:']);
    await run.waitFor((l) => l.msg.startsWith('Pulled '));
    run.child.kill('SIGINT');
    await run.waitFor((l) => l.msg === 'Received exit signal SIGINT...');
    const again = performance.now();
    run.child.kill('SIGINT');
    const { code, at } = await run.exited;
    expect(code).toBe(130);
    expect(at - again).toBeLessThan(1500);
    expect(run.lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      'Received SIGINT again during shutdown; exiting now (130)',
    ]);
  });

  it('a signal after "Successfully shutdown" does not turn a clean exit into 143', async () => {
    const run = cli([
      'run',
      '--count',
      '20',
      '--publish-rate',
      '0',
      '--restart-latency',
      '1ms',
      '--restart-failure-rate',
      '0',
      '--db',
      'memory:',
    ]);
    await run.waitFor((l) => l.msg === 'Successfully shutdown the Mayhem service.');
    run.child.kill('SIGTERM');
    const { code, signal } = await run.exited;
    expect(signal).toBeNull();
    expect(code).toBe(0);
  });
});
