/**
 * Probes: the syntax, each kind against a real local server or program (an HTTP service, a
 * Prometheus-API-compatible endpoint served here in Prometheus' JSON shape, a command), and the
 * runner's stop condition through the kill switch, on fake time.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { openProbe } from '../src/probes/open.js';
import type { Probe, ProbeResult } from '../src/probes/probe.js';
import { ProbeRunner } from '../src/probes/runner.js';
import { parseProbe, parseProbes, type ProbeSettings } from '../src/probes/spec.js';
import { LocalFleetControl } from '../src/storage/memory/control.js';
import { MemoryExperimentStore } from '../src/storage/memory/experiments.js';

const silent = pino({ level: 'silent' });

describe('probe syntax', () => {
  it('reads the three kinds as an SRE types them', () => {
    expect(parseProbe('http:https://svc/health status=200 body=/ok|ready/i')).toEqual({
      kind: 'http',
      name: 'svc/health',
      url: 'https://svc/health',
      status: [200],
      body: { regex: 'ok|ready', flags: 'i' },
      timeoutMs: undefined,
    });
    expect(parseProbe("command:/usr/bin/check --x 'two words' code=3 env=PGHOST,PGPORT name=db timeout=2s")).toEqual({
      kind: 'command',
      name: 'db',
      argv: ['/usr/bin/check', '--x', 'two words'],
      code: 3,
      env: ['PGHOST', 'PGPORT'],
      timeoutMs: 2000,
    });
    expect(
      parseProbe(
        "prometheus:http://prom:9090 query='sum(rate(errors_total[1m])) / sum(rate(req_total[1m]))' threshold=<0.05",
      ),
    ).toMatchObject({
      kind: 'prometheus',
      url: 'http://prom:9090/',
      query: 'sum(rate(errors_total[1m])) / sum(rate(req_total[1m]))',
      threshold: { op: '<', value: 0.05 },
    });
    expect(parseProbe({ http: 'http://svc:8080/ready', status: '200,204', body: 'ready' })).toMatchObject({
      name: 'svc:8080/ready',
      status: [200, 204],
      body: { text: 'ready' },
    });
    expect(parseProbe({ command: ['/bin/check', 'code=1'], code: 0 })).toMatchObject({
      argv: ['/bin/check', 'code=1'],
    });
  });

  it('names unnamed probes uniquely; a name given twice is an error', () => {
    expect(parseProbes(['http:http://a/h', 'http:http://a/h']).map((p) => p.name)).toEqual(['a/h', 'a/h#2']);
    expect(() => parseProbes(['http:http://a/h name=x', 'http:http://b/h name=x'])).toThrow('two probes are named "x"');
  });

  it.each([
    ['ftp:x', /does not start with http:, command: or prometheus:/],
    ['http:svc/health', /http probe needs an http:\/\/ or https:\/\/ URL/],
    ['http:http://svc/h stauts=200', /unknown option "stauts=200" \(expected name=, timeout=, status=, body=\)/],
    ['http:http://svc/h status=abc', /status= expects a whole number from 100 to 599/],
    ['http:http://svc/h body=/(/', /is not a valid regular expression/],
    ['prometheus:http://prom:9090 threshold=<1', /prometheus probe needs query=/],
    ["prometheus:http://prom:9090 query='up' threshold=0.05", /threshold= as an operator and a number/],
    ['command:/bin/check | grep ok', /\| in the command probe is shell syntax/],
    ["http:http://svc/h body='unbalanced", /unbalanced ' in the http probe/],
  ])('refuses %s with one line', (text, message) => {
    let err: Error | undefined;
    try {
      parseProbe(text);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(message);
    expect(err?.message).not.toMatch(/\n/);
  });
});

/** A local server whose answer each test sets. */
let answer: (path: string) => { status: number; body: string } = () => ({ status: 200, body: 'ok' });
let server: Server;
let base = '';
beforeAll(async () => {
  server = createServer((req, res) => {
    const a = answer(req.url ?? '/');
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const check = (spec: string, timeoutMs = 2000): Promise<ProbeResult> =>
  openProbe(parseProbe(spec)).check(timeoutMs, new AbortController().signal);

describe('http probe (a real local server)', () => {
  it('holds on the expected status and body, fails with the reason otherwise', async () => {
    answer = () => ({ status: 200, body: '{"status":"ok"}' });
    expect(await check(`http:${base}/health body=/"ok"/`)).toMatchObject({
      ok: true,
      reason: `HTTP 200 from ${base}/health`,
    });
    answer = () => ({ status: 503, body: 'draining' });
    expect(await check(`http:${base}/health`)).toMatchObject({
      ok: false,
      reason: `HTTP 503 from ${base}/health (expected 200): draining`,
    });
    answer = () => ({ status: 200, body: 'starting' });
    expect(await check(`http:${base}/health body=ready`)).toMatchObject({
      ok: false,
      reason: `HTTP 200 from ${base}/health, but its body does not match "ready"`,
    });
  });

  it('an unreachable service is a failure that says so (and is marked unreachable)', async () => {
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const r = await check(`http:http://127.0.0.1:${port}/health`);
    expect(r).toMatchObject({
      ok: false,
      unreachable: true,
      reason: `cannot reach http://127.0.0.1:${port}/health: ECONNREFUSED`,
    });
  });
});

describe('prometheus probe (a Prometheus-API-compatible endpoint)', () => {
  const vector = (...values: string[]) =>
    JSON.stringify({
      status: 'success',
      data: {
        resultType: 'vector',
        result: values.map((v, i) => ({ metric: { i: String(i) }, value: [1700000000.1, v] })),
      },
    });
  let asked = '';
  const serve = (body: string, status = 200) => {
    answer = (path) => {
      asked = path;
      return { status, body };
    };
  };

  it('compares the one value of an instant query with the threshold', async () => {
    serve(vector('0.01'));
    const spec = `prometheus:${base} query='sum(rate(errors_total[1m]))' threshold=<0.05`;
    expect(await check(spec)).toMatchObject({ ok: true, value: 0.01, reason: 'value 0.01 is < 0.05' });
    expect(asked).toBe(`/api/v1/query?query=${encodeURIComponent('sum(rate(errors_total[1m]))')}`);
    serve(vector('0.2'));
    expect(await check(spec)).toMatchObject({ ok: false, value: 0.2, reason: 'value 0.2 is not < 0.05' });
    serve(JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [1700000000, '3'] } }));
    expect(await check(`prometheus:${base} query=3 threshold=>=3`)).toMatchObject({ ok: true, value: 3 });
  });

  it.each([
    ['no series', () => vector(), 200, 'the query returned no series'],
    [
      'two series',
      () => vector('1', '2'),
      200,
      'the query returned 2 series, not one (aggregate it, e.g. sum(...) or max(...))',
    ],
    [
      'a matrix',
      () => JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } }),
      200,
      'the query returned a matrix result, not a single number (a vector of one series or a scalar)',
    ],
    [
      'a bad query',
      () => JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error at char 4' }),
      400,
      'the query failed (HTTP 400): parse error at char 4',
    ],
  ])('%s is a failure with a clear reason', async (_name, body, status, reason) => {
    serve(body(), status);
    expect(await check(`prometheus:${base} query=up threshold=<1`)).toMatchObject({
      ok: false,
      unreachable: true,
      reason,
    });
  });
});

describe('command probe', () => {
  it('compares the exit code; the command sees none of mayhem’s secrets', async () => {
    const env = { PATH: process.env.PATH, PGPASSWORD: 'hunter2', MAYHEM_BROKER: 'nats://tok@x', KEEP: 'yes' };
    const probe = (text: string): Promise<ProbeResult> => {
      const spec = parseProbe(text);
      return openProbe(spec, env).check(spec.timeoutMs ?? 2000, new AbortController().signal);
    };
    expect(await probe(`command:/bin/sh -c 'test -z "$PGPASSWORD$MAYHEM_BROKER" && echo clean'`)).toMatchObject({
      ok: true,
      reason: '/bin/sh exited 0: clean',
    });
    expect(await probe(`command:/bin/sh -c 'echo "$KEEP"; exit 3' code=3 env=KEEP`)).toMatchObject({
      ok: true,
      reason: '/bin/sh exited 3: yes',
    });
    expect(await probe(`command:/bin/sh -c 'echo down >&2; exit 1'`)).toMatchObject({
      ok: false,
      reason: '/bin/sh exited 1 (expected 0): down',
    });
    expect(await probe(`command:/bin/sleep 5 timeout=100ms`)).toMatchObject({
      ok: false,
      reason: '/bin/sleep ran past 100 ms and was killed',
    });
    expect(await probe(`command:/no/such/check`)).toMatchObject({
      ok: false,
      unreachable: true,
      reason: 'cannot run /no/such/check: ENOENT',
    });
  });
});

/** A probe that answers what the test says, in order. */
function scripted(name: string, answers: boolean[]): Probe {
  const spec = parseProbe(`http:http://svc/${name} name=${name}`);
  return {
    spec,
    check: () => {
      const ok = answers.shift() ?? true;
      return Promise.resolve({ ok, reason: ok ? 'HTTP 200' : 'HTTP 503', latencyMs: 5 });
    },
    close: () => Promise.resolve(),
  };
}

describe('the probe runner: stop conditions through the kill switch', () => {
  afterEach(() => vi.useRealTimers());
  const settings = (resume: boolean): ProbeSettings => ({
    probes: [],
    everyMs: 1000,
    tolerance: 3,
    timeoutMs: 500,
    resume,
  });

  it('3 failures in a row pause every instance (with the reason); recovery resumes only with --probe-resume', async () => {
    vi.useFakeTimers();
    for (const resume of [false, true]) {
      const control = new LocalFleetControl();
      const store = new MemoryExperimentStore();
      const runner = new ProbeRunner(
        [scripted('api', [true, false, false, true, false, false, false, true])],
        settings(resume),
        {
          control,
          logger: silent,
          instance: 'vm:1',
          journal: { store, experiment: 'exp' },
        },
      );
      expect((await runner.steadyState('before'))[0]?.result.ok).toBe(true);
      runner.start();
      await vi.advanceTimersByTimeAsync(2000); // two failures: not yet
      expect(control.pauseState()).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1000); // a success resets the count
      await vi.advanceTimersByTimeAsync(3000); // three in a row: the stop condition
      expect(control.pauseState()).toMatchObject({
        by: 'probe api on vm:1',
        reason: 'probe api failed 3 checks in a row: HTTP 503',
      });
      await vi.advanceTimersByTimeAsync(1000); // it holds again
      expect(control.pauseState() === undefined).toBe(resume);
      await runner.stop();
      expect(control.entries.map((e) => [e.outcome, e.host, e.reason])).toEqual([
        ['probe-failed', '*', 'probe api failed 3 checks in a row: HTTP 503; restarts paused on every instance'],
        [
          'probe-recovered',
          '*',
          resume
            ? 'probe api holds again: HTTP 200; restarts resumed (--probe-resume)'
            : 'probe api holds again: HTTP 200; restarts stay paused (`mayhem resume`, or --probe-resume to resume by itself)',
        ],
      ]);
      const checks = await store.checks('exp', 100);
      expect(checks.map((c) => (c.ok ? 1 : 0))).toEqual([1, 0, 0, 1, 0, 0, 0, 1]);
      expect(checks[0]?.phase).toBe('before');
    }
  });

  it('a pause set by someone else is neither overwritten nor resumed', async () => {
    vi.useFakeTimers();
    const control = new LocalFleetControl();
    await control.setPause({ by: 'alice@ops', at: 1, reason: 'change freeze' });
    const runner = new ProbeRunner(
      [scripted('api', [false, false, false, true])],
      { ...settings(true) },
      {
        control,
        logger: silent,
        instance: 'vm:1',
      },
    );
    runner.start();
    await vi.advanceTimersByTimeAsync(4000);
    await runner.stop();
    expect(control.pauseState()?.by).toBe('alice@ops');
    expect(control.entries.map((e) => e.reason)).toEqual([
      'probe api failed 3 checks in a row: HTTP 503; restarts already paused by alice@ops',
      'probe api holds again: HTTP 200',
    ]);
  });
});
