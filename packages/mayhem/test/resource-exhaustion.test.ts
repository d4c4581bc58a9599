/**
 * Issue 23, item 1, against the real CLI: the service runs under a lowered descriptor limit (ulimit -n
 * 256, then pinned at what it holds with prlimit) while idle connections to its --http port hold
 * descriptors; restarts go through the command executor meanwhile. Spawns fail with EMFILE: the service keeps running, tells it once, and every
 * restart that could not start runs once the pressure is gone — exactly once, none in doubt (counted
 * in the database and in the command's own journal, not in the service's summary).
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, MAIN, type Line } from './helpers/cli.js';
import { freePort } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-emfile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('descriptors run out mid-run (ulimit -n 256, idle sockets on --http)', () => {
  it('keeps running; every restart that could not start runs once the pressure is gone, exactly once, none in doubt; told once', async () => {
    const journal = join(dir, 'journal');
    const db = join(dir, 'emfile.db');
    const script = join(dir, 'restart.sh');
    writeFileSync(script, `#!/bin/sh\necho "$MAYHEM_MESSAGE_ID" >> '${journal}'\n`);
    chmodSync(script, 0o755);
    const port = await freePort();
    const N = 2000;
    const args = [
      MAIN,
      'run',
      '--executor',
      'command',
      '--restart-command',
      `${script} {host}`,
      '--leashed',
      'false',
      '--http',
      `127.0.0.1:${port}`,
      '--db',
      `sqlite:${db}`,
      '--count',
      String(N),
      '--publish-rate',
      '250',
      '--retry-backoff',
      '50ms',
      '--nack-delay',
      '200ms',
      '--log-format',
      'json',
    ];
    const child = spawn('bash', ['-c', 'ulimit -n 256; exec "$0" "$@"', process.execPath, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Line[] = [];
    let partial = '';
    let stderr = '';
    let notify = (): void => undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const p of parts) if (p.trim() !== '') lines.push(JSON.parse(p) as Line);
      notify();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const seen = (re: RegExp): boolean => lines.some((l) => re.test(l.msg));
    const until = (re: RegExp): Promise<void> =>
      new Promise((resolve) => {
        notify = () => {
          if (seen(re)) resolve();
        };
        notify();
      });

    await until(/^Pulled /);
    // Idle connections to --http hold descriptors, as an abuser's would; then the soft limit is
    // pinned at what the process holds now (prlimit on the running process: no race with how fast
    // the sockets are accepted), so every new descriptor fails with EMFILE until it is raised again.
    const sockets: Socket[] = [];
    for (let i = 0; i < 100; i++) sockets.push(connect(port, '127.0.0.1').on('error', () => undefined));
    await Promise.all(sockets.map((s) => new Promise((r) => s.once('connect', r).once('error', r))));
    const pid = child.pid!;
    const held = readdirSync(`/proc/${pid}/fd`).length;
    execFileSync('prlimit', ['--pid', String(pid), `--nofile=${held}:256`]);
    await until(/could not start: EMFILE/);
    // The pressure goes; the restarts that could not start are retried and run.
    execFileSync('prlimit', ['--pid', String(pid), '--nofile=256:256']);
    for (const s of sockets) s.destroy();
    const code = await exited;

    expect(code, stderr).toBe(0);
    expect(stderr).not.toMatch(/TypeError|reading 'on'/);
    const said = (re: RegExp): string[] => lines.filter((l) => re.test(l.msg)).map((l) => l.msg);
    // Told once per episode (not per message): the pressure, and perhaps the burst of retries right
    // after it (hundreds of commands starting at once under 256 descriptors); each episode ends in one line.
    const episodes = said(/could not start: EMFILE/).length;
    expect(episodes).toBeGreaterThanOrEqual(1);
    expect(episodes).toBeLessThanOrEqual(3);
    expect(said(/starting again: the fault lasted/)).toHaveLength(episodes);
    expect(said(/Handling general error/)).toEqual([]);
    expect(said(/leaving it in doubt|Restart of .* is in doubt/)).toEqual([]);

    // The journal: one line per run of the command.
    const runs = existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').filter(Boolean) : [];
    const perId = new Map<string, number>();
    for (const id of runs) perId.set(id, (perId.get(id) ?? 0) + 1);
    expect([...perId.values()].filter((n) => n > 1)).toEqual([]);
    // The database: every acked message's restart ran exactly once, none in doubt, none dead-lettered.
    const file = new Database(db, { readonly: true });
    try {
      const acked = file.prepare('SELECT message_id FROM messages WHERE acked = 1').pluck().all() as string[];
      expect(acked.length).toBeGreaterThanOrEqual(N);
      expect(acked.filter((id) => perId.get(id) !== 1)).toEqual([]);
      const one = (sql: string): number => file.prepare(sql).pluck().get() as number;
      expect(one('SELECT count(*) FROM messages WHERE restarted = 0 AND restart_claimed > restart_released')).toBe(0);
      expect(one('SELECT count(*) FROM messages WHERE dead_lettered = 1')).toBe(0);
      expect(one("SELECT count(*) FROM audit WHERE outcome = 'in-doubt'")).toBe(0);
      // Every run of the command has its restarted row.
      expect(one("SELECT count(DISTINCT message_id) FROM audit WHERE outcome = 'restarted'")).toBe(perId.size);
      expect(one("SELECT count(*) FROM audit WHERE outcome = 'restarted'")).toBe(perId.size);
    } finally {
      file.close();
    }
  }, 120_000);
});

describe('expected faults are told as faults, not as bugs', () => {
  it('a restart timeout: one line naming it per restart, in doubt, never "Handling general error"', async () => {
    const run = cli([
      'run',
      '--executor',
      'command',
      '--restart-command',
      'sleep 5',
      '--restart-timeout',
      '200ms',
      '--leashed',
      'false',
      '--db',
      'memory:',
      '--count',
      '3',
      '--publish-rate',
      '20',
      '--nack-delay',
      '100ms',
      '--log-format',
      'json',
    ]);
    const { code } = await run.exited;
    expect(code, run.stderr()).toBe(0);
    const said = (re: RegExp): string[] => run.lines.filter((l) => re.test(l.msg)).map((l) => l.msg);
    expect(said(/Handling general error/)).toEqual([]);
    const timedOut = said(/ended without saying whether it happened \(the restart command for .* ran past 200ms/);
    expect(timedOut.length).toBeGreaterThanOrEqual(1);
    // Each timed-out restart is told once where it happened, and its redelivery finds it in doubt.
    expect(said(/^Restart of .* is in doubt/).length).toBeGreaterThanOrEqual(1);
  }, 60_000);
});
