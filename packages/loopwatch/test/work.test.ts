/**
 * `trackWork` in a real process under register: `loopwatch ps --json`, `ps`, `where w<id>` and
 * `ps --ended` show each unit's phase and (debug mode) the line that set it, also when the program
 * imports loopwatch from a second copy beside register's.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WorkRow } from '../src/attach/protocol.js';
import { fixturePath, markerLine, PACKAGE_ROOT } from './run-fixture.js';

const run = promisify(execFile);
const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-work-'));
let n = 0;
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A whole second copy of loopwatch's build, outside node_modules: its own module instances. */
function secondCopy(): string {
  const dir = path.join(root, 'second-copy');
  if (!fs.existsSync(dir)) {
    fs.cpSync(path.join(PACKAGE_ROOT, 'dist', 'src'), path.join(dir, 'src'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
  }
  return path.join(dir, 'src', 'index.js');
}

async function start(mode: string, env: Record<string, string>): Promise<{ pid: string; dir: string }> {
  const dir = path.join(root, `d${++n}`);
  const child = spawn(process.execPath, ['--import', 'loopwatch/register', fixturePath('work-units')], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, LOOPWATCH: mode, LOOPWATCH_ATTACH_DIR: dir, ...env },
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
  return { pid: String(child.pid), dir };
}

function cli(dir: string, ...args: string[]): Promise<{ stdout: string }> {
  return run(process.execPath, [CLI, ...args], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, LOOPWATCH_ATTACH_DIR: dir },
  });
}

describe('trackWork: units of work in ps, where and ps --ended', () => {
  for (const copy of ['one copy', 'second copy'] as const) {
    it(`debug mode: phase, since and the line that set it (${copy})`, async () => {
      const env: Record<string, string> = copy === 'second copy' ? { LOOPWATCH_SECOND_COPY: secondCopy() } : {};
      const { pid, dir } = await start('debug', env);
      const json = JSON.parse((await cli(dir, 'ps', pid, '--json')).stdout) as { data: { work: WorkRow[] } };
      const work = json.data.work;
      expect(work.map((w) => w.name).sort()).toEqual([
        'message 3f2a91c0-7d4e-4a0b-9c1e-0f6b5a1d2e3f',
        'message b7e10d22-1111-4222-8333-944455556666',
        'message c0ffee00-2222-4333-8444-955566667777',
      ]);
      const restarting = work.find((w) => w.key.startsWith('3f2a'))!;
      expect(restarting.phase).toBe('restarting web-3 (attempt 2)');
      expect(restarting.waitingAt[0]).toMatchObject({
        functionName: 'restart',
        line: await markerLine('work-units', 'PHASE-RESTART'),
      });
      expect(restarting.waitingAt[0]!.file).toMatch(/test\/fixtures\/work-units\.ts$/);
      expect(restarting.phaseMs).toBeGreaterThanOrEqual(0);
      expect(restarting.ageMs).toBeGreaterThanOrEqual(restarting.phaseMs);
      const saving = work.find((w) => w.key.startsWith('b7e1'))!;
      expect(saving.phase).toBe('saving');
      expect(saving.waitingAt[0]?.line).toBe(await markerLine('work-units', 'PHASE-SAVE'));
      // phase(text, promise): where that promise waits (the async function's await), then the phase's line.
      const probing = work.find((w) => w.key.startsWith('c0ffee00'))!;
      expect(probing.phase).toBe('probing db-2');
      expect(probing.waitingAt.slice(0, 2).map((f) => [f.functionName, f.line])).toEqual([
        ['probe', await markerLine('work-units', 'AWAIT-PROBE')],
        [expect.any(String), await markerLine('work-units', 'PHASE-PROBE')],
      ]);

      const text = (await cli(dir, 'ps', pid)).stdout;
      expect(text).toMatch(
        /^w\d+ +message 3f2a91c0… +restarting web-3 \(attempt 2\) +\d+(\.\d)? m?s +\S+ m?s +test\/fixtures\/work-units\.ts:\d+:\d+/m,
      );
      expect(text).toContain('3 work units');

      const where = (await cli(dir, 'where', pid, `w${saving.id}`)).stdout;
      expect(where).toMatch(/^Work w\d+ message b7e10d22-1111-4222-8333-944455556666: saving for /);
      expect(where).toContain('earlier phases:\n  restarting db-1 (attempt 1) for ');
      expect(where).toMatch(/at save \(test\/fixtures\/work-units\.ts:\d+:\d+\)/);

      const ended = (await cli(dir, 'ps', pid, '--ended')).stdout;
      expect(ended).toMatch(/^w\d+ +message acked-1 +done +.* recording the ack$/m);
      expect(ended).toMatch(/^w\d+ +message failed-1 +failed: disk full /m);
    });
  }

  it('production mode: units and phases without their lines (no capture there)', async () => {
    const { pid, dir } = await start('production', { LOOPWATCH_SECOND_COPY: secondCopy() });
    const json = JSON.parse((await cli(dir, 'ps', pid, '--json')).stdout) as { data: { work: WorkRow[] } };
    expect(json.data.work.map((w) => w.phase).sort()).toEqual([
      'probing db-2',
      'restarting web-3 (attempt 2)',
      'saving',
    ]);
    expect(json.data.work.every((w) => w.waitingAt.length === 0)).toBe(true);
    const text = (await cli(dir, 'ps', pid)).stdout;
    expect(text).toMatch(/^ID +WORK +PHASE +SINCE +AGE +WAITING AT +PARENT$/m);
  });
});
