/**
 * `--http`: /metrics scraped with a real HTTP client (undici) from the real service while messages
 * flow, /healthz, and /readyz flipping to 503 the moment a shutdown begins, while the service is
 * still finishing its in-flight work. Then the endpoint on its own: readiness from the dependency
 * health, unknown paths and methods, a port already in use.
 */
import { createServer } from 'node:net';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { openHttpEndpoint } from '../src/metrics/http-server.js';
import { cli, summaryOf } from './helpers/cli.js';
import { capturingLogger } from './pipeline-harness.js';

async function get(
  url: string,
  method: 'GET' | 'HEAD' | 'POST' = 'GET',
): Promise<{ status: number; type: string; text: string }> {
  const res = await request(url, { method });
  return { status: res.statusCode, type: String(res.headers['content-type']), text: await res.body.text() };
}

/** Sample values of a Prometheus text exposition, by series (`name{labels}`). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('--http (the real service)', () => {
  it('serves /metrics while messages flow, and /readyz says 503 from the moment shutdown begins', async () => {
    const run = cli([
      'run',
      '--http',
      '127.0.0.1:0',
      '--db',
      'memory:',
      '--publish-rate',
      '200',
      '--restart-latency',
      '1s',
      '--restart-failure-rate',
      '0.2',
      '--grace',
      '3s',
      '--seed',
      '5',
      // Every scrape rendered: each one below must see the figures of its moment.
      '--http-metrics-max-age',
      '0',
    ]);
    await run.waitFor((lines) => lines.some((l) => l.msg.startsWith('Serving /metrics')));
    const url = run.lines.find((l) => l.msg.startsWith('Serving /metrics'))!['http'] as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    await run.waitFor((lines) => lines.filter((l) => l.msg.startsWith('Done. Acked ')).length >= 20);
    expect(await get(`${url}/healthz`)).toMatchObject({ status: 200, text: 'ok\n' });
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 200, text: 'ready\n' });
    const first = await get(`${url}/metrics`);
    expect(first.status).toBe(200);
    expect(first.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const a = samples(first.text);
    expect(a.get('mayhem_acked_total')).toBeGreaterThanOrEqual(20);
    expect(a.get('mayhem_pulled_total')).toBeGreaterThan(a.get('mayhem_acked_total')!);
    expect(a.get('mayhem_in_flight_messages')).toBeGreaterThan(0);
    // The memory broker's ready + nack-delayed messages: a number (the publisher outpaces nothing here).
    expect(a.get('mayhem_backlog_messages')).toBeGreaterThanOrEqual(0);
    expect(a.get('mayhem_restart_failed_total')).toBeGreaterThan(0);
    expect(a.get('mayhem_handle_duration_seconds_count')).toBe(
      a.get('mayhem_acked_total')! + a.get('mayhem_nacked_total')! + a.get('mayhem_dead_lettered_total')!,
    );
    expect(a.get('mayhem_handle_duration_seconds_bucket{le="+Inf"}')).toBe(
      a.get('mayhem_handle_duration_seconds_count'),
    );
    // Every acked message restarted once; failures are their own series.
    expect(a.get('mayhem_restart_duration_seconds_count{outcome="restarted"}')).toBe(a.get('mayhem_restarted_total'));
    expect(a.get('mayhem_restart_duration_seconds_count{outcome="failed"}')).toBe(a.get('mayhem_restart_failed_total'));
    // A 1 s mock restart is uniform in [0, 1 s]: none lands above 1.
    expect(a.get('mayhem_restart_duration_seconds_bucket{le="1",outcome="restarted"}')).toBeLessThanOrEqual(
      a.get('mayhem_restart_duration_seconds_count{outcome="restarted"}')!,
    );
    expect(a.get('mayhem_restart_duration_seconds_bucket{le="2.5",outcome="restarted"}')).toBe(
      a.get('mayhem_restart_duration_seconds_count{outcome="restarted"}'),
    );
    // Node's default metrics and loopwatch's loop figures.
    expect(a.get('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(a.has('nodejs_heap_size_used_bytes')).toBe(true);
    expect(first.text).toContain('# TYPE loopwatch_event_loop_utilization gauge');
    expect(first.text).toContain('# TYPE loopwatch_event_loop_stalls_total counter');

    // Messages keep flowing: the next scrape has moved on.
    await run.waitFor(
      (lines) => lines.filter((l) => l.msg.startsWith('Done. Acked ')).length >= a.get('mayhem_acked_total')! + 20,
    );
    const b = samples((await get(`${url}/metrics`)).text);
    expect(b.get('mayhem_acked_total')).toBeGreaterThan(a.get('mayhem_acked_total')!);
    expect(b.get('mayhem_pulled_total')).toBeGreaterThan(a.get('mayhem_pulled_total')!);

    // Shutdown begins: not ready at once, while in-flight messages still get their grace period.
    run.child.kill('SIGTERM');
    await run.waitFor((lines) => lines.some((l) => l.msg === 'Received exit signal SIGTERM...'));
    expect(await get(`${url}/readyz`)).toMatchObject({ status: 503, text: 'not ready: shutting down\n' });
    expect(await get(`${url}/healthz`)).toMatchObject({ status: 200 });
    expect(run.child.exitCode).toBe(null);
    const during = samples((await get(`${url}/metrics`)).text);
    expect(during.get('mayhem_acked_total')).toBeGreaterThanOrEqual(b.get('mayhem_acked_total')!);

    const { code } = await run.exited;
    expect(code).toBe(0);
    expect(run.stderr()).toBe('');
    expect(summaryOf(run.lines).acked).toBeGreaterThanOrEqual(during.get('mayhem_acked_total')!);
    // Closed last: gone once the process is.
    await expect(get(`${url}/healthz`)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('the HTTP endpoint on its own', () => {
  it('readiness follows the service: starting, ready, a dependency down, shutting down', async () => {
    const log = capturingLogger();
    const ep = await openHttpEndpoint({ listen: '127.0.0.1:0', logger: log.logger });
    try {
      expect(await get(`${ep.url}/readyz`)).toMatchObject({ status: 503, text: 'not ready: starting\n' });
      const storageHealth = { down: false };
      const brokerHealth = { down: false };
      const shutdown = new AbortController();
      ep.attach({ shuttingDown: shutdown.signal, storageHealth, brokerHealth });
      expect(await get(`${ep.url}/readyz`)).toMatchObject({ status: 200, text: 'ready\n' });
      storageHealth.down = true;
      expect(await get(`${ep.url}/readyz`)).toMatchObject({ status: 503, text: 'not ready: database unavailable\n' });
      brokerHealth.down = true;
      expect(await get(`${ep.url}/readyz`)).toMatchObject({
        status: 503,
        text: 'not ready: database unavailable, broker unavailable\n',
      });
      storageHealth.down = brokerHealth.down = false;
      expect((await get(`${ep.url}/readyz`)).status).toBe(200);
      shutdown.abort();
      expect(await get(`${ep.url}/readyz`)).toMatchObject({ status: 503, text: 'not ready: shutting down\n' });
      expect(await get(`${ep.url}/readyz`, 'HEAD')).toMatchObject({ status: 503, text: '' });
      expect(await get(`${ep.url}/nope`)).toMatchObject({ status: 404 });
      expect(await get(`${ep.url}/metrics`, 'POST')).toMatchObject({ status: 405 });
      ep.metrics.increment('acked', 3);
      ep.metrics.setBacklogSource(() => Promise.reject(new Error('broker down')));
      const m = samples((await get(`${ep.url}/metrics`)).text);
      expect(m.get('mayhem_acked_total')).toBe(3);
      // A backlog the broker cannot tell now is NaN (unknown), not 0 and not a failed scrape.
      expect(m.get('mayhem_backlog_messages')).toBeNaN();
    } finally {
      await ep.close();
    }
  });

  it('a port in use: one line naming it', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address() as { port: number };
    try {
      await expect(openHttpEndpoint({ listen: `127.0.0.1:${port}`, logger: capturingLogger().logger })).rejects.toThrow(
        `cannot serve --http on 127.0.0.1:${port}: address already in use (EADDRINUSE)`,
      );
    } finally {
      blocker.close();
    }
  });
});
