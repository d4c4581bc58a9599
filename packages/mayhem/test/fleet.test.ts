/**
 * Fleet fault tests: several real `mayhem run` processes on one NATS JetStream (a single node, or a
 * 3-node cluster with an R3 stream) and one PostgreSQL database, with faults injected mid-run.
 * Every test ends with the fleet invariants (see verifyFleet). Needs `npm run build` first: the
 * instances run the compiled CLI.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNatsCluster, startNatsServer, type NatsCluster, type NatsServer } from './helpers/nats-server.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import {
  CLI,
  doubleRestarts,
  fleetNames,
  Instance,
  journalHosts,
  killAll,
  publishRequests,
  runArgs,
  verifyFleet,
  waitDrained,
  waitFor,
  queryOn,
} from './fleet-harness.js';

let nats: NatsServer;
let pgt: TestPostgres;
const instances: Instance[] = [];
// Where the mock executors journal the restarts that took effect (MAYHEM_MOCK_JOURNAL).
const journals = mkdtempSync(join(tmpdir(), 'mayhem-journal-'));

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
  rmSync(journals, { recursive: true, force: true });
});

function start(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Instance {
  const i = new Instance(name, args, env);
  instances.push(i);
  return i;
}

const ackedBy = (fleet: Instance[]): number => {
  const all = new Set<string>();
  for (const i of fleet) for (const id of i.acked) all.add(id);
  return all.size;
};

async function stopClean(i: Instance): Promise<void> {
  i.kill('SIGTERM');
  const { code } = await i.exited;
  expect(code, i.describe()).toBe(0);
}

// Short leases so that a crashed instance's messages come back within the test; extensions keep
// healthy work leased far past them.
const LEASE = ['--ack-deadline', '2s', '--extend-every', '400ms', '--nack-delay', '100ms', '--retry-backoff', '20ms'];

describe('fleet on NATS JetStream + PostgreSQL', () => {
  it('(1) SIGTERM one of two instances mid-flight: it nacks its in-flight messages, the other finishes them', async () => {
    const names = fleetNames('term');
    const db = await pgt.createDatabase();
    const N = 1500;
    const args = runArgs({
      brokerUrl: nats.url,
      dbUrl: db.url,
      names,
      extra: [
        ...LEASE,
        '--max-in-flight',
        '150',
        '--restart-latency',
        '600ms',
        '--restart-failure-rate',
        '0.1',
        '--grace',
        '100ms',
      ],
    });
    const published = await publishRequests([nats.url], names, 'term', N);
    const a = start('A', args);
    const b = start('B', args);
    await a.until('A acked 150', () => a.acked.size >= 150);
    a.kill('SIGTERM');
    const { code } = await a.exited;
    expect(code, a.describe()).toBe(0);
    const summary = a.lines.find((l) => l.msg.startsWith('Summary'));
    expect(summary, a.describe()).toBeDefined();
    // Cancelled after the 100 ms grace: A gave its in-flight messages back.
    expect(Number(summary?.nacked), a.describe()).toBeGreaterThan(0);
    expect(Number(summary?.inFlight)).toBe(0);
    const leftByA = [...a.pulled].filter((id) => !a.acked.has(id));
    expect(leftByA.length).toBeGreaterThan(0);
    await waitDrained([nats.url], names, 90_000, [a, b]);
    await stopClean(b);
    // The other instance finished what A let go.
    expect(leftByA.every((id) => b.acked.has(id))).toBe(true);
    await verifyFleet(queryOn(db.url), published, [a, b]);
  });

  it('(2) SIGKILL one of two instances mid-flight: its messages return after the ack wait and the other finishes them; no host restarted twice', async () => {
    const names = fleetNames('kill');
    const db = await pgt.createDatabase();
    const N = 1500;
    const journal = join(journals, 'kill');
    const args = runArgs({
      brokerUrl: nats.url,
      dbUrl: db.url,
      names,
      extra: [...LEASE, '--max-in-flight', '150', '--restart-latency', '400ms', '--restart-failure-rate', '0'],
    });
    const published = await publishRequests([nats.url], names, 'kill', N, { hostPerMessage: true });
    const a = start('A', args, { MAYHEM_MOCK_JOURNAL: journal });
    const b = start('B', args, { MAYHEM_MOCK_JOURNAL: journal });
    await a.until('A acked 150', () => a.acked.size >= 150);
    a.kill('SIGKILL');
    await a.exited;
    await waitDrained([nats.url], names, 90_000, [a, b]);
    await stopClean(b);
    // A's leases expired and came back to B as redeliveries, which B finished. (A's own log lost
    // its unflushed tail with the kill, so B's log and the database are the witnesses.)
    expect(b.redelivered.size, b.describe()).toBeGreaterThan(0);
    expect([...b.redelivered].every((id) => b.acked.has(id))).toBe(true);
    const r = await verifyFleet(queryOn(db.url), published, [a, b], { logsComplete: false });
    // The journal is written as each restart takes effect, even by A in its last moment.
    expect(doubleRestarts(journal)).toEqual(new Map());
    // Each host restarted at most once, and exactly once unless A died mid-restart (then in doubt).
    const restarted = journalHosts(journal);
    const neverRestarted = published.ids.filter((id) => !restarted.has(`${id.replace('kill-', 'kill-h')}.example.net`));
    expect(neverRestarted.every((id) => r.inDoubt.includes(id))).toBe(true);
  });

  it('(6) SIGKILL at random points, 3 instances, again and again: no host is ever restarted twice', async () => {
    const names = fleetNames('chaos');
    const db = await pgt.createDatabase();
    const N = 3000;
    const journal = join(journals, 'chaos');
    const args = runArgs({
      brokerUrl: nats.url,
      dbUrl: db.url,
      names,
      extra: [...LEASE, '--max-in-flight', '100', '--restart-latency', '50ms', '--restart-failure-rate', '0.05'],
    });
    const published = await publishRequests([nats.url], names, 'chaos', N, { hostPerMessage: true });
    const env = { MAYHEM_MOCK_JOURNAL: journal };
    const fleet = [start('A', args, env), start('B', args, env), start('C', args, env)];
    let spawned = 0;
    for (let round = 0; round < 4; round++) {
      // A random moment: after a random amount of progress, one random running instance dies.
      const target = ackedBy(fleet) + 100 + Math.floor(Math.random() * 400);
      await waitFor(fleet, `${target} acked`, () => ackedBy(fleet) >= target || ackedBy(fleet) >= N - 50);
      const running = fleet.filter((i) => i.running);
      const victim = running[Math.floor(Math.random() * running.length)]!;
      victim.kill('SIGKILL');
      await victim.exited;
      fleet.push(start(`R${++spawned}`, args, env));
    }
    await waitDrained([nats.url], names, 120_000, fleet);
    for (const i of fleet.filter((x) => x.running)) await stopClean(i);
    const r = await verifyFleet(queryOn(db.url), published, fleet, { logsComplete: false });
    expect(doubleRestarts(journal)).toEqual(new Map());
    const restarted = journalHosts(journal);
    const neverRestarted = published.ids.filter(
      (id) => !restarted.has(`${id.replace('chaos-', 'chaos-h')}.example.net`),
    );
    // A host is not restarted only when its instance died mid-restart: recorded in doubt, never repeated.
    expect(neverRestarted.every((id) => r.inDoubt.includes(id))).toBe(true);
    // The audit trail against the journal (issue 23): each restart recorded as done has exactly one
    // `restarted` row (written with its record, or recovered), each in doubt at most one `in-doubt`
    // row, and every host the journal says was restarted has its row, or is in doubt (it ran, and its
    // instance died before the record).
    const q = queryOn(db.url);
    const audit = await q<{ message_id: string; restarted: string; in_doubt: string }>(
      `SELECT message_id, count(*) FILTER (WHERE outcome = 'restarted')::text AS restarted,
              count(*) FILTER (WHERE outcome = 'in-doubt')::text AS in_doubt
         FROM audit WHERE message_id = ANY($1::text[]) GROUP BY message_id`,
      [published.ids],
    );
    const rowsOf = new Map(audit.map((a) => [a.message_id, a]));
    const recorded = await q<{ message_id: string }>(
      'SELECT message_id FROM messages WHERE restarted AND message_id = ANY($1::text[])',
      [published.ids],
    );
    expect(recorded.filter((m) => rowsOf.get(m.message_id)?.restarted !== '1').map((m) => m.message_id)).toEqual([]);
    expect(audit.filter((a) => Number(a.restarted) > 1 || Number(a.in_doubt) > 1)).toEqual([]);
    const ranWithoutRow = published.ids.filter(
      (id) =>
        restarted.has(`${id.replace('chaos-', 'chaos-h')}.example.net`) &&
        rowsOf.get(id)?.restarted !== '1' &&
        !r.inDoubt.includes(id),
    );
    expect(ranWithoutRow).toEqual([]);
  });

  it('(4) PostgreSQL connections terminated mid-run: saves retry, nothing lost', async () => {
    const names = fleetNames('pgterm');
    const db = await pgt.createDatabase();
    const N = 2000;
    const args = runArgs({
      brokerUrl: nats.url,
      dbUrl: db.url,
      names,
      extra: [
        ...LEASE,
        '--max-in-flight',
        '200',
        '--restart-latency',
        '100ms',
        '--restart-failure-rate',
        '0',
        '--save-attempts',
        '8',
      ],
    });
    const published = await publishRequests([nats.url], names, 'pgterm', N);
    const a = start('A', args);
    const b = start('B', args);
    await waitFor([a, b], 'a third acked', () => ackedBy([a, b]) >= N / 3);
    expect(await pgt.terminateConnections(db.dbName)).toBeGreaterThan(0);
    await waitFor([a, b], 'two thirds acked', () => ackedBy([a, b]) >= (2 * N) / 3);
    await pgt.terminateConnections(db.dbName);
    await waitDrained([nats.url], names, 90_000, [a, b]);
    await stopClean(a);
    await stopClean(b);
    await verifyFleet(queryOn(db.url), published, [a, b]);
  });

  it('(5) malformed messages on the subject are dead-lettered, counted and logged once each; the service keeps going', async () => {
    const names = fleetNames('malformed');
    const db = await pgt.createDatabase();
    const N = 600;
    const malformed = [
      'not json',
      '{"messageId": 42}',
      '[1,2,3]',
      '{"messageId":"x","instanceName":"bad host!","publishedAt":1}',
      '{"messageId":"y","instanceName":"ok","publishedAt":"yesterday"}',
    ];
    const published = await publishRequests([nats.url], names, 'malformed', N, { malformed });
    const a = start(
      'A',
      runArgs({
        brokerUrl: nats.url,
        dbUrl: db.url,
        names,
        extra: [...LEASE, '--max-in-flight', '100', '--restart-latency', '20ms', '--restart-failure-rate', '0'],
      }),
    );
    await waitDrained([nats.url], names, 90_000, [a]);
    await stopClean(a);
    expect(a.linesMatching(/^Dead-lettered malformed message/)).toHaveLength(malformed.length);
    const summary = a.lines.find((l) => l.msg.startsWith('Summary'));
    expect(summary?.malformed).toBe(malformed.length);
    expect(summary?.deadLettered).toBe(malformed.length);
    const rows = await queryOn(db.url)<{ n: string }>(
      'SELECT count(*)::text AS n FROM dead_letters WHERE message_id IS NULL',
    );
    expect(rows[0]?.n).toBe(String(malformed.length));
    // Kept by the dead-letter stream, not redelivered on the request subject.
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info(`${names.stream}_DEAD`)).state.messages).toBe(malformed.length);
      const ci = await jsm.consumers.info(names.stream, names.durable);
      expect(ci.num_ack_pending).toBe(0);
      expect(ci.num_pending).toBe(0);
    } finally {
      await nc.close();
    }
    await verifyFleet(queryOn(db.url), published, [a]);
  });
});

describe('fleet on a 3-node NATS JetStream cluster (R3)', () => {
  let cluster: NatsCluster;
  beforeAll(async () => {
    cluster = await startNatsCluster(3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('(3) killing one NATS node mid-run: the run completes, nothing lost', async () => {
    const names = fleetNames('cluster');
    const db = await pgt.createDatabase();
    const N = 2000;
    const brokerUrl = cluster.urls.join(',');
    const args = runArgs({
      brokerUrl,
      dbUrl: db.url,
      names,
      replicas: 3,
      extra: [...LEASE, '--max-in-flight', '200', '--restart-latency', '100ms', '--restart-failure-rate', '0'],
    });
    const published = await publishRequests(cluster.urls, names, 'cluster', N, { replicas: 3 });
    const a = start('A', args);
    const b = start('B', args);
    await waitFor([a, b], 'a third acked', () => ackedBy([a, b]) >= N / 3);
    // Kill the stream's leader: the hardest node to lose (the consumer leader usually sits there too).
    const nc = await connect({ servers: cluster.urls });
    let leader: string | undefined;
    try {
      leader = (await (await jetstreamManager(nc)).streams.info(names.stream)).cluster?.leader;
    } finally {
      await nc.close();
    }
    const victim = cluster.nodes.find((n) => n.name === leader) ?? cluster.nodes[0]!;
    await victim.stop('SIGKILL');
    await waitDrained(cluster.urls, names, 120_000, [a, b]);
    await stopClean(a);
    await stopClean(b);
    await verifyFleet(queryOn(db.url), published, [a, b]);
  });
});
