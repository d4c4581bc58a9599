/**
 * The NATS JetStream broker adapter against a real nats-server (started here on free loopback
 * ports with a temp store; never the one that may run on 4222).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import type { Delivery } from '../src/core/contracts.js';
import { openNatsBroker, openNatsPublisher, type NatsBroker, type NatsOptions } from '../src/brokers/nats/index.js';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server.js';

const logger = pino({ level: 'silent' });
const text = (d: Delivery): string => new TextDecoder().decode(d.data);

let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;
let n = 0;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await nc?.close();
  await server?.destroy();
});

/** Options with names of their own, so tests never see each other's messages. */
function names(extra: Partial<NatsOptions> = {}): NatsOptions {
  n += 1;
  return {
    servers: [server.url],
    stream: `T${n}`,
    subject: `t${n}.restart`,
    durable: `d${n}`,
    deadLetterSubject: `t${n}.dead`,
    ackWaitMs: 1_000,
    pullExpiresMs: 1_000,
    logger,
    ...extra,
  };
}

async function broker(opts: NatsOptions): Promise<NatsBroker> {
  const b = await openNatsBroker(opts);
  cleanups.push(() => b.close());
  return b;
}

async function publishAll(opts: NatsOptions, payloads: string[], ids?: string[]): Promise<void> {
  const p = await openNatsPublisher(opts);
  await Promise.all(payloads.map((payload, i) => p.publish(payload, ids?.[i])));
  await p.close();
}

/** Pull once with a deadline: `[]` if nothing came within `ms`. */
async function pullWithin(b: NatsBroker, max: number, ms: number): Promise<Delivery[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    return await b.pull(max, ac.signal);
  } finally {
    clearTimeout(timer);
  }
}

/** Pull without ever setting the broker into shutdown mode (an aborted pull means shutdown). */
const forever = new AbortController().signal;

describe('NATS JetStream broker', () => {
  it('creates stream, dead-letter stream and durable consumer with our settings', async () => {
    const o = names({ ackWaitMs: 1_500, maxAckPending: 777 });
    const b = await broker(o);
    expect(b.ackDeadlineMs).toBe(1_500);
    const ci = await jsm.consumers.info(o.stream!, o.durable!);
    expect(ci.config.ack_wait).toBe(1_500 * 1e6);
    expect(ci.config.max_deliver).toBe(-1);
    expect(ci.config.max_ack_pending).toBe(777);
    expect(ci.config.filter_subject).toBe(o.subject);
    const dead = await jsm.streams.info(`${o.stream}_DEAD`);
    expect(dead.config.subjects).toEqual([o.deadLetterSubject]);
  });

  it('redelivers a message whose lease expired, with deliveryCount + 1', async () => {
    const o = names();
    const b = await broker(o);
    await publishAll(o, ['one']);
    const [first] = await b.pull(10, forever);
    expect(first?.deliveryCount).toBe(1);
    const started = Date.now();
    const [again] = await b.pull(10, forever); // not acked: comes back after the ack wait
    expect(Date.now() - started).toBeGreaterThanOrEqual(800);
    expect(text(again!)).toBe('one');
    expect(again?.deliveryCount).toBe(2);
    await again!.ack();
    expect(await pullWithin(b, 10, 1_600)).toEqual([]);
  });

  it('nack redelivers after the delay and increments deliveryCount', async () => {
    const o = names({ ackWaitMs: 10_000 });
    const b = await broker(o);
    await publishAll(o, ['n']);
    const [first] = await b.pull(1, forever);
    await first!.nack(600);
    const started = Date.now();
    const [again] = await b.pull(1, forever);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(500);
    expect(waited).toBeLessThan(5_000); // the delay, not the 10 s ack wait
    expect(again?.deliveryCount).toBe(2);
    await again!.nack(0);
    const [third] = await b.pull(1, forever);
    expect(third?.deliveryCount).toBe(3);
    await third!.ack();
  });

  it('extend keeps a message leased past the ack wait; no other instance gets it', async () => {
    const o = names({ ackWaitMs: 1_000 });
    const a = await broker(o);
    const other = await broker(o);
    await publishAll(o, ['kept']);
    const [d] = await a.pull(1, forever);
    const ticker = setInterval(() => void d!.extend(), 300);
    try {
      // 2.5 ack waits: without the extensions the other instance would get it.
      expect(await pullWithin(other, 1, 2_500)).toEqual([]);
    } finally {
      clearInterval(ticker);
    }
    await d!.ack();
    expect(await pullWithin(other, 1, 1_500)).toEqual([]);
  });

  it('dead-letter lands on the dead-letter subject with its headers and is not redelivered', async () => {
    const o = names();
    const b = await broker(o);
    await publishAll(o, ['not json at all']);
    const [d] = await b.pull(1, forever);
    await d!.deadLetter('malformed: payload is not JSON\nsecond line');
    const stored = await jsm.streams.getMessage(`${o.stream}_DEAD`, { seq: 1 });
    expect(stored).not.toBeNull();
    expect(stored!.subject).toBe(o.deadLetterSubject);
    expect(new TextDecoder().decode(stored!.data)).toBe('not json at all');
    expect(stored!.header.get('Mayhem-Reason')).toBe('malformed: payload is not JSON second line');
    expect(stored!.header.get('Mayhem-Original-Subject')).toBe(o.subject);
    expect(stored!.header.get('Mayhem-Original-Sequence')).toBe('1');
    expect(stored!.header.get('Mayhem-Deliveries')).toBe('1');
    // Terminated: well past the ack wait, nothing comes back.
    expect(await pullWithin(b, 1, 2_200)).toEqual([]);
    const ci = await jsm.consumers.info(o.stream!, o.durable!);
    expect(ci.num_ack_pending).toBe(0);
  });

  it('never leases more than the caller can hold (client credit and server ack-pending)', async () => {
    const o = names({ ackWaitMs: 30_000 });
    const b = await broker(o);
    await publishAll(
      o,
      Array.from({ length: 400 }, (_, i) => `m${i}`),
    );
    const capacity = 37;
    const inHand: Delivery[] = [];
    const seen = new Set<string>();
    let maxLeased = 0;
    while (seen.size < 400) {
      const got = await b.pull(capacity - inHand.length, forever);
      expect(got.length).toBeGreaterThan(0);
      expect(got.length).toBeLessThanOrEqual(capacity - inHand.length);
      inHand.push(...got);
      for (const d of got) seen.add(text(d));
      const s = b.stats();
      maxLeased = Math.max(maxLeased, inHand.length + s.buffered + s.outstanding);
      expect(inHand.length + s.buffered + s.outstanding).toBeLessThanOrEqual(capacity);
      // Settle a random share, as a pipeline would.
      const k = Math.ceil(Math.random() * inHand.length);
      for (const d of inHand.splice(0, k)) await d.ack();
    }
    for (const d of inHand.splice(0)) await d.ack();
    expect(maxLeased).toBeLessThanOrEqual(capacity);

    // Server side, with a fresh instance whose capacity is 20 (credit granted to the first one at
    // capacity 37 cannot be taken back, so it closes first). Its acks were fire-and-forget: let the
    // server take them all before counting what it has delivered and not seen acked.
    await b.close();
    for (let tries = 0; (await jsm.consumers.info(o.stream!, o.durable!)).num_ack_pending > 0; tries++) {
      if (tries > 100) throw new Error('acks of the first phase never reached the server');
      await new Promise((r) => setTimeout(r, 50));
    }
    const b2 = await broker(o);
    // Hold without acking; the server never delivers beyond the requested credit.
    await publishAll(
      o,
      Array.from({ length: 100 }, (_, i) => `h${i}`),
    );
    const held: Delivery[] = [];
    while (held.length < 20) held.push(...(await b2.pull(20 - held.length, forever)));
    await nc.flush();
    const ci = await jsm.consumers.info(o.stream!, o.durable!);
    expect(ci.num_ack_pending).toBeLessThanOrEqual(20);
    expect(held.length).toBe(20);
    for (const d of held) await d.ack();
  });

  it('de-duplicates publishes by messageId (Nats-Msg-Id)', async () => {
    const o = names();
    const b = await broker(o);
    await publishAll(o, ['a', 'a again', 'b'], ['id-a', 'id-a', 'id-b']);
    const si = await jsm.streams.info(o.stream!);
    expect(si.state.messages).toBe(2);
    const got: string[] = [];
    while (got.length < 2)
      for (const d of await b.pull(10, forever)) {
        got.push(text(d));
        await d.ack();
      }
    expect(got.sort()).toEqual(['a', 'b']);
    expect(await pullWithin(b, 10, 1_200)).toEqual([]);
  });

  it('after an aborted pull (shutdown) settles are confirmed and buffered leases are given back', async () => {
    const o = names({ ackWaitMs: 30_000 });
    const b = await broker(o);
    await publishAll(o, ['x', 'y']);
    const [d] = await b.pull(1, forever);
    const ac = new AbortController();
    ac.abort();
    expect(await b.pull(5, ac.signal)).toEqual([]);
    await d!.ack();
    expect(b.stats().confirmedSettles).toBeGreaterThanOrEqual(1);
    await b.close();
    // 'y' was never handed out: after close it is available at once (nacked), not after 30 s.
    const other = await broker(o);
    const [y] = await pullWithin(other, 5, 3_000);
    expect(y && text(y)).toBe('y');
    await y!.ack();
  });

  it('fails with one clear line when the broker is unreachable', async () => {
    const port = await freePort();
    const err = await openNatsBroker({ servers: [`nats://127.0.0.1:${port}`], logger }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(new RegExp(`^cannot connect to NATS at nats://127.0.0.1:${port}: `));
    expect((err as Error).message).not.toContain('\n');
  });
});

describe('NATS JetStream broker across a server restart', () => {
  let own: NatsServer | undefined;
  afterAll(async () => {
    await own?.destroy();
  });

  it('reconnects; acks taken while the server was down are confirmed after it returns; nothing lost', async () => {
    own = await startNatsServer();
    const o: NatsOptions = { servers: [own.url], ackWaitMs: 2_000, pullExpiresMs: 1_000, logger };
    const b = await openNatsBroker(o);
    try {
      const total = 300;
      await publishAll(
        o,
        Array.from({ length: total }, (_, i) => `r${i}`),
        Array.from({ length: total }, (_, i) => `id${i}`),
      );
      const acked = new Set<string>();
      // Take some, ack half of them.
      const first: Delivery[] = [];
      while (first.length < 100) first.push(...(await b.pull(100 - first.length, forever)));
      for (const d of first.splice(0, 50)) {
        await d.ack();
        acked.add(text(d));
      }
      await own.stop('SIGTERM');
      // While the server is down, the in-flight work finishes: these acks wait for the server.
      const pendingAcks = first.map((d) => d.ack().then(() => acked.add(text(d))));
      await own.start();
      await Promise.all(pendingAcks);
      // The rest arrive over the new connection.
      while (acked.size < total) {
        for (const d of await b.pull(50, forever)) {
          await d.ack();
          acked.add(text(d));
        }
      }
      expect(acked.size).toBe(total);
      await nc.flush();
      const ncOwn = await connect({ servers: own.url });
      try {
        const m = await jetstreamManager(ncOwn);
        // Work-queue stream: acked messages are removed; every one was acked exactly as taken.
        const deadline = Date.now() + 5_000;
        let left = -1;
        while (Date.now() < deadline) {
          left = (await m.streams.info('MAYHEM')).state.messages;
          if (left === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        expect(left).toBe(0);
      } finally {
        await ncOwn.close();
      }
    } finally {
      await b.close();
    }
  });
});
