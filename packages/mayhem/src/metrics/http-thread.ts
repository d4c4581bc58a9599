/**
 * The `--http` endpoint's worker thread: it owns the socket, so accepting, parsing and answering
 * requests (and shedding abusive ones) never runs on the service's thread, which only renders a
 * snapshot when asked, at most once per `metricsMaxAgeMs` for /metrics (shared-answer.ts). The
 * thread runs at a lower OS priority (Linux), so on a busy machine the service's work comes first.
 *
 * What it sheds:
 * - connections past `maxConnections`: a new one takes the place of the oldest idle one (no request
 *   being answered: an idle keep-alive, a socket that sent nothing, a slow header), else is closed;
 * - a request whose headers or whole body take longer than `timeoutMs` (408), a connection idle
 *   that long (closed), headers larger than `maxHeaderBytes` (431, the rest of the input read and
 *   dropped so that the answer is not lost to a reset).
 */
import { readlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { Answer, AskKind, FromThread, HttpThreadData, ToThread } from './http-protocol.js';
import { SharedAnswer } from './shared-answer.js';

const port = parentPort!;
const o = workerData as HttpThreadData;
const post = (m: FromThread): void => port.postMessage(m);

lowerPriority(o.niceness);

// ---- questions to the service's thread ----

let lastId = 0;
const waiting = new Map<number, (a: Answer) => void>();
function ask(kind: AskKind): Promise<Answer> {
  const id = ++lastId;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    post({ type: 'ask', id, kind });
  });
}
const ok = (a: Answer): boolean => a.status === 200;
const answers: Record<AskKind, SharedAnswer<Answer>> = {
  metrics: new SharedAnswer(() => ask('metrics'), o.metricsMaxAgeMs, o.metricsMaxAgeMs, ok),
  // Readiness is asked after the request arrived (a shutdown shows at once), at most 100 times a second.
  ready: new SharedAnswer(() => ask('ready'), 0, 10),
  // Alive = the service's thread answered within the last 250 ms.
  live: new SharedAnswer(() => ask('live'), 250, 250),
  report: new SharedAnswer(() => ask('report'), 1000, 1000, ok),
};

// ---- connections: counted, the oldest idle one replaced past the cap ----

/** Open connections in the order they last became idle; `busy` while a request is being answered. */
const conns = new Map<Socket, { busy: boolean }>();
let shed = 0;
let lastShedNote = -Infinity;

function noteShed(): void {
  shed += 1;
  const now = performance.now();
  if (now - lastShedNote < 60_000) return;
  lastShedNote = now;
  post({
    type: 'log',
    level: 'warn',
    msg: `HTTP endpoint at its ${o.maxConnections} connections (--http-max-connections): closing the oldest idle ones (${shed} so far; told at most once a minute)`,
  });
}

const server = createServer({
  maxHeaderSize: o.maxHeaderBytes,
  headersTimeout: o.timeoutMs,
  requestTimeout: o.timeoutMs,
  keepAliveTimeout: Math.min(o.timeoutMs, 5000),
  // How often Node checks the two timeouts above (its default, 30 s, would let slow headers live that long).
  connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(o.timeoutMs / 4))),
});
// A connection with no traffic for this long is closed, whatever state it is in.
server.setTimeout(o.timeoutMs, (socket: Socket) => socket.destroy());

server.on('connection', (socket: Socket) => {
  conns.set(socket, { busy: false });
  socket.once('close', () => conns.delete(socket));
  if (conns.size <= o.maxConnections) return;
  noteShed();
  for (const [other, state] of conns) {
    if (other !== socket && !state.busy) {
      // Out of the count now, not at its 'close' (a later tick): a burst of connections accepted in one
      // turn would otherwise each "replace" the same socket, and the cap would let them all stay.
      conns.delete(other);
      other.destroy();
      return;
    }
  }
  conns.delete(socket);
  socket.destroy();
});

server.on('request', (req: IncomingMessage, res: ServerResponse) => {
  const socket = req.socket;
  const state = conns.get(socket);
  if (state !== undefined) state.busy = true;
  res.once('close', () => {
    const s = conns.get(socket);
    if (s === undefined) return;
    s.busy = false;
    // Idle from now: the last one to be replaced.
    conns.delete(socket);
    conns.set(socket, s);
  });
  void serve(req, res);
});

const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
};

// Sockets answered for a client error: Node's parser reports every later chunk again.
const answered = new WeakSet<Socket>();

server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
  if (answered.has(socket)) return;
  answered.add(socket);
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, text] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request'];
  const body = `${text.toLowerCase()}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
  // Closing with unread input resets the connection, and a reset can take the answer with it: read
  // and drop what the client still sends (a 10 MB header), for a bounded time.
  socket.removeAllListeners('data');
  socket.on('data', () => undefined);
  socket.resume();
  setTimeout(() => socket.destroy(), Math.min(o.timeoutMs, 5000)).unref();
});

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return reply(res, { status: 405, body: 'method not allowed\n' }, { allow: 'GET, HEAD' });
  const kind: AskKind | undefined =
    path === '/metrics'
      ? 'metrics'
      : path === '/readyz'
        ? 'ready'
        : path === '/healthz'
          ? 'live'
          : path === '/'
            ? 'report'
            : undefined;
  if (kind === undefined) return reply(res, { status: 404, body: 'not found: try /metrics, /healthz or /readyz\n' });
  reply(res, await answers[kind].get());
}

function reply(res: ServerResponse, a: Answer, headers: Record<string, string> = {}): void {
  if (res.destroyed) return;
  const body = res.req.method === 'HEAD' ? '' : a.body;
  res.writeHead(a.status, {
    'content-type': a.contentType ?? 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    // Known length, not chunked: one write, and a client knows when the answer is whole.
    'content-length': String(Buffer.byteLength(a.body)),
    ...headers,
  });
  res.end(body);
}

// ---- the service's thread: answers, and the close ----

port.on('message', (m: ToThread) => {
  if (m.type === 'answer') {
    const resolve = waiting.get(m.id);
    waiting.delete(m.id);
    resolve?.(m.answer);
    return;
  }
  // close: open connections get up to a second to finish.
  const force = setTimeout(() => server.closeAllConnections(), 1000);
  server.close(() => {
    clearTimeout(force);
    post({ type: 'closed' });
    port.close();
  });
  server.closeIdleConnections();
});

server.once('error', (err: NodeJS.ErrnoException) => {
  post({ type: 'failed', code: err.code, message: err.message });
  port.close();
});
server.listen({ host: o.host, port: o.port }, () => {
  // A failing connection must not become an uncaught error of the thread.
  server.on('error', (err: Error) =>
    post({ type: 'log', level: 'warn', msg: 'HTTP endpoint error', fields: { err: err.message } }),
  );
  const a = server.address() as AddressInfo;
  post({ type: 'listening', address: a.address, family: a.family, port: a.port });
});

/** Lower this thread's priority by `n` (Linux: the nice value is per thread); elsewhere nothing. */
function lowerPriority(n: number): void {
  if (n <= 0) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!(tid > 0)) return;
    setPriority(tid, Math.min(19, getPriority(tid) + n));
  } catch {
    // Not Linux, or not allowed: the thread runs at the process's priority.
  }
}
