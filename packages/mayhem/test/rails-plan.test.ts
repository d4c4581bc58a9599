/**
 * The faithful preview (`mayhem plan`): the run's own rails on simulated time over a shadow of the
 * fleet's state — held intake (pause, window), a request waiting for its host, the fleet's recorded
 * restarts — and, end to end on NATS + SQLite, a plan over requests where every rail fires checked
 * against what `mayhem run` then really does with the same requests (the decisions match), the
 * plan taking nothing from the stream unless `--ack`. Needs `npm run build` for the CLI tests.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openNatsPublisher, StreamBrowser } from '../src/brokers/nats/index.js';
import { encodeRestartRequest } from '../src/core/message.js';
import { RestartWindow } from '../src/core/policy.js';
import { Rails, type RailsSettings } from '../src/core/rails.js';
import { ShadowControl } from '../src/core/shadow-control.js';
import { simulate, type PlanInput } from '../src/plan/simulate.js';
import { LocalFleetControl } from '../src/storage/memory/control.js';
import { fleetNames, type FleetNames } from './fleet-harness.js';
import { railsSettingsWith } from './pipeline-harness.js';
import { cli, mayhemCli, type Cli } from './helpers/cli.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-plan-'));
let nats: NatsServer;
const children: Cli[] = [];

beforeAll(async () => {
  nats = await startNatsServer();
}, 60_000);
afterEach(() => {
  for (const c of children.splice(0)) c.child.kill('SIGKILL');
});
afterAll(async () => {
  await nats?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const MONDAY_10 = Date.parse('2026-11-30T10:00:00Z');

function plan(settings: Partial<RailsSettings>, base = new LocalFleetControl()) {
  let now = MONDAY_10;
  const shadow = new ShadowControl(base, { restartMs: 1000, now: () => now, forwardAudit: false });
  const rails = new Rails(railsSettingsWith(settings), shadow, () => 0.5);
  return (hosts: string[]) =>
    simulate(
      hosts.map((host, i): PlanInput => ({
        request: { messageId: `m${i + 1}`, instanceName: host, publishedAt: 0 },
        host,
      })),
      rails,
      shadow,
      (t) => (now = t),
      { start: MONDAY_10, restartMs: 1000, horizonMs: 7 * 86_400_000 },
    );
}

describe('the simulation', () => {
  it('outside the window nothing is pulled until it opens; a second request for a host waits for its restart', async () => {
    const entries = await plan({ window: RestartWindow.parse('Mon-Fri 10:30-11:00 UTC') })(['a', 'a']);
    const open = MONDAY_10 + 30 * 60_000;
    expect(entries[0]!.steps).toMatchObject([
      { kind: 'held', at: MONDAY_10, until: open },
      { kind: 'decided', at: open, outcome: 'restarted' },
    ]);
    expect(entries[1]!.steps.map((s) => s.kind)).toEqual(['held', 'waited', 'decided']);
    expect(entries[1]!.end).toEqual({ kind: 'restart', at: open + 1000, until: open + 2000 });
  });

  it('paused: every request waits for mayhem resume, none is decided', async () => {
    const base = new LocalFleetControl();
    await base.setPause({ by: 'ops', at: MONDAY_10, reason: 'incident' });
    const entries = await plan({}, base)(['a', 'b']);
    for (const e of entries) {
      expect(e.steps).toEqual([
        { kind: 'held', at: MONDAY_10, until: undefined, why: 'restarts paused by ops (incident)' },
      ]);
      expect(e.end).toEqual({ kind: 'waiting', why: 'restarts paused by ops (incident)' });
    }
  });

  it("starts from the fleet's state: a host it restarted recently waits out the interval, untouched by the plan", async () => {
    const base = new LocalFleetControl();
    await base.stampRestart('a', MONDAY_10 - 5_000);
    const entries = await plan({ minIntervalMs: 60_000 }, base)(['a']);
    expect(entries[0]!.steps[0]).toMatchObject({ kind: 'decided', outcome: 'deferred-too-soon' });
    expect(entries[0]!.end).toMatchObject({ kind: 'restart', at: MONDAY_10 + 56_000 });
    expect(await base.lastRestart('a')).toBe(MONDAY_10 - 5_000);
  });
});

async function publish(names: FleetNames, hosts: string[]): Promise<string[]> {
  const publisher = await openNatsPublisher({
    servers: [nats.url],
    stream: names.stream,
    subject: names.subject,
    logger: pino({ level: 'silent' }),
  });
  const ids = hosts.map((_, i) => `${names.durable}-m${i + 1}`);
  try {
    for (const [i, host] of hosts.entries())
      await publisher.publish(
        encodeRestartRequest({ messageId: ids[i]!, instanceName: host, publishedAt: Date.now() }),
        ids[i],
      );
  } finally {
    await publisher.close();
  }
  return ids;
}

async function pending(names: FleetNames): Promise<number> {
  const b = await StreamBrowser.open({
    servers: [nats.url],
    stream: names.stream,
    subject: names.subject,
    logger: pino({ level: 'silent' }),
  });
  try {
    return (await b.next(1, 100)).length;
  } finally {
    await b.close();
  }
}

/** Consecutive repeats as one: a deferral retried is one decision kind. */
const collapse = (xs: readonly string[]): string[] => xs.filter((x, i) => i === 0 || xs[i - 1] !== x);

interface JsonPlan {
  start: string;
  requests: {
    messageId: string;
    host: string;
    target: { argv?: string[] };
    steps: {
      kind: string;
      offsetMs: number;
      outcome?: string;
      until?: string | null;
      rails?: { rail: string; decision: string }[];
    }[];
  }[];
}

describe('mayhem plan against what mayhem run then does (NATS + SQLite)', () => {
  it('every rail fires; the plan takes nothing, and its decisions are the run’s', async () => {
    const names = fleetNames('plan');
    const db = `sqlite:${join(dir, 'plan.db')}`;
    const script = join(dir, 'restart.sh');
    writeFileSync(script, '#!/bin/sh\nsleep 1\n');
    chmodSync(script, 0o755);
    const inventory = join(dir, 'inventory.txt');
    writeFileSync(inventory, ['web-1', 'web-2', 'web-3', 'web-4'].map((h) => `${h}.example.net`).join('\n'));
    // The window is open now and closes at the next whole minute at least 12 s away (windows are in
    // minutes); the interval sends the second web-1 request back after it has closed.
    const now = Date.now();
    let closes = Math.ceil(now / 60_000) * 60_000;
    if (closes - now < 12_000) closes += 60_000;
    const hhmm = (t: number): string => new Date(t).toISOString().slice(11, 16);
    const intervalMs = closes - now + 6_000;
    const rails = [
      '--deny-hosts',
      'db-*',
      '--window',
      `daily ${hhmm(closes - 60 * 60_000)}-${hhmm(closes)} UTC`,
      '--min-interval-per-host',
      `${intervalMs}ms`,
      '--max-concurrent-restarts',
      '2',
      '--max-restart-percent',
      '50',
      '--inventory',
      inventory,
      '--executor',
      'command',
      '--restart-command',
      `${script} {host}`,
      '--leashed',
      'false',
    ];
    const where = ['--broker', nats.url, '--stream', names.stream, '--subject', names.subject, '--db', db];
    // The stream exists once something is published to it (publish creates it).
    const ids = await publish(names, ['web-1', 'db-1', 'web-2', 'web-1', 'web-3']);

    const planned = await mayhemCli('plan', ...where, ...rails, '--preview-restart-time', '1s', '--json');
    expect(planned.code, planned.stderr).toBe(0);
    const p = JSON.parse(planned.stdout) as JsonPlan;
    expect(await pending(names)).toBe(5); // it acked nothing
    expect(p.requests.map((r) => r.target.argv)).toEqual(
      ['web-1', 'db-1', 'web-2', 'web-1', 'web-3'].map((h) => [script, `${h}.example.net`]),
    );
    // Every rail had its say: hosts (db-1), slots (web-3), the interval (the second web-1), the blast
    // radius (web-3 once a slot is free), and the window (the second web-1 is held until it opens).
    const said = new Set(
      p.requests.flatMap((r) =>
        r.steps.flatMap((s) => (s.rails ?? []).filter((x) => x.decision !== 'go').map((x) => x.rail)),
      ),
    );
    expect([...said].sort()).toEqual(['blast', 'concurrency', 'hosts', 'interval']);
    const held = p.requests[3]!.steps.find((s) => s.kind === 'held');
    expect(held?.until).toBe(new Date(closes - 60 * 60_000 + 86_400_000).toISOString());

    const run = cli([
      'run',
      ...where,
      ...rails,
      '--durable',
      names.durable,
      '--dead-letter-subject',
      names.deadLetterSubject,
      '--log-format',
      'json',
      '--status-every',
      '0',
      '--instance-name',
      'svc',
    ]);
    children.push(run);
    const runStart = Date.now();
    await run.waitFor((lines) =>
      lines.some((l) => String(l.msg).startsWith('Intake paused: outside the restart window')),
    );
    // Past the time the second web-1 request comes back: the window is closed then, so it is not
    // taken (nothing to wait for but the clock: the point is that no decision follows).
    await new Promise((r) => setTimeout(r, Math.max(0, now + intervalMs + 3_000 - Date.now())));
    const observedMs = Date.now() - runStart;
    run.child.kill('SIGTERM');
    expect((await run.exited).code, run.stderr()).toBe(0);

    const conn = new Database(db.slice('sqlite:'.length), { readonly: true });
    const rows = conn
      .prepare("SELECT message_id AS id, outcome FROM audit WHERE host <> '*' ORDER BY at, id")
      .all() as { id: string; outcome: string }[];
    conn.close();
    // A request due while the window is closed waits in the broker: the plan says held; a run idle in
    // a pull when the window closed may take the one that arrives first and defer it with the window's
    // verdict. The same wait, so both read as waiting for the window (and the run said it held intake).
    const waiting = (o: string): boolean => o === 'deferred-outside-window';
    const ran = ids.map((id) => collapse(rows.filter((r) => r.id === id && !waiting(r.outcome)).map((r) => r.outcome)));
    const foresaw = p.requests.map((r) =>
      collapse(
        r.steps
          .filter((s) => s.kind === 'decided' && s.offsetMs <= observedMs && !waiting(s.outcome!))
          .map((s) => s.outcome!),
      ),
    );
    expect(ran).toEqual([
      ['restarted'],
      ['skipped-denied'],
      ['restarted'],
      ['deferred-too-soon'],
      ['deferred-busy', 'deferred-blast-radius'],
    ]);
    expect(foresaw).toEqual(ran);
  }, 150_000);

  it('--ack consumes what it planned: gone from the stream, recorded as leashed', async () => {
    const names = fleetNames('planack');
    const db = `sqlite:${join(dir, 'ack.db')}`;
    await publish(names, ['web-1', 'web-2']);
    // The database the fleet would use exists (a run made it); nothing else is in it.
    const made = cli([
      'run',
      '--db',
      db,
      '--count',
      '1',
      '--publish-rate',
      '0',
      '--restart-latency',
      '0',
      '--log-format',
      'json',
    ]);
    children.push(made);
    expect((await made.exited).code).toBe(0);
    const where = ['--broker', nats.url, '--stream', names.stream, '--subject', names.subject, '--db', db];
    const r = await mayhemCli('plan', ...where, '--ack', '--instance-name', 'ops');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^Plan of 2 request\(s\) pending on NATS stream F_planack \(read, nothing taken; --ack consumes them below\)/,
    );
    expect(r.stdout).toMatch(
      /\nConsumed 2 request\(s\) from NATS stream F_planack \(--ack\); each is in the audit trail as leashed\.\n$/,
    );
    expect(await pending(names)).toBe(0);
    const audit = await mayhemCli('audit', '--db', db, '--json', '--host', 'web-2');
    expect(JSON.parse(audit.stdout)).toMatchObject({
      instance: 'ops',
      outcome: 'leashed',
      reason: 'consumed by mayhem plan --ack; the plan: restart',
    });
  }, 60_000);
});
