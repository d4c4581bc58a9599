/**
 * The unit tier's rule, enforced: a test under `test/unit/` runs in this process, so starting a
 * process, a worker thread or a server fails it with a message that says where it belongs (the rest of
 * `test/`, run by `npm test`). Loaded as a setup file of the `unit` project (vitest.config.ts).
 */
import { createRequire, syncBuiltinESMExports } from 'node:module';

const require = createRequire(import.meta.url);
const refuse = (what: string) => (): never => {
  throw new Error(`unit tier: ${what} — a test that needs it belongs outside test/unit (npm test runs it)`);
};

const childProcess = require('node:child_process') as Record<string, unknown>;
for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'])
  childProcess[name] = refuse(`child_process.${name}() starts a process`);
const net = require('node:net') as typeof import('node:net');
net.Server.prototype.listen = refuse('a server listens');
const dgram = require('node:dgram') as typeof import('node:dgram');
dgram.Socket.prototype.bind = refuse('a UDP socket binds');
const threads = require('node:worker_threads') as Record<string, unknown>;
const refuseWorker = refuse('a worker thread starts');
// A class, so `new Worker(…)` reaches the message (an arrow function would fail as "not a constructor").
threads.Worker = class {
  constructor() {
    refuseWorker();
  }
};
// A builtin's ESM face made before this ran would keep the old functions: bring it up to date. (Made
// after, it reads the patched ones anyway; removing this line fails no test today.)
syncBuiltinESMExports();
