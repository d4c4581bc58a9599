/**
 * Fault test 4 of the distributed-engine issue: PostgreSQL goes away mid-run (every connection
 * terminated, then the server restarted) while the real CLI consumes from a real JetStream.
 * Saves and restart records are retried, messages whose retries run out are nacked and come back;
 * in the end every published message is acked exactly once, nothing is lost, nothing is acked
 * without its restart and save recorded, and no host is restarted after its restart was recorded.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';

// The compiled CLI (vitest runs this file from source; `npm test` builds first).
const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const N = 3000;

let nats: NatsServer;
let pgt: TestPostgres;

beforeAll(async () => {
  // A private PostgreSQL, so it can be restarted without disturbing anyone else's.
  [nats, pgt] = await Promise.all([startNatsServer(), startTestPostgres({ ownServer: true })]);
});
afterAll(async () => {
  await Promise.allSettled([nats?.destroy(), pgt?.close()]);
});

interface LogLine {
  time: number;
  msg: string;
  messageId?: string;
  level: number;
}

async function runCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stderr };
}

describe('fleet on PostgreSQL: database faults mid-run', () => {
  it('connections terminated and server restarted mid-run: saves retry, nothing lost', async () => {
    const stream = `PGFAULT${process.pid}`;
    const common = ['--broker', nats.url, '--stream', stream, '--subject', `pgfault.${process.pid}`];
    const pub = await runCli(['publish', ...common, '--count', String(N), '--rate', '0', '--log-level', 'warn']);
    expect(pub.stderr).toBe('');
    expect(pub.code).toBe(0);

    const child = spawn(
      process.execPath,
      [
        CLI,
        'run',
        ...common,
        '--durable',
        `pgfault${process.pid}`,
        '--db',
        pgt.url,
        '--count',
        String(N),
        '--max-in-flight',
        '100',
        '--restart-latency',
        '20ms',
        '--restart-failure-rate',
        '0',
        '--save-attempts',
        '8',
        '--retry-backoff',
        '50ms',
        '--nack-delay',
        '200ms',
        '--max-deliveries',
        '50',
        '--grace',
        '10s',
        '--log-level',
        'info',
        '--log-format',
        'json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;

    // Faults are driven by progress in the service's own log, not by the clock.
    const restarts = new Map<string, number[]>();
    const faults: Promise<unknown>[] = [];
    let acked = 0;
    let terminated = 0;
    let restartedServer = false;
    const writeErrors: string[] = [];
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      if (line.msg.startsWith('Restarted ') && line.messageId) {
        const times = restarts.get(line.messageId) ?? [];
        times.push(line.time);
        restarts.set(line.messageId, times);
      }
      if (/PostgreSQL (write|read|claim) failed|host lock unavailable|"dependency":"database"/.test(text))
        writeErrors.push(line.msg);
      if (line.msg.startsWith('Done. Acked')) {
        acked++;
        if (acked === Math.floor(N / 3)) {
          faults.push(pgt.terminateConnections().then((n) => (terminated = n)));
        }
        if (acked === Math.floor((2 * N) / 3)) {
          faults.push(pgt.restart!().then(() => (restartedServer = true)));
        }
      }
    });
    const [code] = await exited;
    await Promise.all(faults);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(terminated).toBeGreaterThan(0);
    expect(restartedServer).toBe(true);
    // The faults were felt (some writes failed and were retried), not slipped past.
    expect(writeErrors.length).toBeGreaterThan(0);

    const [totals] = await pgt.query<{ total: string; acked: string; bad: string; dead: string }>(
      `SELECT count(*) AS total,
              count(*) FILTER (WHERE acked) AS acked,
              count(*) FILTER (WHERE acked AND NOT (saved AND restarted)) AS bad,
              (SELECT count(*) FROM dead_letters) AS dead
       FROM messages`,
    );
    expect(totals).toEqual({ total: String(N), acked: String(N), bad: '0', dead: '0' });

    // No restart after the restart was recorded: every "Restarted" line of a message precedes the
    // commit that recorded it (restarted_at keeps the first recording).
    const rows = await pgt.query<{ message_id: string; at: number }>(
      `SELECT message_id, (extract(epoch FROM restarted_at) * 1000)::float8 AS at FROM messages`,
    );
    const recordedAt = new Map(rows.map((r) => [r.message_id, r.at]));
    let late = 0;
    for (const [id, times] of restarts) {
      const at = recordedAt.get(id);
      expect(at).toBeDefined();
      for (const t of times) if (t > at! + 1) late++;
    }
    expect(late).toBe(0);
    expect(restarts.size).toBe(N);
  }, 180_000);
});
