/**
 * The safety rails shared by a fleet: two `mayhem run` instances on one NATS JetStream stream and one
 * PostgreSQL database. The kill switch stops both within a second; the per-host interval and the
 * restart slots hold across instances. Needs `npm run build` first (the instances run from dist).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  fleetNames,
  Instance,
  killAll,
  publishRequests,
  runArgs,
  waitDrained,
  waitFor,
  type FleetNames,
} from './fleet-harness.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'mayhem-rails-fleet-'));
let nats: NatsServer;
let pgt: TestPostgres;
const instances: Instance[] = [];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
  [nats, pgt] = await Promise.all([startNatsServer(), startTestPostgres()]);
}, 120_000);
afterEach(async () => {
  await killAll(instances.splice(0));
});
afterAll(async () => {
  await killAll(instances.splice(0));
  await nats?.destroy();
  await pgt?.close();
  rmSync(dir, { recursive: true, force: true });
});

const LEASE = ['--ack-deadline', '3s', '--extend-every', '1s', '--nack-delay', '100ms', '--retry-backoff', '20ms'];

function fleet(names: FleetNames, db: string, extra: string[]): Instance[] {
  const args = runArgs({ brokerUrl: nats.url, dbUrl: db, names, extra: [...LEASE, ...extra] });
  const pair = [
    new Instance('A', [...args, '--instance-name', 'A']),
    new Instance('B', [...args, '--instance-name', 'B']),
  ];
  instances.push(...pair);
  return pair;
}

async function stop(i: Instance): Promise<void> {
  i.kill('SIGTERM');
  expect((await i.exited).code, i.describe()).toBe(0);
}

async function audit(
  db: string,
  where = '',
): Promise<{ at: number; instance: string; host: string; outcome: string }[]> {
  const c = new pg.Client({ connectionString: db });
  await c.connect();
  try {
    const { rows } = await c.query<{ at: number; instance: string; host: string; outcome: string }>(
      `SELECT extract(epoch FROM at) * 1000 AS at, instance, host, outcome FROM audit ${where} ORDER BY at, id`,
    );
    return rows.map((r) => ({ ...r, at: Number(r.at) }));
  } finally {
    await c.end();
  }
}

const restartsOf = (i: Instance): number[] => i.lines.filter((l) => l.msg.startsWith('Restarted ')).map((l) => l.time);

describe('rails across a fleet (NATS + PostgreSQL)', () => {
  it('mayhem pause stops both instances within a second; resume lets them finish; nothing lost', async () => {
    const names = fleetNames('pause');
    const db = await pgt.createDatabase();
    const published = await publishRequests([nats.url], names, 'pause', 1500, { hostPerMessage: true });
    const [a, b] = fleet(names, db.url, [
      '--max-in-flight',
      '20',
      '--restart-latency',
      '200ms',
      '--restart-failure-rate',
      '0',
    ]);
    await a!.until('both restarting', () => restartsOf(a!).length >= 10 && restartsOf(b!).length >= 10);
    const { stdout } = await run(process.execPath, [CLI, 'pause', '--db', db.url, '--reason', 'drill']);
    expect(stdout).toMatch(/^Restarts paused on postgres:\/\/.* by .* \(drill\)/);
    const pausedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    // A restart may end up to its latency (200 ms) after the last one allowed to start (≤ 1 s).
    for (const i of [a!, b!]) {
      expect(
        restartsOf(i).filter((t) => t > pausedAt + 1000 + 200),
        i.describe(),
      ).toEqual([]);
      expect(
        i.lines.some((l) => l.msg.startsWith('Intake paused: restarts paused by ') && l.msg.endsWith('(drill)')),
        i.describe(),
      ).toBe(true);
    }
    await run(process.execPath, [CLI, 'resume', '--db', db.url]);
    const resumedAt = Date.now();
    await waitDrained([nats.url], names, 90_000, [a!, b!]);
    // The pause held work back (it was not all done before it): restarts went on after the resume.
    expect([...restartsOf(a!), ...restartsOf(b!)].filter((t) => t > resumedAt).length).toBeGreaterThan(0);
    await stop(a!);
    await stop(b!);
    const rows = await audit(db.url, `WHERE outcome = 'restarted'`);
    expect(new Set(rows.map((r) => r.host)).size).toBe(published.ids.length);
    expect(rows).toHaveLength(published.ids.length);
  }, 120_000);

  it('--min-interval-per-host holds across instances: a host is never restarted twice within it', async () => {
    const names = fleetNames('interval');
    const db = await pgt.createDatabase();
    // 20 hosts, 3 messages each, split between two instances.
    await publishRequests([nats.url], names, 'interval', 60, { hosts: 20 });
    const [a, b] = fleet(names, db.url, [
      '--min-interval-per-host',
      '2s',
      '--restart-latency',
      '0',
      '--restart-failure-rate',
      '0',
    ]);
    await waitDrained([nats.url], names, 90_000, [a!, b!]);
    await stop(a!);
    await stop(b!);
    const rows = await audit(db.url, `WHERE outcome = 'restarted'`);
    expect(rows).toHaveLength(60);
    expect(new Set(rows.map((r) => r.instance))).toEqual(new Set(['A', 'B']));
    const byHost = new Map<string, number[]>();
    for (const r of rows) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r.at]);
    for (const [host, times] of byHost) {
      for (let k = 1; k < times.length; k++) expect(times[k]! - times[k - 1]!, host).toBeGreaterThanOrEqual(1900);
    }
    expect((await audit(db.url, `WHERE outcome = 'deferred-too-soon'`)).length).toBeGreaterThan(0);
  }, 120_000);

  it('--max-concurrent-restarts holds across instances: never more restarts at once than the slots', async () => {
    const names = fleetNames('slots');
    const db = await pgt.createDatabase();
    const log = join(dir, 'slots.log');
    const script = join(dir, 'slow-restart.sh');
    // A real command: it notes when it starts and ends (ms), so overlap is measured, not assumed.
    writeFileSync(
      script,
      '#!/bin/sh\necho "start $(date +%s%3N)" >> "$1"\nsleep 0.3\necho "end $(date +%s%3N)" >> "$1"\n',
    );
    chmodSync(script, 0o755);
    await publishRequests([nats.url], names, 'slots', 30, { hostPerMessage: true });
    const [a, b] = fleet(names, db.url, [
      '--max-concurrent-restarts',
      '3',
      '--executor',
      'command',
      '--leashed',
      'false',
      '--restart-command',
      `${script} ${log} {host}`,
      '--max-in-flight',
      '20',
    ]);
    await waitDrained([nats.url], names, 90_000, [a!, b!]);
    await stop(a!);
    await stop(b!);
    const events = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([kind, t]) => ({ kind: kind!, t: Number(t) }));
    events.sort((x, y) => x.t - y.t || (x.kind === 'end' ? -1 : 1));
    let running = 0;
    let most = 0;
    for (const e of events) {
      running += e.kind === 'start' ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(events.filter((e) => e.kind === 'start')).toHaveLength(30);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBe(3); // the limit, not less: both instances used the slots
  }, 120_000);

  it('--max-restart-percent holds across instances: at most that share of the inventory restarted in the window', async () => {
    const names = fleetNames('blast');
    const db = await pgt.createDatabase();
    const inventory = join(dir, 'blast-inventory.txt');
    // 20 hosts, one request each; 25 % of 20 is 5.
    writeFileSync(inventory, Array.from({ length: 20 }, (_, i) => `blast-h${i}.example.net`).join('\n'));
    const [a, b] = fleet(names, db.url, [
      '--max-restart-percent',
      '25',
      '--blast-window',
      '1h',
      '--inventory',
      inventory,
      '--on-limit',
      'skip',
      '--restart-latency',
      '100ms',
      '--restart-failure-rate',
      '0',
      '--max-in-flight',
      '10',
    ]);
    // Published once both pull, so both take part (each can hold 10 of the 20).
    const consuming = (i: Instance): boolean => i.lines.some((l) => l.msg === 'Mayhem Mandrill is consuming');
    await waitFor([a!, b!], 'both consuming', () => consuming(a!) && consuming(b!));
    await publishRequests([nats.url], names, 'blast', 20, { hostPerMessage: true });
    await waitDrained([nats.url], names, 90_000, [a!, b!]);
    await stop(a!);
    await stop(b!);
    const restarted = await audit(db.url, `WHERE outcome = 'restarted'`);
    const skipped = await audit(db.url, `WHERE outcome = 'skipped-blast-radius'`);
    expect(new Set(restarted.map((r) => r.host)).size).toBe(5);
    expect(restarted).toHaveLength(5);
    expect(skipped).toHaveLength(15);
    // Both instances decided: the cap is the fleet's, not each instance's.
    expect(new Set([...restarted, ...skipped].map((r) => r.instance))).toEqual(new Set(['A', 'B']));
  }, 120_000);
});
