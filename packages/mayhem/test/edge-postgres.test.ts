/**
 * Issue 9 item 2 end to end, on NATS JetStream + PostgreSQL: a publishedAt that PostgreSQL cannot
 * store (1e308, -1e20) or that is not a date ("1") is refused at the edge, so the message is
 * dead-lettered on its first delivery (its raw payload stored), its host is never restarted, and
 * the messages behind it are acked. On 305f043 such a message failed every save, was never
 * dead-lettered, and its host was restarted on delivery 1.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/src/cli/main.js');

let nats: NatsServer;
let pgt: TestPostgres;

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first`);
  nats = await startNatsServer();
  pgt = await startTestPostgres();
}, 120_000);

afterAll(async () => {
  await nats?.destroy();
  await pgt?.close();
});

function mayhem(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

describe('publishedAt outside what PostgreSQL stores', () => {
  it('is dead-lettered as malformed on delivery 1 with its raw payload; no restart; the rest acked', async () => {
    const stream = ['--broker', nats.url, '--stream', 'EDGE', '--subject', 'edge.restart'];
    const bad = [
      { messageId: 'huge', instanceName: 'seqhost-a', publishedAt: 1e308 },
      { messageId: 'negative', instanceName: 'seqhost-b', publishedAt: -1e20 },
      { messageId: 'one', instanceName: 'seqhost-c', publishedAt: '1' },
    ];
    for (const b of bad)
      expect((await mayhem(['publish', ...stream, '--raw', JSON.stringify(b), '--count', '1'])).code).toBe(0);
    expect((await mayhem(['publish', ...stream, '--count', '3'])).code).toBe(0);
    const run = await mayhem([
      'run',
      ...stream,
      '--dead-letter-subject',
      'edge.dead',
      '--db',
      pgt.url,
      '--count',
      '6',
      '--max-deliveries',
      '2',
      '--restart-latency',
      '1ms',
      '--restart-failure-rate',
      '0',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => String(l.msg).startsWith('Summary ('))).toMatchObject({
      acked: 3,
      deadLettered: 3,
      malformed: 3,
      pulled: 6,
    });
    // Never restarted: no "Restarted seqhost-..." line, and no row for them in messages.
    expect(lines.filter((l) => String(l.msg).startsWith('Restarted seqhost-'))).toEqual([]);
    const rows = await pgt.query<{ reason: string; payload: string }>(
      'SELECT reason, payload FROM dead_letters ORDER BY payload',
    );
    expect(rows).toHaveLength(3);
    for (const r of rows) expect(r.reason).toMatch(/^malformed: publishedAt is (?:out of range|not an ISO-8601)/);
    expect(rows.map((r) => (JSON.parse(r.payload) as { messageId: string }).messageId).sort()).toEqual([
      'huge',
      'negative',
      'one',
    ]);
    const acked = await pgt.query<{ n: string }>(
      "SELECT count(*) AS n FROM messages WHERE acked AND restarted AND instance_name NOT LIKE 'seqhost-%'",
    );
    expect(Number(acked[0]?.n)).toBe(3);
  }, 120_000);
});
