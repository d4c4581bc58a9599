/**
 * `loopwatch attach <pid>` against processes started without loopwatch: it answers on an idle and a
 * busy process, and on every path (an answer, an error, a timeout, SIGINT, SIGKILL of the client, and
 * of the client and its keeper together) no inspector port is left listening: nothing accepts a
 * connection on the port the target printed, and /proc shows the target listening on no port.
 *
 * Targets run with `--inspect-port=0`, so each opens its own free port (a shared machine may have
 * 9229 taken) and prints it ("Debugger listening on ws://127.0.0.1:PORT/…"), which is how the tests
 * know it. The wall-clock figure (answers within 2 s) is measured in bench/timing-checks.ts, not here.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WEBSOCKET_FLAGS } from '../src/attach/cdp.js';
import { ask } from '../src/attach/client.js';
import type { ProcessInfo } from '../src/attach/protocol.js';
import { listeningPorts } from '../src/attach/proc.js';
import { fixturePath, markerLine, PACKAGE_ROOT } from './run-fixture.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
const started: ChildProcess[] = [];
const keepers: number[] = [];
afterEach(() => {
  for (const c of started.splice(0)) c.kill('SIGKILL');
  for (const k of keepers.splice(0)) {
    try {
      process.kill(k, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
});

/** Resolves once `text()` matches `re` (checked on every chunk of `stream`). */
function seen(stream: NodeJS.ReadableStream, text: () => string, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve) => {
    const check = (): boolean => {
      const m = re.exec(text());
      if (m) resolve(m);
      return m !== null;
    };
    if (!check()) stream.on('data', () => void check());
  });
}

interface Target {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly out: () => string;
  readonly err: () => string;
  /** The port its inspector opened, once it printed it. */
  readonly port: Promise<number>;
}

async function target(mode: 'idle' | 'busy' | 'open' | 'guarded', env: Record<string, string> = {}): Promise<Target> {
  const child = spawn(process.execPath, ['--inspect-port=0', fixturePath('attach-target'), mode], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, ...env },
  });
  started.push(child);
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  await seen(child.stdout, () => out, /ready\n/);
  const port = seen(child.stderr, () => err, /Debugger listening on ws:\/\/127\.0\.0\.1:(\d+)\//).then((m) =>
    Number(m[1]),
  );
  return { pid: child.pid!, child, out: () => out, err: () => err, port };
}

interface Run {
  readonly child: ChildProcess;
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** `loopwatch attach`; `direct` runs it in one process on every line (node 20 otherwise re-runs it with a flag). */
function attach(pid: number, opts: { direct?: boolean; args?: string[]; env?: Record<string, string> } = {}): Run {
  const child = spawn(
    process.execPath,
    [...(opts.direct ? WEBSOCKET_FLAGS : []), CLI, 'attach', String(pid), ...(opts.args ?? [])],
    { cwd: PACKAGE_ROOT, env: { ...process.env, ...opts.env } },
  );
  started.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

// A connect of its own, not src/attach/cdp.ts's answers(): the code under test decides with that one.
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The keeper attach started for `pid`, from /proc (its command line names the target). */
function keeperOf(pid: number): number | undefined {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const args = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      const i = args.findIndex((a) => a.endsWith('door-keeper.js'));
      if (i >= 0 && args[i + 1] === String(pid)) {
        keepers.push(Number(d));
        return Number(d);
      }
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/**
 * No door: nothing accepts a connection on the target's inspector port, and it listens on no port.
 * `withinMs` > 0 where the door is closed by someone else than the client (its keeper, the guard),
 * which no event announces: checked every 50 ms until then.
 */
async function noDoor(t: Target, withinMs = 0): Promise<void> {
  await t.port;
  // Every port it printed (node may open the inspector more than once).
  const ports = new Set(
    [...t.err().matchAll(/Debugger listening on ws:\/\/127\.0\.0\.1:(\d+)\//g)].map((m) => Number(m[1])),
  );
  const until = performance.now() + withinMs;
  for (;;) {
    const listening = listeningPorts(t.pid) ?? [];
    const open = [];
    for (const port of ports) if (await accepts(port)) open.push(port);
    if (open.length === 0 && listening.length === 0) return;
    if (performance.now() >= until)
      throw new Error(
        `${JSON.stringify(open)} of ${t.pid} still open (/proc: ${JSON.stringify(listening)}) after ${withinMs} ms`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once SIGUSR1 is pending in (stopped) `pid`: /proc/<pid>/status, bit 10 of ShdPnd; no event says so. */
async function sigusr1Pending(pid: number): Promise<void> {
  for (;;) {
    const m = /^ShdPnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (m && (BigInt(`0x${m[1]}`) & (1n << 9n)) !== 0n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function gone(pid: number | undefined, withinMs: number): Promise<boolean> {
  const until = performance.now() + withinMs;
  while (pid !== undefined && fs.existsSync(`/proc/${pid}`)) {
    if (performance.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

describe('answers', () => {
  it('on an idle process at once (not when its next timer fires, a minute away), and closes the port', async () => {
    const t = await target('idle');
    const r = await attach(t.pid).done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^main thread of ${t.pid} is idle, through node's inspector \\(SIGUSR1; the port is closed again\\): no JavaScript running; its event loop waits for .*1 Timeout\\n`,
      ),
    );
    await noDoor(t);
    expect(await gone(keeperOf(t.pid), 2_000)).toBe(true);
    expect(t.child.exitCode).toBe(null); // nothing stopped it
  });

  it('on a busy process: the line its loop is blocked on', async () => {
    const t = await target('busy');
    const r = await attach(t.pid).done;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(`^main thread of ${t.pid}, through node's inspector \\(SIGUSR1; the port is closed again\\):\\n`),
    );
    expect(r.stdout).toContain(
      `  at crunch (test/fixtures/attach-target.ts:${await markerLine('attach-target', 'CRUNCHES')}:`,
    );
    await noDoor(t);
    // SIGUSR1 also left node a wake-up of the loop, pending while crunch runs: once the loop runs, it
    // opens the port again, and the close attach left behind closes it on the next turn.
    await seen(t.child.stdout!, t.out, /crunched\n/);
    await seen(t.child.stderr!, t.err, /Debugger listening[^]*Debugger listening/);
    await noDoor(t, 1_000);
  });

  it('refuses, without signalling, a process that does not handle SIGUSR1 (it would end it)', async () => {
    const sleeper = spawn('sleep', ['30']);
    started.push(sleeper);
    await new Promise((r) => sleeper.once('spawn', r));
    const r = await attach(sleeper.pid!).done;
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `loopwatch: process ${sleeper.pid} does not handle SIGUSR1 (not node, or started with --disable-sigusr1); not signalling it, SIGUSR1 would end it\n`,
    );
    expect(sleeper.exitCode).toBe(null);
    expect(sleeper.signalCode).toBe(null);
  });
});

describe('--enable: loopwatch loaded into a process started without it', () => {
  it('through require(esm) from the session: its endpoint answers afterwards, the port is closed', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-enable-'));
    try {
      const env = { LOOPWATCH_ATTACH_DIR: path.join(dir, 's') };
      const t = await target('idle', env);
      const r = await attach(t.pid, { args: ['--enable', 'production'], env }).done;
      expect(r.stderr).toBe('');
      expect(r.stdout).toContain(
        `\nloopwatch production is on in ${t.pid} now: loopwatch ps|pstree|top|dump ${t.pid}\n`,
      );
      await noDoor(t);
      const info = await ask({ kind: 'unix', path: path.join(dir, 's', `${t.pid}.sock`) }, { cmd: 'info' });
      expect(info.ok).toBe(true);
      expect((info.data as ProcessInfo).mode).toBe('production');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('no door left open', () => {
  it('error: the target blocks right after its inspector opened, so the session gets no answer', async () => {
    const t = await target('open');
    const r = await attach(t.pid).done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      // Closed by the client if the target unblocked while it waited for the close, else by the keeper.
      /^loopwatch: Runtime\.evaluate got no answer within 1000 ms; (the inspector is closed again|loopwatch's keeper \(pid \d+\) closes the inspector)\n$/,
    );
    await seen(t.child.stdout!, t.out, /unblocked\n/);
    await noDoor(t, 5_000);
  });

  it('timeout: the inspector does not open in time (target stopped); it is closed once it opens', async () => {
    const t = await target('idle');
    t.child.kill('SIGSTOP');
    const r = await attach(t.pid).done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^loopwatch: process ${t.pid} opened no inspector within 1200 ms: .*keeper \\(pid \\d+\\) closes it then`,
      ),
    );
    expect(r.stderr.split('\n')).toHaveLength(2); // one line
    const keeper = keeperOf(t.pid);
    t.child.kill('SIGCONT');
    await t.port; // it opened after all
    await noDoor(t, 5_000);
    expect(await gone(keeper, 5_000)).toBe(true);
  });

  it('SIGINT while the client waits for the inspector: exit 130, closed once it opens', async () => {
    const t = await target('idle');
    t.child.kill('SIGSTOP');
    const run = attach(t.pid);
    // The signal is pending in the stopped target: the client is waiting for the door now.
    await sigusr1Pending(t.pid);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toBe('loopwatch: interrupted\n');
    t.child.kill('SIGCONT');
    await t.port;
    await noDoor(t, 5_000);
  });

  it('SIGINT in the middle of the session: exit 130, the port closed', async () => {
    const t = await target('open');
    const run = attach(t.pid);
    await seen(t.child.stdout!, t.out, /blocking\n/);
    await seen(t.child.stderr!, t.err, /Debugger attached/);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(
      /^loopwatch: interrupted; (the inspector is closed again|loopwatch's keeper \(pid \d+\) closes the inspector)\n$/,
    );
    await seen(t.child.stdout!, t.out, /unblocked\n/);
    await noDoor(t, 5_000);
  });

  it('SIGKILL of the client in the middle of the session: its keeper closes the port', async () => {
    const t = await target('open');
    const run = attach(t.pid, { direct: true });
    await seen(t.child.stdout!, t.out, /blocking\n/);
    await seen(t.child.stderr!, t.err, /Debugger attached/);
    const keeper = keeperOf(t.pid);
    expect(keeper).toBeDefined();
    run.child.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    await seen(t.child.stdout!, t.out, /unblocked\n/);
    await noDoor(t, 5_000);
    expect(await gone(keeper, 5_000)).toBe(true);
  });

  it('SIGKILL of the client and its keeper once the guard is armed: the target closes the port itself', async () => {
    const t = await target('guarded');
    const run = attach(t.pid, { direct: true });
    await seen(t.child.stdout!, t.out, /blocking\n/);
    const keeper = keeperOf(t.pid);
    run.child.kill('SIGKILL');
    if (keeper !== undefined) process.kill(keeper, 'SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    await seen(t.child.stdout!, t.out, /unblocked\n/);
    // The guard checks every 100 ms whether its watchers live.
    await noDoor(t, 2_000);
  });
});
