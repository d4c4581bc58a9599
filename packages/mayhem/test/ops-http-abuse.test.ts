/**
 * `--http` under abuse (issue 23, item 4): idle and slowloris sockets closed after the timeout,
 * /healthz fast while a thousand idle sockets are held, 431 (not a reset) for 100 KB and 10 MB
 * headers, the connection cap, /metrics from one shared snapshot, the endpoint's thread at a lower
 * priority, and a non-loopback address refused without --http-public.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { openHttpEndpoint, type HttpEndpoint } from '../src/metrics/http-server.js';
import { cli, execCli } from './helpers/cli.js';
import { capturingLogger } from './pipeline-harness.js';

async function withEndpoint(
  opts: { timeoutMs?: number; maxConnections?: number; metricsMaxAgeMs?: number },
  body: (ep: HttpEndpoint, log: ReturnType<typeof capturingLogger>) => Promise<void>,
): Promise<void> {
  const log = capturingLogger();
  const ep = await openHttpEndpoint({ listen: '127.0.0.1:0', logger: log.logger, ...opts });
  try {
    await body(ep, log);
  } finally {
    await ep.close();
  }
}

const portOf = (ep: HttpEndpoint): number => Number(new URL(ep.url).port);

/** A raw connection: what it received, and when it closed (ms after it connected). */
interface Raw {
  readonly socket: Socket;
  readonly connected: Promise<number>;
  readonly closed: Promise<{ afterMs: number; received: string; error: string | undefined }>;
}

function raw(port: number): Raw {
  const socket = connect({ port, host: '127.0.0.1' });
  let received = '';
  let error: string | undefined;
  let at = 0;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => (received += d));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const connected = new Promise<number>((resolve) =>
    socket.once('connect', () => {
      at = performance.now();
      resolve(at);
    }),
  );
  const closed = new Promise<{ afterMs: number; received: string; error: string | undefined }>((resolve) =>
    socket.once('close', () => resolve({ afterMs: performance.now() - at, received, error })),
  );
  return { socket, connected, closed };
}

async function get(url: string): Promise<{ status: number; text: string; ms: number }> {
  const t0 = performance.now();
  const res = await request(url, { reset: true });
  const text = await res.body.text();
  return { status: res.statusCode, text, ms: performance.now() - t0 };
}

describe('--http sheds what would hold it', () => {
  it('closes a socket that sends nothing, and one that sends its headers too slowly (408), after --http-timeout', async () => {
    await withEndpoint({ timeoutMs: 300 }, async (ep) => {
      const idle = Array.from({ length: 20 }, () => raw(portOf(ep)));
      await Promise.all(idle.map((r) => r.connected));
      const slow = raw(portOf(ep));
      await slow.connected;
      slow.socket.write('GET /healthz HTTP/1.1\r\n');
      // A header line every 50 ms: never idle, never done.
      const drip = setInterval(() => slow.socket.writable && slow.socket.write('X-Drip: 1\r\n'), 50);
      try {
        for (const r of await Promise.all(idle.map((i) => i.closed))) {
          expect(r.afterMs).toBeGreaterThanOrEqual(250);
          expect(r.afterMs).toBeLessThan(3000);
          // Closed unanswered, or with a 408: node's own header timer and the endpoint's idle timer (both
          // --http-timeout) race for a connection that never began its request; either closes it.
          expect(r.received).toMatch(/^(|HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*)$/);
        }
        const s = await slow.closed;
        expect(s.afterMs).toBeGreaterThanOrEqual(250);
        expect(s.afterMs).toBeLessThan(3000);
        expect(s.received).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      } finally {
        clearInterval(drip);
      }
      // The endpoint still answers.
      expect(await get(`${ep.url}/healthz`)).toMatchObject({ status: 200, text: 'ok\n' });
    });
  });

  it('answers /healthz fast while 1,100 idle sockets are held (cap 64: the oldest idle give way; cap 2,000: all held)', async () => {
    for (const maxConnections of [64, 2000]) {
      await withEndpoint({ timeoutMs: 60_000, maxConnections }, async (ep, log) => {
        const held = Array.from({ length: 1100 }, () => raw(portOf(ep)));
        await Promise.all(held.map((r) => r.connected));
        const times: number[] = [];
        for (let i = 0; i < 5; i++) {
          const r = await get(`${ep.url}/healthz`);
          expect(r).toMatchObject({ status: 200, text: 'ok\n' });
          times.push(r.ms);
        }
        times.sort((a, b) => a - b);
        // The figure was 1.7 s; a loopback request here takes about a millisecond.
        expect(times[2]).toBeLessThan(200);
        let closedByServer = 0;
        for (const r of held) void r.closed.then(() => (closedByServer += 1));
        if (maxConnections === 64) {
          // At most 64 open at once: the others (and the oldest idle, for each /healthz) are closed, as the
          // endpoint's thread takes them from the kernel's queue.
          await expect.poll(() => closedByServer, { timeout: 20_000 }).toBeGreaterThanOrEqual(1100 - 64);
          expect(log.messages().some((m) => m.startsWith('HTTP endpoint at its 64 connections'))).toBe(true);
        } else {
          await new Promise((r) => setTimeout(r, 50));
          expect(closedByServer).toBe(0);
        }
        for (const r of held) r.socket.destroy();
      });
    }
  });

  it('past the cap with every connection busy, a new one is closed; once one is free it gets in', async () => {
    await withEndpoint({ timeoutMs: 60_000, maxConnections: 3 }, async (ep) => {
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let renders = 0;
      ep.attachReport(async () => {
        renders++;
        await gate;
        return '<p>report</p>';
      });
      // Three requests for the report, held until the gate opens: three busy connections.
      const busy = [1, 2, 3].map(() => request(`${ep.url}/`, { reset: true }));
      await expect.poll(() => renders).toBe(1);
      const fourth = raw(portOf(ep));
      await fourth.connected;
      fourth.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      const refused = await fourth.closed;
      expect(refused.received).toBe('');
      release();
      for (const b of await Promise.all(busy)) {
        expect(b.statusCode).toBe(200);
        expect(await b.body.text()).toBe('<p>report</p>');
      }
      expect(await get(`${ep.url}/healthz`)).toMatchObject({ status: 200 });
    });
  });

  it.each([
    ['100 KB', 100 * 1024],
    ['10 MB', 10 * 1024 * 1024],
  ])('answers a %s header with 431, not a reset', async (_name, size) => {
    await withEndpoint({ timeoutMs: 10_000 }, async (ep) => {
      const r = raw(portOf(ep));
      await r.connected;
      r.socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(size)}\r\n\r\n`);
      const end = await r.closed;
      expect(end.error).toBeUndefined();
      expect(end.received).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
      expect(end.received).toMatch(/\r\nconnection: close\r\n/);
      expect(await get(`${ep.url}/healthz`)).toMatchObject({ status: 200 });
    });
  });

  it('serves /metrics from one snapshot, rendered at most once per --http-metrics-max-age, shared by concurrent scrapes', async () => {
    // Room for the 200 scrapes at once (past the default cap of 64 they would be shed, not served).
    await withEndpoint({ metricsMaxAgeMs: 60_000, maxConnections: 500 }, async (ep) => {
      let renders = 0;
      ep.metrics.setBacklogSource(() => {
        renders++;
        return Promise.resolve(7);
      });
      ep.metrics.increment('acked', 3);
      const scrapes = await Promise.all(Array.from({ length: 200 }, () => get(`${ep.url}/metrics`)));
      expect(renders).toBe(1);
      for (const s of scrapes) {
        expect(s.status).toBe(200);
        expect(s.text).toMatch(/^mayhem_acked_total 3$/m);
      }
      ep.metrics.increment('acked', 5);
      // Within the max age: the same snapshot.
      expect((await get(`${ep.url}/metrics`)).text).toMatch(/^mayhem_acked_total 3$/m);
      expect(renders).toBe(1);
    });
    await withEndpoint({ metricsMaxAgeMs: 0 }, async (ep) => {
      ep.metrics.increment('acked', 3);
      expect((await get(`${ep.url}/metrics`)).text).toMatch(/^mayhem_acked_total 3$/m);
      ep.metrics.increment('acked', 5);
      expect((await get(`${ep.url}/metrics`)).text).toMatch(/^mayhem_acked_total 8$/m);
    });
  });

  it.runIf(process.platform === 'linux')("runs the endpoint's thread 10 nice levels below the service's", async () => {
    // Each thread's nice value, by thread id. Field 19 (nice), counted after the command name, which may hold spaces.
    const nices = (): Map<string, number> =>
      new Map(
        readdirSync('/proc/self/task').flatMap((tid): [string, number][] => {
          try {
            const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
            return [[tid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])]];
          } catch {
            return []; // the thread ended between the listing and the read
          }
        }),
      );
    const own = Number(readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]!.split(' ')[16]);
    // Only threads that are new count: an earlier endpoint's thread may still be on its way out.
    const before = new Set(nices().keys());
    await withEndpoint({}, () => {
      const fresh = [...nices()].filter(([tid]) => !before.has(tid));
      expect(fresh.filter(([, n]) => n === Math.min(19, own + 10))).toHaveLength(1);
      // Every other new thread (libuv's, V8's) keeps the service's priority.
      if (own + 10 <= 19) expect(fresh.filter(([, n]) => n !== own)).toHaveLength(1);
      return Promise.resolve();
    });
  });
});

describe('--http on an address beyond this machine', () => {
  it('is refused without --http-public (one line, exit 2), and said in a warning with it', async () => {
    const refused = await execCli(['run', '--db', 'memory:', '--http', '0.0.0.0:0'], {});
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      'mayhem: --http "0.0.0.0:0" would serve /metrics, /healthz, /readyz and the experiment report without authentication beyond this machine: add --http-public to mean it, or listen on 127.0.0.1\n',
    );
    for (const listen of ['[::]:0', 'example.com:9464', '10.1.2.3:9464']) {
      expect((await execCli(['run', '--db', 'memory:', '--http', listen], {})).code).toBe(2);
    }
    const env = await execCli(['run', '--db', 'memory:'], { MAYHEM_HTTP: '0.0.0.0:0' });
    expect(env.stderr).toMatch(/^mayhem: MAYHEM_HTTP "0\.0\.0\.0:0" would serve/);

    const run = cli(['run', '--db', 'memory:', '--http', '0.0.0.0:0', '--http-public', '--count', '3']);
    const { code } = await run.exited;
    expect(code).toBe(0);
    const warning = run.lines.find((l) => l.msg.startsWith('--http-public: '));
    expect(warning?.msg).toMatch(
      /^--http-public: http:\/\/0\.0\.0\.0:\d+ serves \/metrics, \/healthz, \/readyz and the experiment report, without authentication, to anyone who can reach 0\.0\.0\.0:0$/,
    );
    expect(warning?.level).toBe(40);
  });
});
