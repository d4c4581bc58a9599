/**
 * No secret in any output (issue 9 item 3): real runs of `mayhem publish` and `mayhem run` on
 * NATS (user and password required) and PostgreSQL with a secret in every URL, every line of
 * stdout and stderr read, at trace level and in pretty mode; failures that echo URLs; and the
 * PG* variables as the way to keep the password out of argv.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/src/cli/main.js');
const NATS_SECRET = 'NatsS3cretPw';
const PG_SECRET = 'PgS3cretPw';

let nats: NatsServer;
let pgt: TestPostgres;
let broker: string;
let db: string;

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first`);
  nats = await startNatsServer({ extraArgs: ['--user', 'admin', '--pass', NATS_SECRET] });
  pgt = await startTestPostgres();
  broker = nats.url.replace('nats://', `nats://admin:${NATS_SECRET}@`);
  const u = new URL(pgt.url);
  u.password = PG_SECRET; // the test servers trust local connections: the password is carried, not checked
  db = u.toString();
}, 120_000);

afterAll(async () => {
  await nats?.destroy();
  await pgt?.close();
});

function mayhem(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    // Never left running if a test fails or times out.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, out });
    });
  });
}

function expectNoSecret(out: string, ...secrets: string[]): void {
  const lines = out.split('\n');
  for (const secret of secrets) {
    const leaking = lines.filter((l) => l.includes(secret));
    expect(leaking, `lines printing ${secret}`).toEqual([]);
  }
}

describe('a run with a secret in every URL prints it nowhere', () => {
  it('publish, then run at trace level (JSON) and in pretty mode', async () => {
    const stream = ['--stream', 'SECRETS', '--subject', 'secrets.restart', '--dead-letter-subject', 'secrets.dead'];
    const publish = async (): Promise<void> => {
      const pub = await mayhem([
        'publish',
        '--broker',
        broker,
        '--count',
        '20',
        '--log-level',
        'trace',
        ...stream.slice(0, 4),
      ]);
      expect(pub.code, pub.out).toBe(0);
      expectNoSecret(pub.out, NATS_SECRET);
    };
    await publish();

    const common = [
      '--broker',
      broker,
      '--db',
      db,
      '--restart-latency',
      '1ms',
      '--restart-failure-rate',
      '0',
      ...stream,
    ];
    const trace = await mayhem(['run', ...common, '--count', '20', '--log-level', 'trace']);
    expect(trace.code).toBe(0);
    expect(trace.out.split('\n').length).toBeGreaterThan(80);
    expect(trace.out).toContain(`"db":"postgres://postgres:***@`);
    expectNoSecret(trace.out, NATS_SECRET, PG_SECRET);

    await publish();
    const pretty = await mayhem(['run', ...common, '--count', '20', '--log-format', 'pretty']);
    expect(pretty.code).toBe(0);
    expect(pretty.out).toContain('Mayhem Mandrill is consuming');
    expectNoSecret(pretty.out, NATS_SECRET, PG_SECRET);
  }, 120_000);

  it('failures that echo a URL: unreachable servers, bad settings, a bad URL from the environment', async () => {
    const outs = await Promise.all([
      mayhem(['run', '--broker', `nats://admin:${NATS_SECRET}@127.0.0.1:1`, '--db', 'memory:']),
      mayhem(['run', '--db', `postgres://app:${PG_SECRET}@127.0.0.1:1/x`]),
      mayhem(['run', '--db', `pg://app:${PG_SECRET}@db/x`]),
      mayhem(['run', '--db', `postgres://app@db/x?password=${PG_SECRET}`, '--max-in-flight', '0']),
      mayhem(['run', '--db', `postgres://app:${PG_SECRET}@h:99999/x`]),
      mayhem(['run'], { MAYHEM_BROKER: `nats://admin:${NATS_SECRET}@h:0` }),
      mayhem(['publish', '--broker', `nats://${NATS_SECRET}@127.0.0.1:1`, '--count', '1']),
    ]);
    for (const { code, out } of outs) {
      expect(code === 1 || code === 2, out).toBe(true);
      expect(out.split('\n'), out).toHaveLength(2);
      expectNoSecret(out, NATS_SECRET, PG_SECRET);
    }
  }, 60_000);
});

describe('PG* variables keep the password out of argv', () => {
  it('--db postgres:// takes host, port, user, database and password from PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD', async () => {
    const u = new URL(pgt.url);
    const env = {
      PGHOST: u.hostname,
      PGPORT: u.port || '5432',
      PGUSER: decodeURIComponent(u.username),
      PGDATABASE: u.pathname.slice(1),
      PGPASSWORD: PG_SECRET,
    };
    const run = await mayhem(
      [
        'run',
        '--db',
        'postgres://',
        '--count',
        '5',
        '--publish-rate',
        '0',
        '--restart-latency',
        '1ms',
        '--restart-failure-rate',
        '0',
      ],
      env,
    );
    expect(run.code, run.out).toBe(0);
    expectNoSecret(run.out, PG_SECRET);
    const rows = await pgt.query<{ n: string }>('SELECT count(*) AS n FROM messages WHERE acked');
    expect(Number(rows[0]?.n)).toBeGreaterThanOrEqual(5);
    // An unreachable PGHOST is named in the one-line error (not "localhost").
    const down = await mayhem(['run', '--db', 'postgres://'], { ...env, PGHOST: '127.0.0.1', PGPORT: '1' });
    expect(down.code).toBe(1);
    expect(down.out).toMatch(/^mayhem: cannot connect to PostgreSQL at 127\.0\.0\.1:1: /);
  }, 60_000);
});

describe("the restart command's environment (issue 23)", () => {
  it('holds none of the secrets the service was given: only PATH, HOME, LANG, the MAYHEM_HOST… fields and what --restart-env names', async () => {
    const dumps = mkdtempSync(join(tmpdir(), 'mayhem-env-'));
    const OTHER_SECRET = 'ApiT0kenS3cret';
    // A database of its own: the fleet's settings stored by the runs above (leashed auto) stay theirs.
    const own = new URL((await pgt.createDatabase()).url);
    own.password = PG_SECRET;
    const stream = ['--stream', 'ENVS', '--subject', 'envs.restart'];
    const pub = await mayhem(['publish', '--broker', broker, '--count', '5', ...stream]);
    expect(pub.code, pub.out).toBe(0);
    const run = await mayhem(
      [
        'run',
        ...stream,
        '--dead-letter-subject',
        'envs.dead',
        '--executor',
        'command',
        '--restart-shell',
        '--restart-command',
        `env > '${dumps}'/"$MAYHEM_MESSAGE_ID"`,
        '--restart-env',
        'PASSED_ON',
        '--leashed',
        'false',
        '--count',
        '5',
      ],
      {
        // Secrets by every way the service takes them: MAYHEM_* settings, PG*, and any other variable.
        MAYHEM_BROKER: broker,
        MAYHEM_DB: own.toString(),
        PGPASSWORD: PG_SECRET,
        API_TOKEN: OTHER_SECRET,
        PASSED_ON: 'asked-for',
        LANG: 'C.UTF-8',
      },
    );
    expect(run.code, run.out).toBe(0);
    const files = readdirSync(dumps);
    expect(files).toHaveLength(5);
    for (const f of files) {
      const env = readFileSync(join(dumps, f), 'utf8');
      for (const secret of [NATS_SECRET, PG_SECRET, OTHER_SECRET])
        expect(env, `${f} holds ${secret}`).not.toContain(secret);
      const names = env
        .split('\n')
        .filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
        .map((l) => l.slice(0, l.indexOf('=')))
        .filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n)); // what /bin/sh sets itself
      expect(names.sort()).toEqual(
        [
          'HOME',
          'LANG',
          'MAYHEM_ATTEMPT',
          'MAYHEM_DELIVERY',
          'MAYHEM_HOST',
          'MAYHEM_INSTANCE',
          'MAYHEM_MESSAGE_ID',
          'PASSED_ON',
          'PATH',
        ].filter((n) => n !== 'HOME' || process.env['HOME'] !== undefined),
      );
      expect(env).toContain('PASSED_ON=asked-for');
      expect(env).toContain(`MAYHEM_MESSAGE_ID=${f}`);
    }
    rmSync(dumps, { recursive: true, force: true });
  }, 60_000);
});
