/**
 * The reference service under loopwatch's debug mode: it must behave the same (every message settled,
 * counts adding up) and loopwatch must report nothing that is not real. Kinds that depend on the
 * machine (a slow turn on a loaded CI box, a stall, loop-lag figures) are allowed; the bug kinds are not.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = join(ROOT, 'dist/src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'mayhem-lw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BUG_KINDS = ['unhandled-task-error', 'task-destroyed-pending', 'never-awaited', 'thread-affinity'];
const ENVIRONMENTAL = ['slow-callback', 'stall', 'loop-lag'];
/** What loopwatch says about the process as a whole: module loading at start-up, the summary at exit. */
const INFORMATIONAL = ['start-up', 'summary'];

interface Report {
  kind: string;
  message: string;
}
interface Summary {
  acked: number;
  deadLettered: number;
  inFlight: number;
}

async function runUnder(
  nodeArgs: string[],
  env: NodeJS.ProcessEnv,
  extra: string[],
  db: string,
): Promise<{ reports: Report[]; summary: Summary }> {
  const args = [
    ...nodeArgs,
    MAIN,
    'run',
    '--count',
    '600',
    '--publish-rate',
    '0',
    '--restart-latency',
    '5ms',
    '--db',
    `sqlite:${join(dir, db)}`,
    '--log-level',
    'info',
    ...extra,
  ];
  // Run from the package so `--import loopwatch/register` resolves as it does for a user.
  const { stdout, stderr } = await run(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    maxBuffer: 1 << 28,
  });
  const reports = stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Report);
  const summaryLine = stdout
    .split('\n')
    .filter((l) => l.includes('"reason"'))
    .pop();
  expect(summaryLine, 'summary line').toBeDefined();
  return { reports, summary: JSON.parse(summaryLine as string) as Summary };
}

function expectClean(reports: Report[]): void {
  expect(reports.filter((r) => BUG_KINDS.includes(r.kind)).map((r) => r.message)).toEqual([]);
  for (const r of reports) expect([...BUG_KINDS, ...ENVIRONMENTAL, ...INFORMATIONAL]).toContain(r.kind);
}

describe('mayhem under loopwatch debug mode', () => {
  it('node --import loopwatch/register with LOOPWATCH=debug: every message settles, no bug reports', async () => {
    const { reports, summary } = await runUnder(
      ['--import', 'loopwatch/register'],
      { LOOPWATCH: 'debug', LOOPWATCH_FORMAT: 'json' },
      [],
      'register.db',
    );
    expect(summary.acked + summary.deadLettered).toBe(600);
    expect(summary.inFlight).toBe(0);
    expectClean(reports);
  });

  it('mayhem run --debug: the same, turned on by the flag', async () => {
    const { reports, summary } = await runUnder([], {}, ['--debug', '--log-format', 'json'], 'flag.db');
    expect(summary.acked + summary.deadLettered).toBe(600);
    expect(summary.inFlight).toBe(0);
    expectClean(reports);
  });
});
