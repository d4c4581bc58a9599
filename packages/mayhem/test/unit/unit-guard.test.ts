/**
 * The unit tier's guard (vitest.unit-guard.ts) holds: in test/unit/ a child process, a server, a UDP
 * socket or a worker thread fails at once with a message that says where such a test belongs, however
 * the module was imported (named ESM import or the CommonJS object).
 */
import { spawn, execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const WHERE = /unit tier: .* belongs outside test\/unit/;

describe('the unit tier', () => {
  it('refuses to start a process, through the named import and the module object alike', () => {
    expect(() => spawn('true')).toThrow(WHERE);
    expect(() => execFile('true')).toThrow(WHERE);
    const cp = require('node:child_process') as typeof import('node:child_process');
    expect(() => cp.fork('x.js')).toThrow(WHERE);
  });

  it('refuses a listening server, a bound UDP socket and a worker thread', () => {
    expect(() => createServer().listen(0)).toThrow(WHERE);
    const socket = createSocket('udp4');
    expect(() => socket.bind(0)).toThrow(WHERE);
    socket.close();
    expect(() => new Worker('x.js')).toThrow(WHERE);
  });
});
