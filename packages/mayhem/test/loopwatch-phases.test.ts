/**
 * `loopwatch ps --json` and `where` on a running `mayhem run --debug` with slow restarts: every
 * message in flight is a work unit whose phase names its host and attempt, and whose waiting-at line
 * is what it waits on (the executor's pending restart), then the line in mayhem that began the wait.
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
const dir = mkdtempSync(join(tmpdir(), 'mayhem-phases-'));
const attachDir = join(dir, 'attach');
let mayhem: ChildProcess | undefined;

afterAll(() => {
  mayhem?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Frame {
  functionName: string;
  file: string;
  line: number;
}
interface WorkRow {
  id: number;
  kind: string;
  key: string;
  phase: string;
  waitingAt: Frame[];
  past?: { phase: string }[];
}

async function loopwatch(...args: string[]): Promise<unknown> {
  const { stdout } = await run(process.execPath, [LOOPWATCH, ...args, '--json'], {
    env: { ...process.env, LOOPWATCH_ATTACH_DIR: attachDir },
  });
  return JSON.parse(stdout) as unknown;
}

const RESTARTING = /^restarting (cattle-[a-z0-9]{4}\.example\.net) \(attempt (\d)\)$/;

describe('each message in flight is a work unit with its phase', () => {
  it('tells restarts of different hosts and attempts apart, each waiting at the executor', async () => {
    mayhem = spawn(
      process.execPath,
      [
        MAIN,
        'run',
        '--debug',
        '--seed',
        '7',
        '--publish-rate',
        '0',
        '--count',
        '40',
        '--max-in-flight',
        '8',
        '--restart-latency',
        '2s',
        '--restart-failure-rate',
        '0.5',
        '--restart-attempts',
        '5',
        '--retry-backoff',
        '10ms',
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

    // Poll until the dump shows restarts at a first and at a later attempt at once.
    let work: WorkRow[] = [];
    const end = Date.now() + 30_000;
    while (Date.now() < end) {
      const ps = (await loopwatch('ps', String(mayhem.pid))) as { data: { work: WorkRow[] } };
      work = ps.data.work.filter((w) => w.kind === 'message');
      const attempts = new Set(work.map((w) => RESTARTING.exec(w.phase)?.[2]).filter((a) => a !== undefined));
      if (attempts.has('1') && [...attempts].some((a) => a !== '1')) break;
      await sleep(200);
    }
    const restarting = work.filter((w) => RESTARTING.test(w.phase));
    expect(restarting.length, JSON.stringify(work.map((w) => w.phase))).toBeGreaterThanOrEqual(2);
    const hosts = new Set(restarting.map((w) => RESTARTING.exec(w.phase)![1]));
    expect(hosts.size, 'one host per message').toBe(restarting.length);
    const attempts = new Set(restarting.map((w) => RESTARTING.exec(w.phase)![2]));
    expect(attempts.has('1'), 'a first attempt').toBe(true);
    expect(attempts.size, 'a later attempt beside it').toBeGreaterThanOrEqual(2);
    for (const w of restarting) {
      // Keyed by the message id; waiting at what it waits on (the mock's pending restart), then at
      // the line in mayhem that began the wait.
      expect(w.key).toMatch(/^[0-9a-f-]{36}$/);
      expect(w.waitingAt[0]?.file).toMatch(/src\/executors\/mock\.ts$/);
      expect(w.waitingAt.map((f) => f.file)).toContain(join(ROOT, 'src/core/restart-branch.ts'));
    }

    // `where` keeps the earlier phases of a message at a later attempt: the same host, one attempt before.
    const later = restarting.find((w) => RESTARTING.exec(w.phase)![2] !== '1')!;
    const [, host, attempt] = RESTARTING.exec(later.phase)!;
    const where = (await loopwatch('where', String(mayhem.pid), `w${later.id}`)) as { data: { work?: WorkRow } };
    const past = (where.data.work?.past ?? []).map((p) => p.phase);
    expect(past).toContain(`restarting ${host} (attempt ${Number(attempt) - 1})`);
    expect(past).toContain(`claiming the restart of ${host}`);
  });
});
