/**
 * The backlog gauge's sources: the memory broker's ready and nack-delayed messages, and the NATS
 * shared consumer's pending count, read from a real nats-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBroker } from '../src/brokers/memory.js';
import { openNatsBroker, openNatsPublisher } from '../src/brokers/nats/index.js';
import { backlogSource } from '../src/brokers/open.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';
import { capturingLogger } from './pipeline-harness.js';

describe('backlog sources', () => {
  it('memory broker: ready plus nack-delayed, not leased', async () => {
    const broker = new MemoryBroker({ ackDeadlineMs: 5000 });
    const backlog = backlogSource(broker)!;
    for (let i = 0; i < 5; i++) broker.publishSync(`m${i}`, `m${i}`);
    expect(await backlog()).toBe(5);
    const [a, b] = await broker.pull(2, new AbortController().signal);
    expect(await backlog()).toBe(3);
    await a!.ack();
    await b!.nack(60_000);
    expect(await backlog()).toBe(4);
    await broker.close();
  });

  describe('NATS JetStream (real nats-server)', () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await startNatsServer();
    });
    afterAll(() => server?.destroy());

    it('the shared consumer’s pending count: what no instance has been handed yet', async () => {
      const logger = capturingLogger().logger;
      const opts = {
        servers: [server.url],
        stream: 'BACKLOG',
        subject: 'backlog.restart',
        durable: 'backlog',
        deadLetterSubject: 'backlog.dead',
        ackWaitMs: 5000,
        logger,
      };
      const broker = await openNatsBroker(opts);
      try {
        const backlog = backlogSource(broker)!;
        expect(await backlog()).toBe(0);
        const publisher = await openNatsPublisher(opts);
        await Promise.all(Array.from({ length: 7 }, (_, i) => publisher.publish(`m${i}`, `m${i}`)));
        await publisher.close();
        expect(await backlog()).toBe(7);
        const ac = new AbortController();
        const got = await broker.pull(3, ac.signal);
        expect(got.length).toBeGreaterThan(0);
        expect(await backlog()).toBeLessThanOrEqual(7 - got.length);
      } finally {
        await broker.close();
      }
    });
  });
});
