/**
 * The safety rails on the whole service with its embedded defaults (memory broker, SQLite file):
 * the kill switch thrown from another terminal while the service runs, the audit trail printed by
 * `mayhem audit`, a denied host, leashed by default with a real executor. Needs `npm run build`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cli, MAIN, type Cli } from './helpers/cli.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'mayhem-rails-'));
const children: Cli[] = [];

afterEach(() => {
  for (const c of children.splice(0)) c.child.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function mayhem(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args]);
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

function service(db: string, ...extra: string[]): Cli {
  const c = cli([
    'run',
    '--db',
    db,
    '--publish-rate',
    '40',
    '--restart-latency',
    '100ms',
    '--restart-failure-rate',
    '0',
    '--log-format',
    'json',
    '--status-every',
    '0',
    ...extra,
  ]);
  children.push(c);
  return c;
}

const restartedAt = (c: Cli): number[] =>
  c.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Restarted ')).map((l) => l.time as number);

describe('the kill switch against a running service (SQLite)', () => {
  it('mayhem pause stops restarts within a second, mayhem resume lets them run again; both are in the audit trail', async () => {
    const db = `sqlite:${join(dir, 'switch.db')}`;
    const s = service(db, '--instance-name', 'svc-1');
    await s.waitFor(() => restartedAt(s).length >= 5);
    const paused = await mayhem('pause', '--db', db, '--reason', 'incident 42', '--instance-name', 'ops');
    expect(paused).toMatchObject({ code: 0, stderr: '' });
    expect(paused.stdout).toMatch(
      /^Restarts paused on sqlite:.*switch\.db by ops \(incident 42\): every instance stops starting restarts within a second/,
    );
    const pausedAt = Date.now();
    await s.waitFor((lines) => lines.some((l) => l.msg === 'Intake paused: restarts paused by ops (incident 42)'));
    // Two more seconds: a restart that began before the switch may end, none begins after it.
    await new Promise((r) => setTimeout(r, 2000));
    expect(restartedAt(s).filter((t) => t > pausedAt + 1000 + 100)).toEqual([]);
    const resumed = await mayhem('resume', '--db', db, '--instance-name', 'ops');
    expect(resumed.stdout).toMatch(/^Restarts resumed on sqlite:.*switch\.db by ops\.\n$/);
    const before = restartedAt(s).length;
    await s.waitFor((lines) => lines.some((l) => l.msg === 'Intake resumed'));
    await s.waitFor(() => restartedAt(s).length >= before + 5);

    s.child.kill('SIGTERM');
    expect((await s.exited).code).toBe(0);
    const audit = await mayhem('audit', '--db', db, '--since', '10m', '--limit', '1000', '--json');
    const entries = audit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { outcome: string; instance: string; host: string; reason: string });
    expect(entries.filter((e) => e.outcome === 'paused')).toMatchObject([
      { instance: 'ops', host: '*', reason: 'incident 42' },
    ]);
    expect(entries.filter((e) => e.outcome === 'resumed')).toHaveLength(1);
    expect(entries.filter((e) => e.outcome === 'restarted').length).toBe(restartedAt(s).length);
    expect(entries.every((e) => e.outcome === 'paused' || e.outcome === 'resumed' || e.instance === 'svc-1')).toBe(
      true,
    );
  }, 60_000);
});

describe('rails and the audit table', () => {
  it('a denied host is never restarted, and `mayhem audit --host` shows why, as a table', async () => {
    const db = `sqlite:${join(dir, 'deny.db')}`;
    const s = service(
      db,
      '--instances',
      'web-1,db-1',
      '--deny-hosts',
      'db-*',
      '--count',
      '20',
      '--instance-name',
      'svc',
    );
    expect((await s.exited).code).toBe(0);
    expect(restartedAt(s).length).toBeGreaterThan(0);
    expect(s.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Restarted db-1'))).toEqual([]);
    const table = await mayhem('audit', '--db', db, '--host', 'db-1.example.net');
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^time +instance +host +message +executor +outcome +reason$/);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows)
      expect(row).toMatch(
        / svc +db-1\.example\.net +[0-9a-f-]{36} +mock +skipped-denied +denied by policy: db-1\.example\.net matches --deny-hosts db-\*$/,
      );
  }, 60_000);

  it('a real executor is leashed by default: nothing restarted, each restart it would make recorded', async () => {
    const db = `sqlite:${join(dir, 'leash.db')}`;
    const s = service(db, '--executor', 'command', '--restart-command', 'false {host}', '--count', '5');
    expect((await s.exited).code).toBe(0);
    expect(
      s.lines.find(
        (l) =>
          l.level === 40 &&
          typeof l.msg === 'string' &&
          l.msg.startsWith('Leashed: the command executor restarts nothing'),
      ),
    ).toBeDefined();
    expect(s.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Leashed: would restart'))).toHaveLength(
      5,
    );
    const audit = await mayhem('audit', '--db', db, '--json');
    expect(
      audit.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { outcome: string }).outcome),
    ).toEqual(Array(5).fill('leashed'));
  }, 60_000);

  it('bad rails settings are one line and exit 2', async () => {
    for (const [args, message] of [
      [['--window', 'weekdays 9-5'], /^mayhem: invalid --window "weekdays 9-5": cannot read "weekdays 9-5"/],
      [['--deny-hosts', 'db *'], /^mayhem: invalid --deny-hosts pattern "db \*"/],
      [['--on-limit', 'wait'], /^mayhem: invalid --on-limit "wait": expected delay or skip/],
      [['--leashed', 'maybe'], /^mayhem: invalid --leashed "maybe": expected auto, true, false/],
    ] as const) {
      const r = await mayhem('run', '--db', 'memory:', ...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const r = await mayhem('pause', '--db', 'memory:');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^mayhem: invalid --db "memory:": pause, resume and audit need the service's database/);
  }, 60_000);
});
