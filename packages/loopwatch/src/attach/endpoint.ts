/**
 * The attach endpoint's main-thread half: it starts the endpoint's worker (which owns the socket, so
 * it answers while this thread is blocked) and answers the worker's requests from the instruments.
 * The socket is removed at exit; the worker and the port are unref'd (attach never keeps a process
 * alive).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { errorText } from '../model/error-text.js';
import type { Address, AttachRequest, AttachSetting, MainReply, MainRequest } from './protocol.js';

export type { AttachSetting } from './protocol.js';
import { ensureSocketDir, socketDir, socketPath } from './socket-dir.js';

export interface EndpointOptions {
  readonly setting: AttachSetting;
  /** The main thread's heartbeat cell (epoch ms of its last beat). */
  readonly heartbeat: SharedArrayBuffer;
  readonly heartbeatMs: number;
  readonly answer: (req: AttachRequest) => unknown;
  readonly onNote: (message: string) => void;
}

export interface AttachThreadData {
  readonly address: Address;
  readonly heartbeat: SharedArrayBuffer;
  readonly heartbeatMs: number;
  /** loopwatch's own compiled sources, never the culprit of a busy answer. */
  readonly ownDir: string;
  readonly port: MessagePort;
}

/** loopwatch's own compiled sources (dist/src). */
const OWN_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url))) + path.sep;

function threadUrl(): URL {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return new URL(here.replace(/\/src\/attach\/endpoint\.ts$/, '/dist/src/attach-thread.js'));
  return new URL('../attach-thread.js', here);
}

export class AttachEndpoint {
  readonly address: Address;
  readonly #worker: Worker;
  readonly #channel = new MessageChannel();
  readonly #onExit = (): void => this.#removeSocket();

  constructor(readonly opts: EndpointOptions) {
    this.address = addressFor(opts.setting);
    this.#channel.port1.on('message', (m: MainRequest) => this.#handle(m));
    this.#channel.port1.unref();
    const data: AttachThreadData = {
      address: this.address,
      heartbeat: opts.heartbeat,
      heartbeatMs: opts.heartbeatMs,
      ownDir: OWN_DIR,
      port: this.#channel.port2,
    };
    // execArgv []: the worker must not run `--import loopwatch/register` itself.
    this.#worker = new Worker(threadUrl(), {
      workerData: data,
      transferList: [this.#channel.port2],
      execArgv: [],
      stdout: false,
      stderr: false,
    });
    this.#worker.on('message', (m: { note?: string }) => {
      if (m.note) opts.onNote(m.note);
    });
    this.#worker.on('error', (e) => opts.onNote(`loopwatch: attach endpoint stopped: ${e.message}`));
    this.#worker.unref();
    process.on('exit', this.#onExit);
    if (this.address.kind === 'tcp')
      opts.onNote(`loopwatch: attach on tcp:${this.address.host}:${this.address.port}, token ${this.address.token}`);
  }

  #handle(m: MainRequest): void {
    let reply: MainReply;
    try {
      reply = { id: m.id, ok: true, data: this.opts.answer(m.req) };
    } catch (e) {
      reply = { id: m.id, ok: false, error: errorText(e) };
    }
    this.#channel.port1.postMessage(reply);
  }

  #removeSocket(): void {
    if (this.address.kind !== 'unix') return;
    try {
      fs.unlinkSync(this.address.path);
    } catch {
      // Already gone.
    }
  }

  async stop(): Promise<void> {
    process.off('exit', this.#onExit);
    this.#channel.port1.close();
    await this.#worker.terminate();
    this.#removeSocket();
  }
}

function addressFor(setting: AttachSetting): Address {
  if (typeof setting === 'object')
    return { kind: 'tcp', host: setting.tcp.host, port: setting.tcp.port, token: randomBytes(16).toString('hex') };
  return { kind: 'unix', path: socketPath(ensureSocketDir(socketDir()), process.pid) };
}
