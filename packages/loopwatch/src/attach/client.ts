/** The `loopwatch` command's side of the attach protocol: find endpoints, ask one a question. */
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import type { Address, AttachAnswer, AttachRequest } from './protocol.js';
import { socketDir, socketPath } from './socket-dir.js';

export class AttachError extends Error {
  override readonly name = 'AttachError';
}

/** `<pid>` (the socket in the socket directory) or `tcp:HOST:PORT`. */
export function addressOf(target: string, token?: string): Address {
  const m = /^tcp:(.+):(\d+)$/.exec(target);
  if (m) return { kind: 'tcp', host: m[1]!, port: Number(m[2]), token: token ?? process.env['LOOPWATCH_TOKEN'] ?? '' };
  if (!/^\d+$/.test(target))
    throw new AttachError(`loopwatch: ${JSON.stringify(target)} is not a pid (or tcp:HOST:PORT)`);
  return { kind: 'unix', path: socketPath(socketDir(), Number(target)) };
}

/** Sends one request and resolves with the answer (one line). */
export function ask(address: Address, req: AttachRequest, timeoutMs = 5_000): Promise<AttachAnswer> {
  return new Promise((resolve, reject) => {
    const socket = address.kind === 'unix' ? net.connect(address.path) : net.connect(address.port, address.host);
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AttachError(`loopwatch: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () =>
      socket.write(`${JSON.stringify(address.kind === 'tcp' ? { ...req, token: address.token } : req)}\n`),
    );
    socket.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as AttachAnswer);
      } catch {
        reject(new AttachError('loopwatch: the endpoint sent something that is not an answer'));
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const where = address.kind === 'unix' ? address.path : `${address.host}:${address.port}`;
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED')
        reject(
          new AttachError(
            `loopwatch: nothing to attach to at ${where} (is the process running with loopwatch, LOOPWATCH_ATTACH not 0?)`,
          ),
        );
      else if (e.code === 'EACCES')
        reject(new AttachError(`loopwatch: permission denied at ${where} (another user's process?)`));
      else reject(new AttachError(`loopwatch: ${e.message}`));
    });
  });
}

/** Every `<pid>.sock` in the socket directory; stale ones (their process is gone) are removed. */
export function endpoints(): number[] {
  const dir = socketDir();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const n of names) {
    const m = /^(\d+)\.sock$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    if (alive(pid)) pids.push(pid);
    else fs.rmSync(path.join(dir, n), { force: true });
  }
  return pids.sort((a, b) => a - b);
}

/** Whether process `pid` exists (one of another user's counts: EPERM). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
