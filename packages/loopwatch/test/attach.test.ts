/**
 * The attach endpoint and the `loopwatch` command against real child processes: an answer while the
 * loop is blocked, ps / pstree / where / dump, and who can reach the socket.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { ask } from '../src/attach/client.js';
import type { TaskRow } from '../src/attach/protocol.js';
import { fixturePath, markerLine, PACKAGE_ROOT, sourcePath } from './run-fixture.js';

const run = promisify(execFile);
const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-attach-'));
fs.chmodSync(root, 0o755);
let n = 0;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh socket directory per test (LOOPWATCH_ATTACH_DIR), created by loopwatch itself. */
function freshDir(): string {
  return path.join(root, `d${++n}`);
}

async function start(
  fixture: string,
  dir: string,
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; out: () => string; err: () => string }> {
  const child = spawn(process.execPath, ['--import', 'loopwatch/register', fixturePath(fixture)], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, LOOPWATCH: 'debug', LOOPWATCH_ATTACH_DIR: dir, ...env },
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('ready\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`fixture exited (${code}) before ready: ${err}`)));
  });
  return { child, out: () => out, err: () => err };
}

function cli(dir: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, LOOPWATCH_ATTACH_DIR: dir },
  });
}

describe('attach while the loop is blocked', () => {
  it('answers ps within 500 ms during a 3 s block, naming the blocking line', async () => {
    const dir = freshDir();
    const { child, out } = await start('attach-blocked', dir, { LOOPWATCH: 'production' });
    // The block starts 50 ms after ready; ask well inside it.
    await new Promise((r) => setTimeout(r, 400));
    const t0 = performance.now();
    const a = await ask({ kind: 'unix', path: path.join(dir, `${child.pid}.sock`) }, { cmd: 'ps' });
    const tookMs = performance.now() - t0;
    expect(tookMs).toBeLessThan(500);
    expect(a.busy?.forMs).toBeGreaterThan(200);
    expect(a.busy?.stack[0]).toMatchObject({
      functionName: 'rebuildIndex',
      file: sourcePath('attach-blocked'),
      line: await markerLine('attach-blocked', 'BLOCKS'),
    });
    // The CLI says it in one line.
    const { stdout } = await cli(dir, 'ps', String(child.pid));
    expect(stdout).toMatch(
      /^main thread busy for [\d.]+ (ms|s) in rebuildIndex \(test\/fixtures\/attach-blocked\.ts:\d+:\d+\)/,
    );
    await once(child, 'exit');
    expect(out()).toContain('rebuilt');
    // Removed at exit.
    expect(fs.existsSync(path.join(dir, `${child.pid}.sock`))).toBe(false);
  });
});

describe('loopwatch ps, pstree, where, dump, list', () => {
  it('shows tasks where they wait, the await cycle, one task, ended tasks', async () => {
    const dir = freshDir();
    const { child } = await start('attach-tasks', dir);
    const pid = String(child.pid);
    const json = JSON.parse((await cli(dir, 'ps', pid, '--json')).stdout) as { data: { tasks: TaskRow[] } };
    const poller = json.data.tasks.find((t) => t.name === 'poller');
    expect(poller?.waitingAt[0]?.line).toBe(await markerLine('attach-tasks', 'POLL-WAITS'));
    expect(poller?.state).toBe('pending');
    const ps = (await cli(dir, 'ps', pid)).stdout;
    expect(ps.split('\n')[0]).toMatch(/^ID +NAME +STATE +AGE +BUSY ms +WAITING AT +PARENT$/);
    expect(ps).toMatch(
      new RegExp(
        `\\n${poller!.id} +poller +pending .*test/fixtures/attach-tasks\\.ts:${poller!.waitingAt[0]!.line}:\\d+`,
      ),
    );
    expect((await cli(dir, 'ps', pid, '--name', '^beta$')).stdout).not.toContain('poller');
    const tree = (await cli(dir, 'pstree', pid)).stdout;
    expect(tree).toContain('ERROR: await-graph contains cycles');
    expect(tree).toMatch(/cycle: (alpha \(#\d+\) → beta \(#\d+\) → alpha|beta \(#\d+\) → alpha \(#\d+\) → beta)/);
    const where = (await cli(dir, 'where', pid, String(poller!.id))).stdout;
    expect(where).toMatch(/^Task #\d+ poller: pending/);
    expect(where).toMatch(/waiting at:\n {2}at poll \(test\/fixtures\/attach-tasks\.ts:\d+:\d+\)/);
    expect(where).toContain('created at (source_traceback):');
    const ended = (await cli(dir, 'ps', pid, '--ended')).stdout;
    expect(ended).toMatch(
      new RegExp(
        `job +aborted \\(no longer needed\\) .*attach-tasks\\.ts:${await markerLine('attach-tasks', 'ABORTS')}:`,
      ),
    );
    const dump = (await cli(dir, 'dump', pid)).stdout;
    expect(dump).toMatch(/task-dump: \d+ pending tasks/);
    const list = (await cli(dir, 'list')).stdout;
    expect(list).toMatch(new RegExp(`\\n${pid} +debug +[\\d.]+ m?s +[\\d.]+ ms +\\d+ +node .*attach-tasks\\.js`));
  });
});

describe('TCP, when asked', () => {
  it('LOOPWATCH_ATTACH=tcp:HOST:PORT answers with the token it printed, and refuses without it', async () => {
    const free = net.createServer().listen(0, '127.0.0.1');
    await once(free, 'listening');
    const port = (free.address() as net.AddressInfo).port;
    await new Promise((r) => free.close(r));
    const { child, err } = await start('attach-tasks', freshDir(), { LOOPWATCH_ATTACH: `tcp:127.0.0.1:${port}` });
    const token = /attach on tcp:127\.0\.0\.1:\d+, token ([0-9a-f]{32})/.exec(err())?.[1];
    expect(token).toBeDefined();
    const ps = await cli(root, 'ps', `tcp:127.0.0.1:${port}`, '--token', token!);
    expect(ps.stdout).toMatch(/\n\d+ +poller +pending/);
    const refused = await cli(root, 'ps', `tcp:127.0.0.1:${port}`, '--token', 'guess').catch(
      (e: { stderr: string }) => e,
    );
    expect(refused.stderr).toBe('loopwatch: bad token\n');
    child.kill();
  });
});

describe('only the owner can attach', () => {
  it('the directory is 0700, the socket 0600, and another user gets EACCES', async () => {
    const dir = freshDir();
    const { child } = await start('attach-tasks', dir);
    const sock = path.join(dir, `${child.pid}.sock`);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    if (process.getuid?.() !== 0) return; // only root can act as another user here; CI runs as root
    const probe = `require('net').connect(${JSON.stringify(sock)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => { console.log(e.code); process.exit(0); })`;
    const other = await run(process.execPath, ['-e', probe], { uid: 65534, gid: 65534 });
    expect(other.stdout.trim()).toBe('EACCES');
    const owner = await run(process.execPath, ['-e', probe]);
    expect(owner.stdout.trim()).toBe('connected');
  });

  it('a directory open to others, or another user’s, is refused with one line; the program runs on', async () => {
    const open = freshDir();
    fs.mkdirSync(open, { mode: 0o777 });
    fs.chmodSync(open, 0o777);
    const refused = await run(process.execPath, ['--import', 'loopwatch/register', fixturePath('well-behaved')], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, LOOPWATCH: 'production', LOOPWATCH_ATTACH_DIR: open },
    });
    expect(refused.stdout).toBe('total=279\n');
    expect(refused.stderr).toBe(`loopwatch: ${open} is open to others (mode 777); attach stays closed\n`);
    expect(fs.readdirSync(open)).toEqual([]);
    if (process.getuid?.() !== 0) return;
    const theirs = freshDir();
    fs.mkdirSync(theirs, { mode: 0o700 });
    fs.chownSync(theirs, 65534, 65534);
    const r2 = await run(process.execPath, ['--import', 'loopwatch/register', fixturePath('well-behaved')], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, LOOPWATCH: 'production', LOOPWATCH_ATTACH_DIR: theirs },
    });
    expect(r2.stderr).toBe(`loopwatch: ${theirs} belongs to uid 65534, not to us (0); attach stays closed\n`);
  });

  it('LOOPWATCH_ATTACH=0 opens nothing', async () => {
    const dir = freshDir();
    const r = await run(process.execPath, ['--import', 'loopwatch/register', fixturePath('well-behaved')], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, LOOPWATCH: 'debug', LOOPWATCH_ATTACH: '0', LOOPWATCH_ATTACH_DIR: dir },
    });
    expect(r.stdout).toBe('total=279\n');
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describe('loopwatch attach: a process started without loopwatch', () => {
  it("prints the main thread's stack while its loop is blocked, and closes the inspector again", async (ctx) => {
    const child = spawn(process.execPath, [fixturePath('plain-blocked')], { cwd: PACKAGE_ROOT });
    children.push(child);
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 300));
    const r = await cli(root, 'attach', String(child.pid)).catch((e: { stdout: string; stderr: string }) => e);
    // Another program's inspector on 9229 (a shared machine): attach refuses to use it, rightly.
    if (/already taken/.test(r.stderr) && process.env['CI'] !== 'true') ctx.skip();
    expect(r.stdout).toMatch(new RegExp(`^main thread of ${child.pid}, through node's inspector`));
    expect(r.stdout).toContain(
      `at rebuildIndex (test/fixtures/plain-blocked.ts:${await markerLine('plain-blocked', 'PLAIN-BLOCKS')}:`,
    );
    const open = await fetch('http://127.0.0.1:9229/json/list').then(
      () => true,
      () => false,
    );
    expect(open).toBe(false);
  });
});

describe('loopwatch top without a terminal', () => {
  it('prints one line and exits 2 (ink is never loaded)', async () => {
    const r = await cli(root, 'top', '12345').catch((e: { code: number; stdout: string; stderr: string }) => e);
    expect(r).toMatchObject({
      code: 2,
      stdout: '',
      stderr: 'loopwatch top: needs a terminal; without one use `loopwatch ps 12345` (--json for scripts)\n',
    });
  });
});
