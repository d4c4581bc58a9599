/**
 * The real CLI as a child process (build first: `npx tsc -b packages/mayhem`, which `npm test` does).
 * stdout is not a TTY, so logs are JSON lines; the SQLite file is read afterwards as an operator would.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, count, execCli, MAIN, summaryOf } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-cli-'));

beforeAll(() => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -b packages/mayhem)`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function query<T>(db: string, sql: string): T {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(sql).get() as T;
  } finally {
    conn.close();
  }
}

/** What must hold in the SQLite file after any run: nothing acked without restart and save recorded. */
function checkAckedRows(db: string, acked: number): void {
  expect(
    query<{ n: number }>(db, 'SELECT count(*) AS n FROM messages WHERE acked = 1 AND (restarted = 0 OR saved = 0)').n,
  ).toBe(0);
  expect(query<{ n: number }>(db, 'SELECT count(*) AS n FROM messages WHERE acked = 1').n).toBe(acked);
}

describe('mayhem run (child process)', () => {
  it('--count 2000 at full speed: exits 0, counts add up, every acked row restarted and saved', async () => {
    const db = join(dir, 'm.db');
    const run = cli([
      'run',
      '--count',
      '2000',
      '--publish-rate',
      '0',
      '--restart-latency',
      '5ms',
      '--db',
      `sqlite:${db}`,
      '--log-level',
      'info',
      '--seed',
      '7',
    ]);
    const { code } = await run.exited;
    expect(run.stderr()).toBe('');
    expect(code).toBe(0);
    const s = summaryOf(run.lines);
    expect(s.reason).toBe('all 2000 messages settled');
    expect(s.published).toBe(2000);
    expect(s.acked + s.deadLettered).toBe(2000);
    expect(s.pulled).toBe(s.acked + s.nacked + s.deadLettered);
    expect(s).toMatchObject({ inFlight: 0, leftInBroker: 0 });
    expect(run.lines.at(-1)?.msg).toBe('Successfully shutdown the Mayhem service.');
    expect(count(run.lines, (l) => l.msg.startsWith('Done. Acked '))).toBe(s.acked);

    checkAckedRows(db, s.acked);
    expect(query<{ n: number }>(db, 'SELECT count(*) AS n FROM messages WHERE acked = 1 OR dead_lettered = 1').n).toBe(
      2000,
    );
    expect(query<{ n: number }>(db, 'SELECT count(*) AS n FROM dead_letters').n).toBe(s.deadLettered);
  });

  it('SIGTERM mid-flight: exits 0 within the grace period, nacks back everything not acked', async () => {
    const db = join(dir, 'sigterm.db');
    const graceMs = 200;
    const run = cli([
      'run',
      '--publish-rate',
      '0',
      '--restart-latency',
      '500ms',
      '--grace',
      `${graceMs}ms`,
      '--db',
      `sqlite:${db}`,
    ]);
    await run.waitFor(
      (lines) =>
        count(lines, (l) => l.msg.startsWith('Pulled ')) >= 1000 && lines.some((l) => l.msg.startsWith('Done. Acked ')),
    );
    const signalled = performance.now();
    run.child.kill('SIGTERM');
    const { code, at } = await run.exited;
    expect(run.stderr()).toBe('');
    expect(code).toBe(0);
    // Grace plus a margin for nacking, closing SQLite and exiting on a busy machine.
    expect(at - signalled).toBeLessThan(graceMs + 1500);

    const msgs = run.lines.map((l) => l.msg);
    expect(msgs).toContain('Received exit signal SIGTERM...');
    expect(msgs.at(-1)).toBe('Successfully shutdown the Mayhem service.');
    const s = summaryOf(run.lines);
    expect(s.reason).toBe('received SIGTERM');
    // Every delivery ended acked, nacked or dead-lettered; nothing was left in flight or leased.
    expect(s.inFlight).toBe(0);
    expect(s.pulled).toBe(s.acked + s.nacked + s.deadLettered);
    // Nothing published was lost: it was settled or handed back to the broker.
    expect(s.published).toBe(s.acked + s.deadLettered + s.leftInBroker);
    const cancelling = run.lines.find((l) => l.msg.startsWith('Cancelling '));
    expect(cancelling, 'the grace period was meant to run out with work in flight').toBeDefined();
    const cancelled = Number(/^Cancelling (\d+) outstanding tasks$/.exec(cancelling!.msg)?.[1]);
    expect(cancelled).toBeGreaterThan(0);
    // Each cancelled message nacks itself (a few may finish their ack in the same turn instead).
    const nackedOnCancel = count(run.lines, (l) => l.msg.startsWith('Cancelled; nacked '));
    expect(nackedOnCancel).toBeGreaterThan(0);
    expect(nackedOnCancel).toBeLessThanOrEqual(cancelled);
    checkAckedRows(db, s.acked);
  });

  it('a second signal during shutdown: one warning line, exit 130 at once', async () => {
    const run = cli(['run', '--publish-rate', '0', '--restart-latency', '3s', '--grace', '30s', '--db', 'memory:']);
    await run.waitFor((lines) => count(lines, (l) => l.msg.startsWith('Pulled ')) >= 500);
    run.child.kill('SIGTERM');
    await run.waitFor((lines) => lines.some((l) => l.msg.startsWith('Waiting up to 30000 ms')));
    const again = performance.now();
    run.child.kill('SIGINT');
    const { code, at } = await run.exited;
    expect(code).toBe(130);
    expect(at - again).toBeLessThan(1500);
    const warnings = run.lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual(['Received SIGINT again during shutdown; exiting now (130)']);
    expect(run.stderr()).toBe('');
  });

  it('malformed messages are dead-lettered, one log line each, and the service carries on', async () => {
    const db = join(dir, 'malformed.db');
    const run = cli([
      'run',
      '--count',
      '300',
      '--malformed-every',
      '10',
      '--publish-rate',
      '0',
      '--restart-latency',
      '2ms',
      '--restart-failure-rate',
      '0',
      '--db',
      `sqlite:${db}`,
    ]);
    const { code } = await run.exited;
    expect(run.stderr()).toBe('');
    expect(code).toBe(0);
    const s = summaryOf(run.lines);
    expect(s).toMatchObject({
      published: 300,
      deadLettered: 30,
      malformed: 30,
      acked: 270,
      inFlight: 0,
      leftInBroker: 0,
    });
    expect(count(run.lines, (l) => l.msg.startsWith('Dead-lettered malformed message: '))).toBe(30);
    expect(
      query<{ n: number }>(
        db,
        "SELECT count(*) AS n FROM dead_letters WHERE message_id IS NULL AND reason LIKE 'malformed: %'",
      ).n,
    ).toBe(30);
    checkAckedRows(db, 270);
  });

  describe('bad settings: one line on stderr, no stack trace', () => {
    it.each([
      [['--max-in-flight', 'abc'], 2, /^mayhem: invalid --max-in-flight "abc": expected a whole number/],
      [['--extend-every', '5x'], 2, /^mayhem: invalid --extend-every "5x": expected a duration like 250ms, 2s/],
      [['--no-such-flag'], 2, /^mayhem: unknown option '--no-such-flag'/],
      [['--db', 'mysql://x'], 2, /^mayhem: invalid --db "mysql:\/\/x": expected sqlite:<path>, postgres:/],
      [['--log-level', 'loud'], 2, /^mayhem: invalid --log-level "loud": expected trace, debug/],
      [['--db', 'sqlite:/nonexistent/dir/x.db', '--count', '1'], 1, /^mayhem: .*\/nonexistent\/dir/],
      // Unreachable servers: one line naming the server, exit 1, nothing half-open left behind.
      [
        ['--broker', 'nats://127.0.0.1:1', '--db', 'memory:'],
        1,
        /^mayhem: cannot connect to NATS at nats:\/\/127\.0\.0\.1:1: /,
      ],
      [
        ['--db', 'postgres://postgres@127.0.0.1:1/test'],
        1,
        /^mayhem: cannot connect to PostgreSQL at 127\.0\.0\.1:1: /,
      ],
    ])('%j → exit %d', async (args, exitCode, message) => {
      const run = cli(['run', ...args]);
      const { code } = await run.exited;
      expect(code).toBe(exitCode);
      const err = run.stderr();
      expect(err).toMatch(message);
      expect(err.split('\n')).toHaveLength(2);
      expect(err.endsWith('\n')).toBe(true);
      expect(err).not.toMatch(/^\s+at /m);
    });

    it('a bad MAYHEM_* value names the variable; publish on the memory broker is a usage error', async () => {
      const env = await execCli(['run'], { MAYHEM_GRACE: 'soon' });
      expect(env.code).toBe(2);
      expect(env.stderr).toBe(
        'mayhem: invalid MAYHEM_GRACE "soon": expected a duration like 250ms, 2s or 1m (a bare number is ms), at most 1h\n',
      );
      const publish = await execCli(['publish', '--count', '1'], {});
      expect(publish.code).toBe(2);
      expect(publish.stderr).toMatch(
        /^mayhem: publish needs an external broker \(--broker nats:\/\/host:port\)[^\n]*\n$/,
      );
    });
  });
});
