/**
 * The CLI as a new user meets it in the first hour (issue 9, "Low"): `npx mayhem` from a clone,
 * help that lists flags, booleans that take a value and can be undone, one-line errors for bad
 * ports, nulls and files, and a log file that fills while the service runs.
 */
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PKG = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = resolve(PKG, '../..');
const MAIN = join(PKG, 'dist/src/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'mayhem-cli-hostile-'));

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mayhem(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  command: string[] = [process.execPath, MAIN],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const [bin, ...pre] = command as [string, ...string[]];
    const child = spawn(bin, [...pre, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // Never left running if a test fails or times out.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

const fast = ['--db', 'memory:', '--publish-rate', '0', '--restart-latency', '1ms', '--restart-failure-rate', '0'];
const lines = (text: string): Record<string, unknown>[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('npx mayhem from a clone, after npm ci', () => {
  it('the bin is a committed, executable file that npm linked into node_modules/.bin', () => {
    const pkg = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    const bin = join(PKG, pkg.bin.mayhem ?? '');
    expect(statSync(bin).mode & 0o111).not.toBe(0);
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    if (existsSync(join(ROOT, '.git'))) {
      const staged = execFileSync('git', ['ls-files', '-s', pkg.bin.mayhem ?? ''], { cwd: PKG, encoding: 'utf8' });
      expect(staged).toMatch(/^100755 /);
    }
    expect(existsSync(join(ROOT, 'node_modules/.bin/mayhem'))).toBe(true);
  });

  it('npx --no-install mayhem run works', async () => {
    const r = await mayhem(['run', ...fast, '--count', '3', '--log-level', 'warn'], {}, [
      'npx',
      '--no-install',
      'mayhem',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }, 60_000);
});

describe('help', () => {
  it('mayhem --help shows the commands, the main flags, the environment variables and the exit codes', async () => {
    const r = await mayhem(['--help']);
    expect(r.code).toBe(0);
    for (const text of [
      'run [options]',
      'publish [options]',
      '--broker <url>',
      '--db <url>',
      '--count <n>',
      '--dry-run [bool]',
      'MAYHEM_',
      'PGPASSWORD',
      '--nats-creds',
      'Exit codes',
      'mayhem run --help',
    ]) {
      expect(r.stdout).toContain(text);
    }
  });

  it('mayhem run --help lists every flag, the new ones too', async () => {
    const r = await mayhem(['run', '--help']);
    for (const text of [
      '--max-backlog <value>',
      '--dry-run [bool]',
      '--no-dry-run',
      '--nats-creds <file>',
      '--nats-nkey <file>',
      '--nats-token-file <file>',
      '--dead-letter-max-age <value>',
      'at most 1h',
    ]) {
      expect(r.stdout).toContain(text);
    }
  });
});

describe('booleans take a value and can be undone', () => {
  it('--dry-run true restarts nothing; --no-dry-run and --dry-run false undo MAYHEM_DRY_RUN=true', async () => {
    const dry = await mayhem(['run', ...fast, '--count', '3', '--dry-run', 'true']);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(lines(dry.stdout).filter((l) => String(l.msg).startsWith('Leashed: would restart'))).toHaveLength(3);
    for (const undo of [['--no-dry-run'], ['--dry-run', 'false']]) {
      const r = await mayhem(['run', ...fast, '--count', '3', ...undo], { MAYHEM_DRY_RUN: 'true' });
      expect(r.code).toBe(0);
      const summary = lines(r.stdout).find((l) => String(l.msg).startsWith('Summary ('));
      expect(summary?.restarted).toBe(3);
    }
  });
});

describe('bad values are one line and exit 2', () => {
  it.each([
    [
      ['--statsd', 'localhost:0'],
      /^mayhem: invalid --statsd "localhost:0": expected host:port with a port from 1 to 65535/,
    ],
    [
      ['--broker', 'nats://h:99999'],
      /^mayhem: invalid --broker "nats:\/\/h:99999": expected memory or nats:\/\/host:port/,
    ],
    [['--grace', '3000000000'], /^mayhem: invalid --grace "3000000000": .*at most 1h$/m],
    [['--ack-deadline', '3000000000'], /^mayhem: invalid --ack-deadline "3000000000": .*at most 12h$/m],
    [['--db', 'sqlite:'], /^mayhem: invalid --db "sqlite:": sqlite: needs a file path/],
  ])('%j', async (args, message) => {
    const r = await mayhem(['run', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.split('\n')).toHaveLength(2);
  });

  it('null in a config file, and the variable named for an env value', async () => {
    const path = join(dir, 'null.json');
    writeFileSync(path, '{"maxInFlight": null}');
    const r = await mayhem(['run', '--config', path]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`mayhem: invalid "maxInFlight" in ${path} null: expected a whole number from 1 to 1000000\n`);
    const env = await mayhem(['run'], { MAYHEM_DB: 'mysql://x' });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/^mayhem: invalid MAYHEM_DB "mysql:\/\/x"/);
  });

  it('a config file with a UTF-8 BOM runs', async () => {
    const path = join(dir, 'bom.json');
    writeFileSync(
      path,
      `\ufeff${JSON.stringify({ db: 'memory:', count: 2, publishRate: 0, restartLatency: '1ms', logLevel: 'warn' })}`,
    );
    const r = await mayhem(['run', '--config', path]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('the log file fills while the service runs', () => {
  it('dead-letter lines are in the file within a couple of seconds (and survive a SIGKILL)', async () => {
    const out = join(dir, 'service.log');
    const fd = openSync(out, 'w');
    const child = spawn(
      process.execPath,
      [MAIN, 'run', '--db', 'memory:', '--publish-rate', '2', '--malformed-every', '1'],
      { stdio: ['ignore', fd, 'inherit'] },
    );
    closeSync(fd);
    const exited = new Promise((r) => child.on('exit', r));
    const t0 = performance.now();
    let found = 0;
    while (performance.now() - t0 < 5000 && found < 2) {
      await new Promise((r) => setTimeout(r, 50));
      found = readFileSync(out, 'utf8')
        .split('\n')
        .filter((l) => l.includes('Dead-lettered malformed message')).length;
    }
    child.kill('SIGKILL');
    await exited;
    expect(found).toBeGreaterThanOrEqual(2);
    // Two messages at 2/s arrive within ~1 s; a flush at least every second adds at most one more.
    expect(performance.now() - t0).toBeLessThan(4000);
  });
});
