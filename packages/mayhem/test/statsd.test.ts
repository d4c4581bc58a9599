import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { noopMetrics } from '../src/metrics/noop.js';
import { createStatsdMetrics, parseHostPort } from '../src/metrics/statsd.js';

const silent = pino({ level: 'silent' });
let server: Socket | undefined;
afterEach(async () => {
  if (server !== undefined) {
    const s = server;
    server = undefined;
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** A UDP listener on a free port that collects StatsD lines; `until(n)` resolves once n lines arrived. */
async function listen(): Promise<{ port: number; lines: string[]; until(n: number): Promise<string[]> }> {
  const sock = createSocket('udp4');
  server = sock;
  const lines: string[] = [];
  const waiters: { n: number; resolve: (l: string[]) => void }[] = [];
  sock.on('message', (buf) => {
    lines.push(
      ...buf
        .toString('utf8')
        .split('\n')
        .filter((l) => l.length > 0),
    );
    for (const w of waiters.splice(0)) {
      if (lines.length >= w.n) w.resolve(lines);
      else waiters.push(w);
    }
  });
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  return {
    port: sock.address().port,
    lines,
    until: (n) => (lines.length >= n ? Promise.resolve(lines) : new Promise((resolve) => waiters.push({ n, resolve }))),
  };
}

describe('statsd metrics', () => {
  it('sends prefixed counters, the in_flight gauge and the handle_duration timing over UDP', async () => {
    const srv = await listen();
    const m = createStatsdMetrics({ hostPort: `127.0.0.1:${srv.port}`, logger: silent });
    m.increment('pulled');
    m.increment('acked', 3);
    m.increment('nacked');
    m.increment('restart_failed');
    m.increment('save_failed');
    m.increment('dead_lettered');
    m.gauge('in_flight', 42);
    m.timing('handle_duration', 17);
    await m.close(); // flushes the buffered datagram
    const lines = await srv.until(8);
    expect(lines).toEqual([
      'mayhem.pulled:1|c',
      'mayhem.acked:3|c',
      'mayhem.nacked:1|c',
      'mayhem.restart_failed:1|c',
      'mayhem.save_failed:1|c',
      'mayhem.dead_lettered:1|c',
      'mayhem.in_flight:42|g',
      'mayhem.handle_duration:17|ms',
    ]);
  });

  it('honours a custom prefix and sends buffered lines on its flush interval without close', async () => {
    const srv = await listen();
    const m = createStatsdMetrics({
      hostPort: `localhost:${srv.port}`,
      prefix: 'test.',
      logger: silent,
      flushIntervalMs: 20,
    });
    m.increment('malformed');
    expect(await srv.until(1)).toEqual(['test.malformed:1|c']);
    await m.close();
  });

  it('never throws when nothing listens and logs the error once', async () => {
    const records: { msg: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        records.push(JSON.parse(chunk.toString()) as { msg: string });
        cb();
      },
    });
    const logger = pino({ level: 'warn' }, sink);
    // A name that cannot resolve makes every send fail.
    const m = createStatsdMetrics({
      hostPort: 'no-such-host.invalid:8125',
      logger,
      flushIntervalMs: 10,
      closeTimeoutMs: 300,
    });
    for (let i = 0; i < 5_000; i++) m.increment('pulled');
    const started = Date.now();
    await m.close();
    // Bounded: hot-shots alone waits seconds for failing sends to drain.
    expect(Date.now() - started).toBeLessThan(1_000);
    m.increment('pulled'); // after close: ignored, not thrown
    const failures = records.filter((r) => r.msg.startsWith('StatsD send failed'));
    expect(failures).toHaveLength(1);
  });

  it('rejects a bad host:port with one line naming what is allowed', () => {
    for (const bad of ['localhost', 'localhost:0', 'localhost:70000', ':8125', 'a b:1', 'host:port']) {
      expect(() => createStatsdMetrics({ hostPort: bad, logger: silent })).toThrow(
        /--statsd must be host:port with a port from 1 to 65535/,
      );
    }
    expect(parseHostPort('[::1]:8125')).toEqual({ host: '::1', port: 8125 });
    expect(parseHostPort('statsd.internal:9125')).toEqual({ host: 'statsd.internal', port: 9125 });
  });

  it('noop metrics accept every call', async () => {
    noopMetrics.increment('pulled');
    noopMetrics.gauge('in_flight', 1);
    noopMetrics.timing('handle_duration', 1);
    await expect(noopMetrics.close()).resolves.toBeUndefined();
  });
});
