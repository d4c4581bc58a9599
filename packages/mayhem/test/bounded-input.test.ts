/**
 * Bounded input (issue 23, item 6): a message over `--max-message-bytes` is dead-lettered as its
 * size and first 1 KiB, in the database and in the dead-letter stream (sizes read from both); a
 * host name with a newline in a message is a dead letter; an unknown `MAYHEM_*` variable and a
 * control character in a name setting are one line and exit 2.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OTHER_MAYHEM_ENV } from '../src/config/config.js';
import { deadLetterPayload } from '../src/core/message.js';
import { cli, execCli, MAIN } from './helpers/cli.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-bounded-'));
let server: NatsServer;
let nc: NatsConnection;

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first`);
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
});

afterAll(async () => {
  await nc?.close();
  await server?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const request = (id: string, instanceName: string, extra: object = {}): string =>
  JSON.stringify({ messageId: id, instanceName, publishedAt: new Date().toISOString(), ...extra });

describe('--max-message-bytes', () => {
  it('dead-letters a larger message as its size and first 1 KiB, in SQLite and in the dead-letter stream', async () => {
    const db = join(dir, 'big.db');
    const stream = 'BIG';
    const run = cli([
      'run',
      '--broker',
      server.url,
      '--stream',
      stream,
      '--subject',
      'big.restart',
      '--dead-letter-subject',
      'big.dead',
      '--db',
      `sqlite:${db}`,
      '--max-message-bytes',
      '4KiB',
      '--restart-latency',
      '0',
      '--restart-failure-rate',
      '0',
      '--count',
      '4',
      '--log-format',
      'json',
    ]);
    await run.waitFor((ls) => ls.some((l) => l.msg === 'Mayhem Mandrill is consuming'));
    const js = jetstream(nc);
    const junk = 'x'.repeat(512 * 1024); // 512 KiB, not JSON (nats-server takes up to 1 MB)
    const padded = request('padded-1', 'web-1', { pad: 'p'.repeat(5000) }); // valid, but over 4 KiB
    await js.publish('big.restart', junk);
    await js.publish('big.restart', padded);
    await js.publish('big.restart', request('newline-1', 'web\n1'));
    await js.publish('big.restart', request('ok-1', 'web-2'));
    const { code } = await run.exited;
    expect(code).toBe(0);

    const sql = new Database(db, { readonly: true });
    try {
      const rows = sql
        .prepare(
          'SELECT message_id, length(CAST(payload AS BLOB)) AS bytes, payload, reason FROM dead_letters ORDER BY id',
        )
        .all() as { message_id: string | null; bytes: number; payload: string; reason: string }[];
      expect(rows).toHaveLength(3);
      const [big, pad, newline] = rows;
      expect(big!.reason).toBe('malformed: payload is 524288 bytes, more than 4096 (--max-message-bytes)');
      expect(big!.bytes).toBeLessThan(1100);
      expect(big!.payload).toBe(`${'x'.repeat(1024)}… [524288 bytes; the first 1024 kept]`);
      expect(pad!.reason).toBe(
        `malformed: payload is ${Buffer.byteLength(padded)} bytes, more than 4096 (--max-message-bytes)`,
      );
      expect(pad!.bytes).toBeLessThan(1100);
      expect(newline!.reason).toMatch(/^malformed: instanceName must be a host name .*got "web 1"$/);
      const acked = sql.prepare('SELECT count(*) FROM messages WHERE acked = 1').pluck().get();
      expect(acked).toBe(1);
    } finally {
      sql.close();
    }

    const jsm = await jetstreamManager(nc);
    const dead = await jsm.streams.info(`${stream}_DEAD`);
    expect(dead.state.messages).toBe(3);
    // Three dead letters with their headers, not 512 KiB + 5 KB of copies.
    expect(dead.state.bytes).toBeLessThan(4096);
    const first = await jsm.streams.getMessage(`${stream}_DEAD`, { seq: 1 });
    expect(first!.data.byteLength).toBe(1024);
    expect(first!.header.get('Mayhem-Original-Bytes')).toBe('524288');
    const third = await jsm.streams.getMessage(`${stream}_DEAD`, { seq: 3 });
    // Within the limit: kept whole, no size header.
    expect(JSON.parse(new TextDecoder().decode(third!.data))).toMatchObject({
      messageId: 'newline-1',
      instanceName: 'web\n1',
    });
    expect(third!.header.get('Mayhem-Original-Bytes')).toBe('');
  });

  it('cuts the prefix on a whole character', () => {
    const text = `${'a'.repeat(1023)}é${'b'.repeat(5000)}`;
    expect(deadLetterPayload(Buffer.from(text), 4096)).toBe(
      `${'a'.repeat(1023)}… [${Buffer.byteLength(text)} bytes; the first 1024 kept]`,
    );
    expect(deadLetterPayload(Buffer.from('small'), 4096)).toBe('small');
  });
});

describe('names and the environment', () => {
  it('refuses an unknown MAYHEM_* variable with one line and exit 2, and takes the documented others', async () => {
    const r = await execCli(['run', '--db', 'memory:', '--count', '1'], { MAYHEM_MAX_INFLIGHT: '10' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'mayhem: unknown environment variable MAYHEM_MAX_INFLIGHT: settings are MAYHEM_<FLAG> (--max-in-flight → MAYHEM_MAX_IN_FLIGHT; mayhem run --help lists them)\n',
    );
    const p = await execCli(['publish', '--broker', 'nats://127.0.0.1:1', '--count', '1'], { MAYHEM_X: '1' });
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/^mayhem: unknown environment variable MAYHEM_X:/);
    // What the executors set for their children, the tests' and scripts' own: not settings, accepted.
    const others = Object.fromEntries(OTHER_MAYHEM_ENV.filter((n) => n !== 'MAYHEM_CONFIG').map((n) => [n, '1']));
    expect(Object.keys(others)).toEqual(
      expect.arrayContaining(['MAYHEM_INSTANCE', 'MAYHEM_MESSAGE_ID', 'MAYHEM_ATTEMPT', 'MAYHEM_DELIVERY']),
    );
    const ok = await execCli(
      [
        'run',
        '--db',
        'memory:',
        '--count',
        '1',
        '--publish-rate',
        '0',
        '--restart-latency',
        '0',
        '--log-level',
        'silent',
      ],
      { ...others, MAYHEM_HOST: 'web-1.example.net', MAYHEM_MOCK_JOURNAL: join(dir, 'journal') },
    );
    expect(ok).toEqual({ code: 0, stderr: '' });
  });

  it.each([
    [
      ['--instance-name', 'ops\nINFO: forged'],
      {},
      'mayhem: invalid --instance-name "ops\\nINFO: forged": must not contain control characters (newline, tab, ...)',
    ],
    [
      [],
      { MAYHEM_INSTANCE_NAME: 'ops\r1' },
      'mayhem: invalid MAYHEM_INSTANCE_NAME "ops\\r1": must not contain control characters (newline, tab, ...)',
    ],
    [
      ['--instance-name', 'ops\u2028x'],
      {},
      'mayhem: invalid --instance-name "ops\u2028x": must not contain control characters (newline, tab, ...)',
    ],
  ])('refuses a control character in a name: %j %j', async (args, env, line) => {
    const r = await execCli(['run', '--db', 'memory:', ...args], env);
    expect(r).toEqual({ code: 2, stderr: `${line}\n` });
  });

  it('refuses one in the config file and in a pause reason', async () => {
    const file = join(dir, 'cfg.json');
    writeFileSync(file, JSON.stringify({ instanceName: 'a\tb' }));
    const r = await execCli(['run', '--db', 'memory:', '--config', file], {});
    expect(r).toEqual({
      code: 2,
      stderr: `mayhem: invalid "instanceName" in ${file} "a\\tb": must not contain control characters (newline, tab, ...)\n`,
    });
    const p = await execCli(
      ['pause', '--db', `sqlite:${join(dir, 'p.db')}`, '--reason', 'maintenance\nINFO: resumed'],
      {},
    );
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/^mayhem: invalid --reason "maintenance\\nINFO: resumed": must not contain control/);
  });
});
