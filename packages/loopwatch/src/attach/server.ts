/**
 * The attach endpoint's worker half: the socket server. Each request goes to the main thread; if it
 * does not answer within {@link FRESH_WAIT_MS} it is blocked, and this thread answers itself: how long
 * the loop has been away (from the shared heartbeat), where the main thread is (one inspector pause,
 * as the stall watchdog takes it), and the last fresh answer of that kind with its age.
 */
import net from 'node:net';
import fs from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { errorText } from '../model/error-text.js';
import { isOwnPath } from '../model/paths.js';
import { InspectorClient, quiet } from '../instrument/inspector-client.js';
import { pauseOnce, resolvedFrames, taskAt } from '../instrument/stall-capture.js';
import { nowMs } from '../instrument/watchdog-protocol.js';
import type { AttachAnswer, AttachRequest, BusyInfo, MainReply, MainRequest } from './protocol.js';
import type { AttachThreadData } from './endpoint.js';

/** How long the main thread gets to answer before it counts as blocked. */
export const FRESH_WAIT_MS = 150;
const PAUSE_WAIT_MS = 250;
const MAX_LINE = 64 * 1024;

export class AttachServer {
  readonly #d: AttachThreadData;
  readonly #port: MessagePort;
  readonly #beat: BigInt64Array;
  readonly #client: InspectorClient;
  readonly #waiting = new Map<number, (r: MainReply) => void>();
  readonly #last = new Map<string, { at: number; data: unknown }>();
  #nextId = 1;
  #busyCapture: Promise<BusyInfo> | undefined;

  constructor(
    data: AttachThreadData,
    readonly note: (message: string) => void,
  ) {
    this.#d = data;
    this.#port = data.port;
    this.#beat = new BigInt64Array(data.heartbeat);
    this.#client = new InspectorClient(note);
    this.#port.on('message', (r: MainReply) => {
      this.#waiting.get(r.id)?.(r);
      this.#waiting.delete(r.id);
    });
  }

  listen(): void {
    const server = net.createServer((socket) => this.#serve(socket));
    server.on('error', (e) => this.note(`loopwatch: attach endpoint: ${e.message}`));
    const a = this.#d.address;
    if (a.kind === 'unix') {
      try {
        fs.unlinkSync(a.path);
      } catch {
        // Nothing stale there.
      }
      // Bound under a name nobody looks for, made 0600, then renamed into place: the socket never
      // exists at its public path with the umask's wider mode (a worker thread cannot set the umask).
      const bound = `${a.path}.${process.pid}.${Date.now()}.tmp`;
      server.listen(bound, () => {
        try {
          fs.chmodSync(bound, 0o600);
          fs.renameSync(bound, a.path);
        } catch (e) {
          this.note(`loopwatch: attach endpoint: ${errorText(e)}`);
          server.close();
        }
      });
    } else server.listen(a.port, a.host);
  }

  #serve(socket: net.Socket): void {
    let buf = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) socket.destroy();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void this.#request(line).then((a) => socket.write(`${JSON.stringify(a)}\n`));
      }
    });
  }

  async #request(line: string): Promise<AttachAnswer> {
    const pid = process.pid;
    let req: AttachRequest;
    try {
      req = JSON.parse(line) as AttachRequest;
    } catch {
      return { ok: false, pid, cmd: 'info', error: 'not a JSON request' };
    }
    const a = this.#d.address;
    if (a.kind === 'tcp' && req.token !== a.token) return { ok: false, pid, cmd: req.cmd, error: 'bad token' };
    const reply = await this.#askMain(req);
    if (reply) {
      if (!reply.ok) return { ok: false, pid, cmd: req.cmd, error: reply.error ?? 'failed' };
      this.#last.set(this.#key(req), { at: nowMs(), data: reply.data });
      return { ok: true, pid, cmd: req.cmd, data: reply.data };
    }
    const busy = await this.#busy();
    const last = this.#last.get(this.#key(req));
    return {
      ok: true,
      pid,
      cmd: req.cmd,
      busy,
      ...(last ? { stale: { ageMs: Math.round(nowMs() - last.at), data: last.data } } : {}),
    };
  }

  #key(req: AttachRequest): string {
    return req.cmd === 'where' ? (req.work === undefined ? `where:${req.task}` : `where:w${req.work}`) : req.cmd;
  }

  #askMain(req: AttachRequest): Promise<MainReply | undefined> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(undefined);
      }, FRESH_WAIT_MS);
      this.#waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.#port.postMessage({
        id,
        req: {
          cmd: req.cmd,
          ...(req.task === undefined ? {} : { task: req.task }),
          ...(typeof req.work === 'number' ? { work: req.work } : {}),
        },
      } satisfies MainRequest);
    });
  }

  /** One capture at a time: concurrent clients share it. */
  #busy(): Promise<BusyInfo> {
    this.#busyCapture ??= this.#captureBusy().finally(() => (this.#busyCapture = undefined));
    return this.#busyCapture;
  }

  async #captureBusy(): Promise<BusyInfo> {
    const forMs = Math.max(0, Math.round(nowMs() - Number(Atomics.load(this.#beat, 0)) - this.#d.heartbeatMs));
    if (!this.#client.connect()) return { forMs, stack: [], note: 'the inspector is not available' };
    try {
      const got = await pauseOnce(this.#client, PAUSE_WAIT_MS);
      if (!got) return { forMs, stack: [], note: 'the main thread did not pause (a native call V8 cannot interrupt?)' };
      const task = await taskAt(this.#client, got.frames[0]);
      quiet(this.#client.call('Debugger.resume'));
      const theirs = got.frames.filter((f) => !isOwnPath(this.#client.urlOf(f), this.#d.ownDir));
      const stack = resolvedFrames(this.#client, theirs, 10);
      return { forMs, stack, ...(task ? { task: { id: task.id, name: task.name } } : {}) };
    } catch (e) {
      return { forMs, stack: [], note: errorText(e) };
    } finally {
      await this.#client.call('Debugger.disable').catch(() => undefined);
      this.#client.disconnect();
    }
  }
}
