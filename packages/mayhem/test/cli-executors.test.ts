/**
 * The real executors through the real CLI: the README's "Running it for real" example (local
 * services restarted through the command executor), a command that keeps failing, a restart cut
 * off by SIGTERM (its process stopped, its restart left in doubt in the database), and the
 * settings checked at start.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, count, execCli, summaryOf } from './helpers/cli.js';
import { alive, allGone, fileWritten } from './helpers/processes.js';

const SERVICES = resolve(dirname(fileURLToPath(import.meta.url)), '../examples/local-services.sh');
const dir = mkdtempSync(join(tmpdir(), 'mayhem-cli-exec-'));
afterAll(() => {
  execFileSync(SERVICES, ['stop', join(dir, 'services')]);
  rmSync(dir, { recursive: true, force: true });
});

function rows<T>(db: string, sql: string): T[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(sql).all() as T[];
  } finally {
    conn.close();
  }
}

const pidOf = (services: string, name: string): number => Number(readFileSync(join(services, `${name}.pid`), 'utf8'));

describe('mayhem run with real executors (child process)', () => {
  it('the README example: local services restarted through the command executor, each once per message', async () => {
    const services = join(dir, 'services');
    execFileSync(SERVICES, ['start', services, 'web-1', 'web-2', 'web-3']);
    const before = ['web-1', 'web-2', 'web-3'].map((n) => pidOf(services, n));
    const db = join(dir, 'example.db');
    const run = cli([
      'run',
      '--leashed',
      'false',
      '--executor',
      'command',
      '--restart-command',
      `${SERVICES} restart ${services} {instance}`,
      '--instances',
      'web-1,web-2,web-3',
      '--count',
      '6',
      '--publish-rate',
      '20',
      '--db',
      `sqlite:${db}`,
      '--seed',
      '3',
    ]);
    const { code } = await run.exited;
    expect(run.stderr()).toBe('');
    expect(code).toBe(0);
    expect(run.lines.find((l) => l.msg.startsWith('Restart executor: '))?.msg).toBe(
      `Restart executor: command (program ${SERVICES}, fields {instance}; timeout 30s)`,
    );
    const s = summaryOf(run.lines);
    expect(s).toMatchObject({ published: 6, acked: 6, nacked: 0, deadLettered: 0 });

    // What the services saw: six restarts, each a new process in place of the one before.
    const log = readFileSync(join(services, 'restarts.log'), 'utf8').trim().split('\n');
    expect(log).toHaveLength(6);
    const acked = rows<{ instance_name: string }>(
      db,
      'SELECT instance_name FROM messages WHERE acked = 1 AND restarted = 1',
    );
    expect(acked).toHaveLength(6);
    for (const name of ['web-1', 'web-2', 'web-3']) {
      const times = log.filter((l) => l.includes(` ${name} `)).length;
      expect(times).toBe(acked.filter((r) => r.instance_name === name).length);
    }
    const after = ['web-1', 'web-2', 'web-3'].map((n) => pidOf(services, n));
    for (const [i, pid] of after.entries()) {
      expect(alive(pid)).toBe(true);
      if (log.some((l) => l.includes(` web-${i + 1} `))) expect(pid).not.toBe(before[i]);
    }
  });

  it('a command that keeps failing: retried, then dead-lettered with its stderr line as the reason', async () => {
    const db = join(dir, 'failing.db');
    const run = cli([
      'run',
      '--leashed',
      'false',
      '--executor',
      'command',
      '--restart-command',
      `${SERVICES} restart ${join(dir, 'services')} {instance}`,
      '--instances',
      'web-9',
      '--count',
      '1',
      '--publish-rate',
      '0',
      '--restart-attempts',
      '2',
      '--max-deliveries',
      '2',
      '--retry-backoff',
      '10ms',
      '--nack-delay',
      '10ms',
      '--db',
      `sqlite:${db}`,
    ]);
    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(summaryOf(run.lines)).toMatchObject({ deadLettered: 1, acked: 0 });
    expect(count(run.lines, (l) => l.msg === 'Retrying for failure to restart: web-9.example.net')).toBe(2);
    const [dead] = rows<{ reason: string }>(db, 'SELECT reason FROM dead_letters');
    expect(dead?.reason).toMatch(
      new RegExp(
        `the restart command for web-9\\.example\\.net exited with code 3: no service named web-9 in ${join(dir, 'services')}$`,
      ),
    );
  });

  it('SIGTERM while a restart command runs: after --grace its process is stopped, the restart left in doubt', async () => {
    const db = join(dir, 'sigterm.db');
    const pids = join(dir, 'pids');
    const run = cli([
      'run',
      '--leashed',
      'false',
      '--executor',
      'command',
      '--restart-command',
      `sh -c 'echo $$ > "$0"; exec sleep 30' ${pids}`,
      '--instances',
      'web-1',
      '--publish-rate',
      '1',
      '--grace',
      '300ms',
      '--db',
      `sqlite:${db}`,
    ]);
    const pid = Number((await fileWritten(pids)).trim());
    expect(alive(pid)).toBe(true);
    const signalled = performance.now();
    run.child.kill('SIGTERM');
    const { code, at } = await run.exited;
    expect(code).toBe(0);
    expect(at - signalled).toBeLessThan(300 + 3000);
    await allGone([pid]);
    expect(run.stderr()).toBe('');
    expect(
      count(run.lines, (l) =>
        /^Stopping the restart command for web-1\.example\.net \(pid \d+\): shutdown$/.test(l.msg),
      ),
    ).toBe(1);
    expect(
      count(run.lines, (l) =>
        l.msg.startsWith('Restart of web-1.example.net ended without saying whether it happened'),
      ),
    ).toBe(1);
    // In the database: claimed, never released, not restarted — a redelivery will not run it again.
    const doubt = rows<{ n: number }>(
      db,
      'SELECT count(*) AS n FROM messages WHERE restart_claimed > restart_released AND restarted = 0',
    )[0]!;
    expect(doubt.n).toBe(1);
  });

  describe('bad executor settings: one line, exit 2 (exit 1 for an unreachable daemon), no secret shown', () => {
    const headers = join(dir, 'headers');
    writeFileSync(headers, 'Authorization: Bearer s3cr3t\nX-Broken header\n');
    it.each([
      [['--executor', 'command'], 2, /^mayhem: --executor command needs --restart-command/],
      [
        ['--executor', 'command', '--restart-command', 'ssh {host} reboot | logger'],
        2,
        /^mayhem: invalid --restart-command: \| in the restart command is shell syntax/,
      ],
      [
        ['--executor', 'command', '--restart-command', 'no-such-program-x {host}'],
        2,
        /^mayhem: invalid --restart-command: its program "no-such-program-x" was not found in PATH/,
      ],
      [
        ['--executor', 'command', '--restart-shell', '--restart-command', 'reboot {host}'],
        2,
        /^mayhem: with --restart-shell the fields are environment variables/,
      ],
      [
        ['--restart-command', 'true'],
        2,
        /^mayhem: --restart-command is for --executor command, but the executor is mock/,
      ],
      [['--executor', 'http'], 2, /^mayhem: --executor http needs --restart-url/],
      [
        ['--executor', 'http', '--restart-url', 'https://{host}/restart'],
        2,
        /^mayhem: --restart-url: placeholders may only be in the path or query/,
      ],
      [
        ['--executor', 'http', '--restart-url', 'https://ops.example/{host}', '--restart-headers', headers],
        2,
        /^mayhem: invalid --restart-headers: .* line 2: expected "Name: value"\n$/,
      ],
      [
        ['--executor', 'docker', '--docker-host', `unix://${dir}/no.sock`],
        1,
        /^mayhem: cannot reach the Docker Engine at unix:\/\/.*no\.sock: .*ENOENT/,
      ],
      [['--executor', 'ssh'], 2, /^mayhem: invalid --executor "ssh": expected mock, command, http, docker\n$/],
      [
        ['--restart-timeout', '5'],
        2,
        /^mayhem: invalid --restart-timeout "5": expected a duration .* at least 100ms and at most 1h\n$/,
      ],
      [['--http', 'localhost'], 2, /^mayhem: invalid --http "localhost": expected host:port/],
      [['--instances', 'web-1,not a name'], 2, /^mayhem: invalid --instances "web-1,not a name"/],
    ])('%j → exit %i', async (args, code, message) => {
      const r = await execCli(['run', '--db', 'memory:', ...args], {});
      expect(r.code).toBe(code);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toContain('s3cr3t');
    });
  });
});
