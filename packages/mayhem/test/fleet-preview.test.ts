/**
 * A preview never takes messages from live instances: a leashed `mayhem run` beside a live one on
 * the same NATS stream and PostgreSQL database looks at the stream without joining the fleet's
 * durable consumer, so the live instance gets every message, and the leashed one writes no message
 * record of the fleet's. Needs `npm run build` (the instances run from dist).
 */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  fleetNames,
  Instance,
  killAll,
  publishRequests,
  runArgs,
  verifyFleet,
  waitDrained,
  queryOn,
} from './fleet-harness.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';

let nats: NatsServer;
let pgt: TestPostgres;
const instances: Instance[] = [];

beforeAll(async () => {
  [nats, pgt] = await Promise.all([startNatsServer(), startTestPostgres()]);
}, 120_000);
afterEach(async () => {
  await killAll(instances.splice(0));
});
afterAll(async () => {
  await nats?.destroy();
  await pgt?.close();
});

describe('a leashed instance beside a live one (NATS + PostgreSQL)', () => {
  it('takes 0 of the live fleet’s messages: no consumer joined, every message acked by the live one', async () => {
    const names = fleetNames('preview');
    const { url: db } = await pgt.createDatabase();
    const common = runArgs({
      brokerUrl: nats.url,
      dbUrl: db,
      names,
      extra: ['--restart-latency', '400ms', '--restart-failure-rate', '0', '--max-in-flight', '20'],
    });
    const live = new Instance('live', [...common, '--instance-name', 'live']);
    instances.push(live);
    await live.until('consuming', () => live.lines.some((l) => l.msg === 'Mayhem Mandrill is consuming'));
    const preview = new Instance('preview', [...common, '--instance-name', 'preview', '--leashed', 'true']);
    instances.push(preview);
    await preview.until('previewing', () => preview.lines.some((l) => l.msg.startsWith('Leashed beside the fleet')));

    const published = await publishRequests([nats.url], names, 'preview', 300, { hostPerMessage: true });
    await waitDrained([nats.url], names, 90_000, [live, preview]);
    // The preview saw requests while they were pending (it looks every second; draining takes ~3 s) and took none.
    await preview.until('a request previewed', () =>
      preview.lines.some((l) => l.msg.startsWith('Leashed: would restart')),
    );
    live.kill('SIGTERM');
    preview.kill('SIGTERM');
    expect((await live.exited).code, live.describe()).toBe(0);
    expect((await preview.exited).code, preview.describe()).toBe(0);

    expect(live.acked.size).toBe(published.ids.length);
    await verifyFleet(queryOn(db), published, [live]);
    const nc = await connect({ servers: [nats.url] });
    try {
      const jsm = await jetstreamManager(nc);
      const consumers: string[] = [];
      for await (const c of jsm.consumers.list(names.stream)) consumers.push(c.name);
      expect(consumers).toEqual([names.durable]);
      const info = await jsm.consumers.info(names.stream, names.durable);
      // Delivered once each, to the live instance: nothing went round through the preview.
      expect(info.delivered.consumer_seq).toBe(published.ids.length);
    } finally {
      await nc.close();
    }
    // Its audit rows are its own previews; the fleet's records were written by the live instance alone.
    const rows = await queryOn(db)<{ instance: string; outcome: string; n: string }>(
      'SELECT instance, outcome, count(*)::text AS n FROM audit GROUP BY instance, outcome ORDER BY instance, outcome',
    );
    expect(rows.filter((r) => r.instance === 'preview').map((r) => r.outcome)).toEqual(['leashed']);
    expect(rows.find((r) => r.instance === 'live' && r.outcome === 'restarted')?.n).toBe(String(published.ids.length));
  }, 120_000);
});
