/**
 * `--executor http` against a real HTTP server on loopback: 503 then 200 through the pipeline, 4xx
 * dead-lettered at once, timeouts and dropped connections retried with the same Idempotency-Key,
 * a refused connection, shutdown before and after the request went out, keep-alive reuse, and
 * the settings checked at start (the secret in the headers file shows up nowhere).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RestartContext } from '../src/core/contracts.js';
import { RESTARTED } from '../src/core/restart-outcome.js';
import { ConfigError } from '../src/config/config.js';
import { parseHeaders } from '../src/executors/headers.js';
import { HttpRestartExecutor, parseUrlTemplate } from '../src/executors/http.js';
import { openExecutor, type ExecutorSettings } from '../src/executors/open.js';
import { freePort } from './helpers/nats-server.js';
import { executorPipeline, failure } from './helpers/executor-pipeline.js';
import { capturingLogger } from './pipeline-harness.js';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

type Answer = (req: Seen, res: ServerResponse) => void;

/** A webhook whose answers are queued per test; every request is recorded. */
class Webhook {
  readonly seen: Seen[] = [];
  connections = 0;
  readonly #answers: Answer[] = [];
  #fallback: Answer = (_req, res) => res.writeHead(200).end('restarted');
  readonly #waiters: (() => void)[] = [];
  readonly server: Server;
  url = '';

  constructor() {
    this.server = createServer((req, res) => {
      let body = '';
      req
        .setEncoding('utf8')
        .on('data', (c: string) => (body += c))
        .on('end', () => {
          const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
          this.seen.push(seen);
          for (const w of this.#waiters.splice(0)) w();
          (this.#answers.shift() ?? this.#fallback)(seen, res);
        });
    });
    this.server.on('connection', () => (this.connections += 1));
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  answer(...answers: Answer[]): void {
    this.#answers.push(...answers);
  }

  reset(): void {
    this.seen.length = 0;
    this.#answers.length = 0;
    this.#fallback = (_req, res) => res.writeHead(200).end('restarted');
  }

  /** Resolves once a request has arrived (the server's own event, no sleep). */
  requested(): Promise<void> {
    return new Promise((r) => this.#waiters.push(r));
  }
}

const status =
  (code: number, body = ''): Answer =>
  (_req, res) =>
    res.writeHead(code, { 'content-type': 'text/plain' }).end(body);
const never: Answer = () => undefined;
const drop: Answer = (_req, res) => res.socket?.destroy();

const hook = new Webhook();
const dir = mkdtempSync(join(tmpdir(), 'mayhem-http-'));
const SECRET = 'Bearer s3cr3t-t0ken-value';
const executors: HttpRestartExecutor[] = [];

beforeAll(() => hook.start());
afterEach(() => hook.reset());
afterAll(async () => {
  await Promise.all(executors.map((e) => e.close()));
  hook.server.closeAllConnections();
  await new Promise((r) => hook.server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function executor(
  path = '/restart/{host}?instance={instance}',
  timeoutMs = 2000,
): { ex: HttpRestartExecutor; log: ReturnType<typeof capturingLogger> } {
  const log = capturingLogger('debug');
  const ex = new HttpRestartExecutor({
    url: parseUrlTemplate(hook.url + path),
    headers: { authorization: SECRET, 'x-team': 'sre' },
    timeoutMs,
    logger: log.logger,
  });
  executors.push(ex);
  return { ex, log };
}

const ctx = (attempt = 1, messageId = 'msg-1'): RestartContext => ({
  messageId,
  instanceName: 'web-1',
  attempt,
  deliveryCount: 1,
});

describe('http executor (real server)', () => {
  it('503 then 200 through the pipeline: retried, acked, one Idempotency-Key, headers and JSON body as documented', async () => {
    const { ex, log } = executor();
    hook.answer(status(503, 'maintenance\nsecond line'));
    const p = executorPipeline(ex);
    const id = p.publish('web-1');
    expect(await p.handleNext()).toBe('acked');
    expect(hook.seen).toHaveLength(2);
    const [first, second] = hook.seen as [Seen, Seen];
    expect(first.method).toBe('POST');
    expect(first.url).toBe('/restart/web-1.example.net?instance=web-1');
    expect(first.headers['idempotency-key']).toBe(id);
    expect(second.headers['idempotency-key']).toBe(id);
    expect(first.headers['authorization']).toBe(SECRET);
    expect(first.headers['x-team']).toBe('sre');
    expect(first.headers['content-type']).toBe('application/json');
    expect(JSON.parse(first.body)).toEqual({
      messageId: id,
      instanceName: 'web-1',
      host: 'web-1.example.net',
      attempt: 1,
      deliveryCount: 1,
    });
    expect(JSON.parse(second.body)).toMatchObject({ attempt: 2 });
    const record = p.storage.records.get(id)!;
    expect(record).toMatchObject({ restarted: true, acked: true, restartAttempts: 2 });
    expect(p.log.messages()).toContain('Retrying for failure to restart: web-1.example.net');
    // Keep-alive: both attempts went over one connection.
    expect(hook.connections).toBe(1);
    expect(JSON.stringify([...log.lines, ...p.log.lines])).not.toContain('s3cr3t');
  });

  it('a 404 is refused for good: not retried, dead-lettered at once with the status and body as the reason', async () => {
    const { ex } = executor();
    hook.answer(status(404, 'no such host in inventory'));
    const p = executorPipeline(ex);
    const id = p.publish('web-1');
    expect(await p.handleNext()).toBe('dead-lettered');
    expect(hook.seen).toHaveLength(1);
    expect(p.storage.deadLetters.map((d) => d.reason)).toEqual([
      'rejected: the webhook answered HTTP 404 for web-1.example.net: no such host in inventory',
    ]);
    expect(p.storage.records.get(id)).toMatchObject({ restarted: false, deadLettered: true });
  });

  it.each([
    [500, 'not-restarted'],
    [502, 'not-restarted'],
    [408, 'not-restarted'],
    [429, 'not-restarted'],
    [400, 'rejected'],
    [401, 'rejected'],
    [409, 'rejected'],
    [301, 'rejected'],
  ])('HTTP %i → %s', async (code, kind) => {
    const { ex } = executor();
    hook.answer(status(code, `status ${code}`));
    expect(await ex.restart('web-1.example.net', new AbortController().signal, ctx())).toEqual({
      kind,
      reason: `the webhook answered HTTP ${code} for web-1.example.net: status ${code}`,
    });
  });

  it('sent and not answered in time: not-restarted (retried, same Idempotency-Key), within the timeout', async () => {
    const { ex } = executor(undefined, 300);
    hook.answer(never, never);
    const p = executorPipeline(ex, { restartAttempts: 2 });
    const id = p.publish('web-1');
    const started = performance.now();
    expect(await p.handleNext()).toBe('nacked');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(hook.seen.map((s) => s.headers['idempotency-key'])).toEqual([id, id]);
    expect(p.storage.records.get(id)).toMatchObject({
      restarted: false,
      lastError: expect.stringMatching(
        /^no answer from the webhook http:\/\/127\.0\.0\.1:\d+\/restart\/\{host\} for web-1\.example\.net within 300ms \(retried with the same Idempotency-Key\)$/,
      ) as unknown,
    });
    // Released, not in doubt: the redelivery restarts it (and the webhook de-duplicates by the key).
    expect(await p.handleNext()).toBe('acked');
    expect(hook.seen.at(-1)?.headers['idempotency-key']).toBe(id);
  });

  it('the connection dropped before an answer: not-restarted (retried with the same key)', async () => {
    const { ex } = executor();
    hook.answer(drop);
    const out = await failure(ex.restart('web-1.example.net', new AbortController().signal, ctx()));
    expect(out.kind).toBe('not-restarted');
    expect(out).not.toHaveProperty('resource');
    expect(out.reason).toMatch(
      /the connection to the webhook .* failed before its answer: .*\(retried with the same Idempotency-Key\)/,
    );
  });

  it('nothing listening: not-restarted (certainly not sent)', async () => {
    const port = await freePort();
    const ex = new HttpRestartExecutor({
      url: parseUrlTemplate(`http://127.0.0.1:${port}/r/{host}`),
      headers: {},
      timeoutMs: 2000,
      logger: capturingLogger().logger,
    });
    executors.push(ex);
    const out = await failure(ex.restart('web-1.example.net', new AbortController().signal, ctx()));
    expect(out.kind).toBe('not-restarted');
    expect(out).not.toHaveProperty('resource');
    expect(out.reason).toMatch(
      /^could not reach the webhook http:\/\/127\.0\.0\.1:\d+\/r\/\{host\} for web-1\.example\.net: .*ECONNREFUSED/,
    );
  });

  it('shutdown after the request went out: outcome unknown (a cancellation left in doubt)', async () => {
    const { ex } = executor();
    hook.answer(never);
    const shutdown = new AbortController();
    const running = ex.restart('web-1.example.net', shutdown.signal, ctx());
    await hook.requested();
    shutdown.abort(new DOMException('shutdown grace period over', 'AbortError'));
    const out = await failure(running);
    expect(out).toMatchObject({ kind: 'unknown', cancelled: true });
    expect(out.reason).toMatch(/was sent and shutdown came before its answer; it may have restarted the host/);
  });

  it('shutdown before the request went out: cancelled, and it never reaches the server', async () => {
    const { ex } = executor();
    expect((await failure(ex.restart('web-1.example.net', AbortSignal.abort(), ctx()))).kind).toBe('cancelled');

    // Queued behind a full pool: aborted while waiting for a connection, it is dropped unsent.
    const one = new HttpRestartExecutor({
      url: parseUrlTemplate(`${hook.url}/r/{host}`),
      headers: {},
      timeoutMs: 5000,
      logger: capturingLogger().logger,
      connections: 1,
    });
    executors.push(one);
    hook.answer(never);
    const first = one.restart('a.example.net', new AbortController().signal, ctx());
    await hook.requested();
    const shutdown = new AbortController();
    const queued = one.restart('b.example.net', shutdown.signal, ctx());
    shutdown.abort();
    expect((await failure(queued)).kind).toBe('cancelled');
    hook.server.closeAllConnections();
    await failure(first);
    // A new connection: still only the first request ever arrived.
    expect(await one.restart('c.example.net', new AbortController().signal, ctx())).toBe(RESTARTED);
    expect(hook.seen.map((s) => s.url)).toEqual(['/r/a.example.net', '/r/c.example.net']);
  });

  it('fields are URL-encoded into the path and query; many restarts share a few keep-alive connections', async () => {
    const { ex } = executor('/r/{instance}/{host}?x={instance}');
    expect(
      await ex.restart('a b/c?d.example.net', new AbortController().signal, { ...ctx(), instanceName: 'x&y=z' }),
    ).toBe(RESTARTED);
    expect(hook.seen[0]!.url).toBe('/r/x%26y%3Dz/a%20b%2Fc%3Fd.example.net?x=x%26y%3Dz');
    // One after another: on the connections already open (undici hands a connection back to its
    // pool just after the answer is delivered, so the second request may open one more).
    const before = hook.connections;
    for (let i = 0; i < 20; i++)
      expect(await ex.restart(`h${i}.example.net`, new AbortController().signal, ctx(1, `m-${i}`))).toBe(RESTARTED);
    expect(hook.seen).toHaveLength(21);
    expect(hook.connections - before).toBeLessThanOrEqual(1);
    // Bursts: connections are reused across bursts instead of one per request.
    for (let round = 0; round < 10; round++) {
      const outcomes = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          ex.restart(`h${i}.example.net`, new AbortController().signal, ctx(1, `m-${round}-${i}`)),
        ),
      );
      expect(outcomes.every((o) => o === RESTARTED)).toBe(true);
    }
    expect(hook.seen).toHaveLength(61);
    expect(hook.connections - before).toBeLessThan(20);
  });
});

describe('http executor: at most --http-max-calls requests per message, across attempts and deliveries', () => {
  it('a webhook that never answers gets 3 requests, not 15; then the restart is in doubt (one may have arrived)', async () => {
    const { ex } = executor(undefined, 200);
    hook.answer(never, never, never, never, never, never);
    const p = executorPipeline(ex, { restartAttempts: 3, maxDeliveries: 5 });
    const id = p.publish('web-1');
    expect(await p.handleNext()).toBe('nacked'); // 3 requests, each unanswered
    expect(hook.seen).toHaveLength(3);
    expect(p.storage.records.get(id)).toMatchObject({ httpCalls: 3, httpCallsFailed: 0 });
    expect(await p.handleNext()).toBe('nacked'); // the cap: not sent, left in doubt
    expect(hook.seen).toHaveLength(3);
    expect(p.storage.records.get(id)?.lastError).toMatch(
      /^3 calls to the webhook http:\/\/127\.0\.0\.1:\d+\/restart\/\{host\} were made for this message \(--http-max-calls 3\) and 3 got no answer; it may have restarted web-1\.example\.net, so it is not called again$/,
    );
    expect(await p.handleNext()).toBe('acked'); // found in doubt: recorded, never run again
    expect(p.storage.records.get(id)).toMatchObject({ restartInDoubt: true, restarted: false, acked: true });
    expect(hook.seen).toHaveLength(3);
    // One in-doubt row for the message (issue 23): the third delivery finds it written with the second's record.
    expect(p.storage.control().entries.map((e) => e.outcome)).toEqual(['failed', 'in-doubt']);
  });

  it('a webhook that always answers 503 gets 3 requests; then the restart failed for good (dead-lettered)', async () => {
    const { ex } = executor();
    hook.answer(...Array.from({ length: 6 }, () => status(503, 'busy')));
    const p = executorPipeline(ex, { restartAttempts: 2, maxDeliveries: 5 });
    const id = p.publish('web-1');
    expect(await p.handleNext()).toBe('nacked');
    expect(p.storage.records.get(id)).toMatchObject({ httpCalls: 2, httpCallsFailed: 2 });
    expect(await p.handleNext()).toBe('dead-lettered');
    expect(hook.seen).toHaveLength(3);
    expect(p.storage.deadLetters.map((d) => d.reason)).toEqual([
      expect.stringMatching(
        /^rejected: 3 calls to the webhook .* were made for this message \(--http-max-calls 3\), each known to have done nothing; not calling again for web-1\.example\.net$/,
      ),
    ]);
  });

  it('--http-max-calls 1: the one request that got a 200 is the only one; a refused connection is not a call that arrived', async () => {
    const log = capturingLogger('debug');
    const one = new HttpRestartExecutor({
      url: parseUrlTemplate(hook.url + '/restart/{host}'),
      headers: {},
      timeoutMs: 2000,
      logger: log.logger,
      maxCalls: 1,
    });
    executors.push(one);
    const p = executorPipeline(one);
    p.publish('web-1');
    expect(await p.handleNext()).toBe('acked');
    expect(hook.seen).toHaveLength(1);
    const port = await freePort();
    const nowhere = new HttpRestartExecutor({
      url: parseUrlTemplate(`http://127.0.0.1:${port}/restart/{host}`),
      headers: {},
      timeoutMs: 2000,
      logger: log.logger,
      maxCalls: 1,
    });
    executors.push(nowhere);
    const q = executorPipeline(nowhere, { restartAttempts: 3 });
    const id = q.publish('web-2');
    expect(await q.handleNext()).toBe('dead-lettered'); // not sent (counted as failed), then the cap
    expect(q.storage.records.get(id)).toMatchObject({ httpCalls: 1, httpCallsFailed: 1, restartInDoubt: false });
  });
});

describe('http executor settings (checked at start)', () => {
  const settings = (s: Partial<ExecutorSettings>): ExecutorSettings => ({
    executor: 'http',
    restartLatency: 0,
    restartFailureRate: 0,
    restartCommand: undefined,
    restartShell: false,
    restartTimeout: 1000,
    restartUrl: 'https://ops.example/restart/{host}',
    restartHeaders: undefined,
    container: '{instance}',
    dockerHost: undefined,
    dockerStopTimeout: 10_000,
    httpMaxCalls: 3,
    ...s,
  });
  const open = (s: Partial<ExecutorSettings>) =>
    openExecutor(settings(s), { logger: capturingLogger().logger, random: Math.random });

  it.each([
    ['ftp://ops.example/{host}', /must be an http:\/\/ or https:\/\/ URL/],
    ['https://{host}.ops.example/restart', /placeholders may only be in the path or query, never in the server part/],
    ['https://user:pw@ops.example/{host}', /must not hold credentials: put them in --restart-headers/],
    ['https://ops.example/{hostname}', /unknown placeholder \{hostname\} in --restart-url/],
    ['https://ops.example/a b/{host}', /must not contain spaces/],
  ])('--restart-url %s is refused', async (url, message) => {
    await expect(open({ restartUrl: url })).rejects.toThrow(ConfigError);
    await expect(open({ restartUrl: url })).rejects.toThrow(message);
  });

  it('headers file: parsed, checked, and no error ever shows a value', async () => {
    expect(parseHeaders('# token\nAuthorization: Bearer abc\r\n\nX-Team:  sre \n', 'h')).toEqual({
      authorization: 'Bearer abc',
      'x-team': 'sre',
    });
    const bad: [string, RegExp][] = [
      ['Authorization Bearer s3cr3t', /h line 1: expected "Name: value"/],
      ['Content-Length: 5', /h line 1: header Content-Length is set by mayhem or by HTTP itself/],
      ['Bad Name: s3cr3t', /h line 1: "Bad Name" is not a valid header name/],
      ['X-A: s3cr3t\x01', /h line 1: the value of X-A holds a control character/],
      ['X-A: 1\nx-a: s3cr3t', /h line 2: header x-a is given twice/],
    ];
    for (const [text, message] of bad) {
      expect(() => parseHeaders(text, 'h')).toThrow(message);
      try {
        parseHeaders(text, 'h');
      } catch (err) {
        expect((err as Error).message).not.toContain('s3cr3t');
      }
    }
    const file = join(dir, 'headers');
    writeFileSync(file, `Authorization: ${SECRET}\nnot a header line\n`);
    const err = await open({ restartHeaders: file }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`invalid --restart-headers: ${file} line 2: expected "Name: value"`);
    await expect(open({ restartHeaders: join(dir, 'missing') })).rejects.toThrow(
      /cannot read --restart-headers .*missing: ENOENT/,
    );
    writeFileSync(file, `Authorization: ${SECRET}\n`);
    const opened = await open({ restartHeaders: file });
    expect(opened.description).toBe(
      `http (POST https://ops.example/restart/{host}, headers authorization from ${file}; timeout 1s; at most 3 calls per message)`,
    );
    expect(opened.description).not.toContain('s3cr3t');
    await opened.close();
  });
});
