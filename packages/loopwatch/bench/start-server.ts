/**
 * The node:http service of `http-server.ts` in a fresh process, for the server benches. Modes: plain;
 * production (LOOPWATCH_ATTACH=0); production+attach (the endpoint open, as under register by
 * default); debug (attach open); `+record` on either mode adds LOOPWATCH_RECORD (a file in the temp
 * directory, whose path is returned). The server prints its port on stdout once it listens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(here, 'http-server.js');
const REGISTER = path.join(here, '..', 'src', 'register.js');

let recordings = 0;

export async function startServer(mode: string): Promise<{ child: ChildProcess; port: number; record?: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, LOOPWATCH_SUMMARY: '0' };
  delete env['NODE_OPTIONS'];
  const [base, ...extras] = mode.split('+');
  const args = base === 'plain' ? [SERVER] : ['--import', REGISTER, SERVER];
  if (base !== 'plain') env['LOOPWATCH'] = base;
  env['LOOPWATCH_ATTACH'] = base === 'debug' || extras.includes('attach') ? 'unix' : '0';
  const record = extras.includes('record')
    ? path.join(os.tmpdir(), `loopwatch-bench-${process.pid}-${++recordings}.lwrec`)
    : undefined;
  if (record) env['LOOPWATCH_RECORD'] = record;
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  return { child, port: Number(chunk.toString().trim()), ...(record ? { record } : {}) };
}
