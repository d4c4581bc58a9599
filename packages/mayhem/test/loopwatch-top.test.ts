/**
 * `loopwatch top` attached to a running `mayhem run --debug`, driven in a real terminal (tmux): the
 * screen must show the loop lag, a task row and a slow callback, and `q` must quit.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const LOOPWATCH = join(ROOT, '..', 'loopwatch', 'dist', 'src', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'mayhem-top-'));
const attachDir = join(dir, 'attach');
const tmuxSocket = `lw-top-${process.pid}`;
let mayhem: ChildProcess | undefined;

afterAll(async () => {
  await run('tmux', ['-L', tmuxSocket, 'kill-server']).catch(() => undefined);
  mayhem?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function hasTmux(): Promise<boolean> {
  return run('tmux', ['-V']).then(
    () => true,
    () => false,
  );
}

async function screen(): Promise<string> {
  return (await run('tmux', ['-L', tmuxSocket, 'capture-pane', '-p', '-t', 'top'])).stdout;
}

async function until(what: string, ok: (s: string) => boolean, timeoutMs = 20_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let s = '';
  while (Date.now() < end) {
    s = await screen().catch(() => '');
    if (ok(s)) return s;
    await sleep(250);
  }
  throw new Error(`the screen never showed ${what}:\n${s}`);
}

describe('loopwatch top on a live mayhem', () => {
  it('shows the lag, a task row and a slow callback; q quits', async (ctx) => {
    if (!(await hasTmux())) {
      // CI installs tmux (.ci/run); there this test must run, not skip.
      if (process.env['CI'] === 'true') throw new Error('tmux is missing');
      ctx.skip();
    }
    mayhem = spawn(
      process.execPath,
      [
        MAIN,
        'run',
        '--debug',
        '--slow-callback-ms',
        '3',
        '--publish-rate',
        '0',
        '--count',
        '20000',
        '--restart-latency',
        '3s',
        '--db',
        'memory:',
        '--log-format',
        'json',
        '--log-level',
        'warn',
      ],
      { cwd: ROOT, env: { ...process.env, LOOPWATCH_ATTACH_DIR: attachDir }, stdio: 'ignore' },
    );
    const sock = join(attachDir, `${mayhem.pid}.sock`);
    for (let i = 0; i < 100 && !existsSync(sock); i++) await sleep(100);
    expect(existsSync(sock), 'attach socket').toBe(true);
    await run('tmux', [
      '-L',
      tmuxSocket,
      'new-session',
      '-d',
      '-s',
      'top',
      '-x',
      '200',
      '-y',
      '50',
      `env LOOPWATCH_ATTACH_DIR=${attachDir} ${process.execPath} ${LOOPWATCH} top ${mayhem.pid}`,
    ]);
    const s = await until(
      'lag, a task row and a slow callback',
      (x) =>
        /loop lag p50 [\d.]+ ms {2}p99 [\d.]+ ms {2}max [\d.]+ ms/.test(x) &&
        /\n\d+ +MessagePipeline\.handle +[\d.]+ /.test(x) &&
        /\n +\d+ ms +[\d.]+ m?s ago +\S/.test(x),
    );
    expect(s).toContain(`loopwatch top  pid ${mayhem.pid}  debug`);
    expect(s).toMatch(/slow callbacks, last minute: [1-9]\d*/);
    await run('tmux', ['-L', tmuxSocket, 'send-keys', '-t', 'top', 'q']);
    const gone = async (): Promise<boolean> =>
      run('tmux', ['-L', tmuxSocket, 'has-session', '-t', 'top']).then(
        () => false,
        () => true,
      );
    for (let i = 0; i < 40 && !(await gone()); i++) await sleep(100);
    expect(await gone(), 'top quit on q').toBe(true);
  });
});
