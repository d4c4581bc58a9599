/**
 * One Chrome DevTools Protocol session with another process's node inspector, over the global
 * WebSocket (node ≥ 22; 20 has it behind --experimental-websocket, see {@link WEBSOCKET_FLAGS}): calls
 * with a timeout, and the session's end (node drops every session when its inspector closes).
 */
import http from 'node:http';
import net from 'node:net';
import { AttachError } from './client.js';
import type { Listening } from './proc.js';

interface Message {
  readonly id?: number;
  readonly result?: unknown;
  readonly error?: { message: string };
}

/** Node flags a process that speaks CDP needs on this line (node < 22 has WebSocket only behind a flag). */
export const WEBSOCKET_FLAGS: readonly string[] =
  Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-websocket', '--no-warnings'] : [];

/**
 * The WebSocket URL of the node inspector at host:port, or undefined when nothing (or no inspector)
 * answers. node:http rather than fetch: it is loaded already, where fetch's first call costs ~30 ms.
 */
export function inspectorAt(at: Listening, timeoutMs = 500): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: at.host, port: at.port, path: '/json/list', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('error', () => resolve(undefined));
      res.on('end', () => {
        try {
          const url = (JSON.parse(body) as { webSocketDebuggerUrl?: unknown }[])[0]?.webSocketDebuggerUrl;
          resolve(typeof url === 'string' ? url : undefined);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    // Whatever ended it (a body cut off after the headers included), it settles.
    req.on('close', () => resolve(undefined));
  });
}

/**
 * Whether something accepts connections at host:port (a refused connect costs next to nothing). A
 * connect that neither succeeds nor fails within `timeoutMs` has a listener behind it with a full
 * backlog: that is something too.
 */
export function answers(at: Listening, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(at.port, at.host);
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class Cdp {
  #id = 0;
  readonly #waiting = new Map<number, (m: Message) => void>();
  /** Settles when the session ends, whoever ended it. */
  readonly closed: Promise<void>;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.addEventListener('close', () => resolve()));
    ws.addEventListener('message', (e: MessageEvent) => {
      let m: Message;
      try {
        m = JSON.parse(String(e.data)) as Message;
      } catch {
        return; // not CDP: nothing of ours
      }
      if (m.id === undefined) return;
      this.#waiting.get(m.id)?.(m);
      this.#waiting.delete(m.id);
    });
  }

  static open(url: string, timeoutMs = 1_000): Promise<Cdp> {
    const ws = new WebSocket(url);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.close();
        reject(new AttachError('loopwatch: the inspector accepted no session in time'));
      }, timeoutMs);
      ws.addEventListener('open', () => {
        clearTimeout(timer);
        resolve(new Cdp(ws));
      });
      ws.addEventListener('error', () => {
        clearTimeout(timer);
        reject(new AttachError('loopwatch: could not connect to the inspector'));
      });
    });
  }

  /** Sends without waiting for an answer (one that closes the session never gets one). */
  send(method: string, params: object = {}): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ id: ++this.#id, method, params }));
  }

  call<T>(method: string, params: object = {}, timeoutMs = 1_000): Promise<T> {
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new AttachError(`loopwatch: ${method} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(id, (m) => {
        clearTimeout(timer);
        if (m.error) reject(new AttachError(`loopwatch: ${method}: ${m.error.message}`));
        else resolve(m.result as T);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** `Runtime.evaluate` of an expression whose value is JSON-able, with node's command-line API (`require`). */
  async evaluate<T>(expression: string, timeoutMs = 1_000): Promise<T> {
    const r = await this.call<{
      result: { value?: unknown };
      exceptionDetails?: { exception?: { description?: string } };
    }>('Runtime.evaluate', { expression, returnByValue: true, includeCommandLineAPI: true }, timeoutMs);
    if (r.exceptionDetails)
      throw new AttachError(`loopwatch: ${(r.exceptionDetails.exception?.description ?? 'failed').split('\n')[0]}`);
    return r.result.value as T;
  }

  close(): void {
    this.ws.close();
  }
}
