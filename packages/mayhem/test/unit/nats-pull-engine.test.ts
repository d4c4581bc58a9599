/**
 * The NATS pull engine against an in-process stand-in for the server (no nats-server): credit
 * accounting, pull requests re-issued on expiry and status codes, the growing backoff, liveness,
 * late deliveries and shutdown. Time is fake where it matters; the real-server tier is nats.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { pino } from 'pino';
import { LATE_DELIVERY_GRACE_MS, PullEngine } from '../../src/brokers/nats/pull-engine.js';
import type { PullPort } from '../../src/brokers/nats/pull-port.js';

interface FakeMsg {
  readonly reply?: string;
  readonly headers?: { readonly code: number; readonly description: string };
}

interface FakeRequest {
  readonly subject: string;
  readonly inbox: string;
  readonly batch: number;
  readonly expiresNs: number;
  readonly heartbeatNs: number;
  readonly createdAt: number;
  delivered: number;
  /** As the server sees it: open until its batch is delivered or it ends with a status. */
  open: boolean;
}

/** Stands in for nats-server and the connection: records pull requests, sends what a test says. */
class FakeServer implements PullPort<FakeMsg> {
  readonly requests: FakeRequest[] = [];
  readonly inboxes = new Map<string, (err: Error | null, msg: FakeMsg) => void>();
  closed = false;
  publishError: Error | undefined;
  #sequence = 0;

  subscribe(inbox: string, onMessage: (err: Error | null, msg: FakeMsg) => void): { unsubscribe(): void } {
    this.inboxes.set(inbox, onMessage);
    return { unsubscribe: () => this.inboxes.delete(inbox) };
  }

  publish(subject: string, body: string, inbox: string): void {
    if (this.publishError) throw this.publishError;
    const b = JSON.parse(body) as { batch: number; expires: number; idle_heartbeat: number };
    this.requests.push({
      subject,
      inbox,
      batch: b.batch,
      expiresNs: b.expires,
      heartbeatNs: b.idle_heartbeat,
      createdAt: Date.now(),
      delivered: 0,
      open: true,
    });
  }

  isClosed(): boolean {
    return this.closed;
  }

  open(): FakeRequest[] {
    return this.requests.filter((r) => r.open);
  }

  /** Messages the server may still send this client: the unanswered part of its open requests. */
  credit(): number {
    return this.open().reduce((sum, r) => sum + r.batch - r.delivered, 0);
  }

  /** Deliver `n` messages on a request (default: all it still asks for). */
  deliver(req: FakeRequest, n = req.batch - req.delivered): void {
    for (let i = 0; i < n; i++) {
      req.delivered += 1;
      if (req.delivered >= req.batch) req.open = false;
      this.#send(req, { reply: `$JS.ACK.S.C.1.${++this.#sequence}.1.0.0` });
    }
  }

  /** A status message; anything but a heartbeat ends the request. */
  status(req: FakeRequest, code: number, description = ''): void {
    if (code !== 100) req.open = false;
    this.#send(req, { headers: { code, description } });
  }

  /** An error on the request's subscription. */
  fail(req: FakeRequest, err: Error): void {
    this.inboxes.get(req.inbox)?.(err, {});
  }

  /** What the real server does when a request's `expires` has passed: 408. */
  expireDue(): void {
    for (const r of this.open())
      if (Date.now() - r.createdAt >= r.expiresNs / 1e6) this.status(r, 408, 'Request Timeout');
  }

  #send(req: FakeRequest, msg: FakeMsg): void {
    this.inboxes.get(req.inbox)?.(null, msg);
  }
}

const logger = pino({ level: 'silent' });
const forever = new AbortController().signal;

/** Engines of the current test: closed after it, which also resolves their waiting pulls. */
const engines: PullEngine<FakeMsg, FakeMsg>[] = [];

function setUp(options: { maxPullBatch?: number; pullExpiresMs?: number } = {}) {
  const server = new FakeServer();
  const events: string[] = [];
  const givenBack: FakeMsg[] = [];
  const engine = new PullEngine<FakeMsg, FakeMsg>(
    server,
    {
      toDelivery: (msg) => msg,
      giveBack: (d) => {
        events.push('giveBack');
        givenBack.push(d);
      },
      onStopping: () => events.push('stopping'),
      onConsumerDeleted: () => events.push('consumerDeleted'),
    },
    {
      stream: 'S',
      consumer: 'C',
      maxPullBatch: options.maxPullBatch ?? 10,
      pullExpiresMs: options.pullExpiresMs ?? 5_000,
      inboxPrefix: '_INBOX.test',
      logger,
    },
  );
  engines.push(engine);
  return { server, engine, events, givenBack };
}

/** A pull whose outcome can be looked at without awaiting it. */
function track<T>(p: Promise<T>): { settled: () => boolean; value: () => T | undefined; error: () => unknown } {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      done = true;
      value = v;
    },
    (e: unknown) => {
      done = true;
      error = e;
    },
  );
  return { settled: () => done, value: () => value, error: () => error };
}

/** Let queued microtasks run (the engine hands a burst to a waiting pull in one). */
async function turn(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

afterEach(() => {
  for (const engine of engines.splice(0)) engine.close();
  vi.useRealTimers();
});

describe('NATS pull engine: credits', () => {
  it('asks for what the caller can hold, in batches of at most maxPullBatch, on the consumer next subject', () => {
    const { server, engine } = setUp({ maxPullBatch: 10 });
    void engine.pull(25, forever);
    expect(server.requests.map((r) => r.batch)).toEqual([10, 10, 5]);
    expect(server.requests[0]!.subject).toBe('$JS.API.CONSUMER.MSG.NEXT.S.C');
    expect(new Set(server.requests.map((r) => r.inbox)).size).toBe(3);
    expect(engine.stats()).toMatchObject({ outstanding: 25, requests: 3, pullRequests: 3, buffered: 0 });
  });

  it('asks the server to expire each request and to send idle heartbeats', () => {
    const { server, engine } = setUp({ pullExpiresMs: 5_000 });
    void engine.pull(1, forever);
    expect(server.requests[0]).toMatchObject({ expiresNs: 5_000_000_000, heartbeatNs: 1_250_000_000 });
  });

  it('hands a burst to the waiting pull in one piece, never more than it asked for', async () => {
    const { server, engine } = setUp({ maxPullBatch: 100 });
    const p = track(engine.pull(5, forever));
    server.deliver(server.requests[0]!, 5);
    await turn();
    expect(p.value()).toHaveLength(5);
  });

  it('buffered deliveries are taken at once, up to max; the rest of max is asked ahead', async () => {
    const { server, engine } = setUp({ maxPullBatch: 10 });
    const first = track(engine.pull(10, forever));
    server.deliver(server.requests[0]!, 1);
    await turn();
    expect(first.value()).toHaveLength(1);
    server.deliver(server.requests[0]!); // 9 more, nobody waiting: buffered
    expect(engine.stats()).toMatchObject({ buffered: 9, outstanding: 0, requests: 0 });
    expect(await engine.pull(5, forever)).toHaveLength(5);
    expect(server.requests).toHaveLength(1); // 4 still buffered cover what the caller can take
    expect(await engine.pull(20, forever)).toHaveLength(4);
    expect(server.requests.slice(1).map((r) => r.batch)).toEqual([10, 6]); // 20 - 4 taken
  });

  it('small top-ups wait while enough is on its way; a large one is asked for', async () => {
    const { server, engine } = setUp({ maxPullBatch: 1000 });
    const first = track(engine.pull(100, forever));
    const r1 = server.requests[0]!;
    server.deliver(r1, 90);
    await turn();
    expect(first.value()).toHaveLength(90);
    // The caller settled 5: it can take 15, 10 are on their way; 5 more is below a quarter of 100.
    const second = track(engine.pull(15, forever));
    expect(server.requests).toHaveLength(1);
    server.deliver(r1, 10);
    await turn();
    expect(second.value()).toHaveLength(10);
    // The caller settled 55 more: 55 is worth a request.
    void engine.pull(55, forever);
    expect(server.requests.map((r) => r.batch)).toEqual([100, 55]);
  });

  it('credits never exceed what the caller can hold, and mirror what the server still owes (property)', async () => {
    vi.useFakeTimers();
    const action = fc.oneof(
      fc.constant({ kind: 'pull' as const }),
      fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), n: fc.integer({ min: 1, max: 40 }) }),
      fc.record({ kind: fc.constant('status' as const), pick: fc.nat(), code: fc.constantFrom(100, 404, 408, 409) }),
      fc.record({ kind: fc.constant('settle' as const), n: fc.integer({ min: 1, max: 40 }) }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 1_000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 25 }),
        fc.array(action, { maxLength: 80 }),
        async (capacity, maxPullBatch, actions) => {
          const { server, engine } = setUp({ maxPullBatch });
          const held: FakeMsg[] = [];
          let waiting: { room: number; result: ReturnType<typeof track<FakeMsg[]>> } | undefined;
          for (const a of actions) {
            const open = server.open();
            if (a.kind === 'pull' && !waiting && held.length < capacity) {
              const room = capacity - held.length;
              waiting = { room, result: track(engine.pull(room, forever)) };
            } else if (a.kind === 'deliver' && open.length > 0) {
              const req = open[a.pick % open.length]!;
              server.deliver(req, Math.min(a.n, req.batch - req.delivered));
            } else if (a.kind === 'status' && open.length > 0) {
              server.status(open[a.pick % open.length]!, a.code, a.code === 409 ? 'Exceeded MaxWaiting' : '');
            } else if (a.kind === 'settle') {
              held.splice(0, a.n);
            } else if (a.kind === 'tick') {
              vi.advanceTimersByTime(a.ms);
              server.expireDue();
            }
            await turn();
            if (waiting?.result.settled()) {
              const got = waiting.result.value() ?? [];
              expect(got.length).toBeLessThanOrEqual(waiting.room);
              held.push(...got);
              waiting = undefined;
            }
            const s = engine.stats();
            expect(s.outstanding).toBe(server.credit());
            expect(held.length + s.buffered + server.credit()).toBeLessThanOrEqual(capacity);
          }
          engine.close();
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('NATS pull engine: requests end and are re-issued', () => {
  it.each([
    [408, 'Request Timeout'],
    [404, 'No Messages'],
  ])('%i: the waiting pull gets a fresh request at once', async (code, description) => {
    const { server, engine } = setUp();
    const p = track(engine.pull(10, forever));
    server.status(server.requests[0]!, code, description);
    expect(server.requests).toHaveLength(2);
    expect(engine.stats()).toMatchObject({ outstanding: 10, requests: 1 });
    server.deliver(server.requests[1]!, 3);
    await turn();
    expect(p.value()).toHaveLength(3);
  });

  it('408 with nobody waiting: the credit is released and nothing is asked', async () => {
    const { server, engine } = setUp({ maxPullBatch: 10 });
    const p = track(engine.pull(20, forever));
    server.deliver(server.requests[0]!);
    await turn();
    expect(p.value()).toHaveLength(10);
    server.status(server.requests[1]!, 408);
    expect(server.requests).toHaveLength(2);
    expect(engine.stats()).toMatchObject({ outstanding: 0, requests: 0 });
  });

  it('409 (transient): re-issued after a backoff that doubles from 100 ms to 2 s, and resets on a delivery', async () => {
    vi.useFakeTimers();
    const { server, engine } = setUp();
    const p = track(engine.pull(10, forever));
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      server.status(server.requests.at(-1)!, 409, 'Exceeded MaxWaiting');
      const before = server.requests.length;
      let waited = 0;
      while (server.requests.length === before) {
        vi.advanceTimersByTime(1);
        waited += 1;
        if (waited > 5_000) throw new Error('never re-issued');
      }
      waits.push(waited);
    }
    expect(waits).toEqual([100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    server.deliver(server.requests.at(-1)!, 1);
    await turn();
    expect(p.value()).toHaveLength(1);
    void engine.pull(10, forever);
    server.status(server.requests.at(-1)!, 409, 'Leadership Change');
    const before = server.requests.length;
    vi.advanceTimersByTime(100);
    expect(server.requests.length).toBe(before + 1);
  });

  it('409 consumer deleted: the pull fails with one line, and the owner is asked to recreate it', async () => {
    const { server, engine, events } = setUp();
    const p = engine.pull(10, forever);
    server.status(server.requests[0]!, 409, 'Consumer Deleted');
    await expect(p).rejects.toThrow(/^NATS consumer C was deleted \(409 Consumer Deleted\)$/);
    expect(events).toEqual(['consumerDeleted']);
    expect(engine.stats()).toMatchObject({ outstanding: 0, requests: 0 });
  });

  it.each([
    [503, '', /^NATS JetStream is not available \(503 no responders\); retrying$/],
    [400, 'Bad Request', /^NATS pull request ended with 400 Bad Request$/],
  ])('%i fails the waiting pull; the next pull asks again after the backoff', async (code, description, message) => {
    vi.useFakeTimers();
    const { server, engine } = setUp();
    const p = engine.pull(10, forever);
    server.status(server.requests[0]!, code, description);
    await expect(p).rejects.toThrow(message);
    void engine.pull(10, forever);
    expect(server.requests).toHaveLength(1);
    vi.advanceTimersByTime(100);
    expect(server.requests).toHaveLength(2);
  });

  it('a failure nobody waited for is reported by the next pull that finds nothing, once', async () => {
    vi.useFakeTimers();
    const { server, engine } = setUp({ maxPullBatch: 10 });
    const first = track(engine.pull(20, forever));
    server.deliver(server.requests[0]!);
    await turn();
    expect(first.value()).toHaveLength(10);
    server.status(server.requests[1]!, 503);
    await expect(engine.pull(10, forever)).rejects.toThrow(/503/);
    const next = track(engine.pull(10, forever));
    vi.advanceTimersByTime(100);
    await turn();
    expect(next.settled()).toBe(false);
    expect(server.requests).toHaveLength(3);
  });

  it('a subscription error fails the pull and releases the request credit', async () => {
    const { server, engine } = setUp();
    const p = engine.pull(10, forever);
    server.fail(server.requests[0]!, new Error('permissions violation'));
    await expect(p).rejects.toThrow(/^NATS pull subscription failed: permissions violation$/);
    expect(engine.stats()).toMatchObject({ outstanding: 0, requests: 0 });
  });

  it('a pull request that cannot be sent fails the pull and holds no credit', async () => {
    const { server, engine } = setUp();
    server.publishError = new Error('connection draining');
    await expect(engine.pull(10, forever)).rejects.toThrow(/^NATS pull request failed: connection draining$/);
    expect(engine.stats()).toMatchObject({ outstanding: 0, requests: 0 });
  });

  it('no request is sent on a closed connection', () => {
    const { server, engine } = setUp();
    server.closed = true;
    void engine.pull(10, forever);
    expect(server.requests).toHaveLength(0);
  });
});

describe('NATS pull engine: liveness', () => {
  // pullExpiresMs 5 s → heartbeat 1.25 s → silence window max(5 s, 2.5 s) + 2 s = 7 s.
  it('a request the server stops talking to is ended after the silence window and replaced', () => {
    vi.useFakeTimers();
    const { server, engine } = setUp();
    void engine.pull(10, forever);
    vi.advanceTimersByTime(6_999);
    expect(server.requests).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(server.requests).toHaveLength(2);
    expect(engine.stats()).toMatchObject({ outstanding: 10, requests: 1 });
  });

  it('idle heartbeats and deliveries keep a request alive', () => {
    vi.useFakeTimers();
    const { server, engine } = setUp({ maxPullBatch: 100 });
    void engine.pull(50, forever);
    const r1 = server.requests[0]!;
    vi.advanceTimersByTime(6_000);
    server.status(r1, 100, 'Idle Heartbeat');
    vi.advanceTimersByTime(6_000);
    server.deliver(r1, 1); // the pull is resolved; 49 still on their way
    vi.advanceTimersByTime(6_999);
    expect(server.requests).toHaveLength(1);
    expect(engine.stats()).toMatchObject({ outstanding: 49, requests: 1 });
    vi.advanceTimersByTime(1);
    expect(engine.stats()).toMatchObject({ outstanding: 0, requests: 0 });
  });

  it('after a reconnect every request gets a fresh window', () => {
    vi.useFakeTimers();
    const { server, engine } = setUp();
    void engine.pull(10, forever);
    vi.advanceTimersByTime(6_000);
    engine.reconnected();
    vi.advanceTimersByTime(6_999);
    expect(server.requests).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(server.requests).toHaveLength(2);
  });

  it('a delivery for a request already given up is handed straight back, then the inbox is dropped', async () => {
    vi.useFakeTimers();
    const { server, engine, givenBack } = setUp();
    const p = track(engine.pull(10, forever));
    const r1 = server.requests[0]!;
    vi.advanceTimersByTime(7_000); // given up; r2 replaces it
    expect(server.requests).toHaveLength(2);
    server.deliver(r1, 2); // the old server woke up after all
    await turn();
    expect(givenBack).toHaveLength(2);
    expect(p.settled()).toBe(false);
    expect(engine.stats()).toMatchObject({ outstanding: 10, buffered: 0 });
    expect(server.inboxes.has(r1.inbox)).toBe(true);
    vi.advanceTimersByTime(LATE_DELIVERY_GRACE_MS);
    expect(server.inboxes.has(r1.inbox)).toBe(false);
  });
});

describe('NATS pull engine: shutdown', () => {
  it('an aborted pull stops the engine: the owner hears it first, then buffered deliveries go back', async () => {
    const { server, engine, events, givenBack } = setUp();
    const first = track(engine.pull(10, forever));
    const r1 = server.requests[0]!;
    server.deliver(r1, 4);
    await turn();
    expect(first.value()).toHaveLength(4);
    server.deliver(r1, 3); // buffered: nobody is waiting
    const ac = new AbortController();
    ac.abort();
    expect(await engine.pull(5, ac.signal)).toEqual([]);
    expect(engine.phase).toBe('stopping');
    expect(events).toEqual(['stopping', 'giveBack', 'giveBack', 'giveBack']);
    server.deliver(r1, 2); // still on its way: straight back
    expect(givenBack).toHaveLength(5);
    expect(engine.stats().buffered).toBe(0);
    const after = track(engine.pull(10, forever));
    await turn();
    expect(after.settled()).toBe(false);
    expect(server.requests).toHaveLength(1);
  });

  it('aborting a waiting pull resolves it with nothing and stops the engine', async () => {
    const { engine, events } = setUp();
    const ac = new AbortController();
    const p = engine.pull(10, ac.signal);
    ac.abort();
    expect(await p).toEqual([]);
    expect(events).toEqual(['stopping']);
  });

  it('close resolves the waiting pull, unsubscribes every request at once, and later pulls get nothing', async () => {
    const { server, engine, events } = setUp({ maxPullBatch: 5 });
    const p = engine.pull(10, forever);
    expect(server.inboxes.size).toBe(2);
    engine.close();
    expect(await p).toEqual([]);
    expect(server.inboxes.size).toBe(0);
    expect(engine.phase).toBe('closed');
    expect(events).toEqual(['stopping']);
    expect(await engine.pull(10, forever)).toEqual([]);
    engine.close(); // idempotent
    expect(events).toEqual(['stopping']);
  });

  it('refuses a pull of less than one and a second pull while one waits', async () => {
    const { engine } = setUp();
    await expect(engine.pull(0, forever)).rejects.toThrow(RangeError);
    void engine.pull(1, forever);
    await expect(engine.pull(1, forever)).rejects.toThrow(/another pull is waiting/);
  });
});
