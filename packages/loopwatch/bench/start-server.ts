/**
 * The node:http service of `http-server.ts` in a fresh process, for the server benches. Modes: plain;
 * production (LOOPWATCH_ATTACH=0); production+attach (the endpoint open, as under register by
 * default); debug (attach open). The server prints its port on stdout once it listens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SERVER = path.join(here, 'http-server.js');
const REGISTER = path.join(here, '..', 'src', 'register.js');

export async function startServer(mode: string): Promise<{ child: ChildProcess; port: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env, LOOPWATCH_SUMMARY: '0' };
  delete env['NODE_OPTIONS'];
  const args = mode === 'plain' ? [SERVER] : ['--import', REGISTER, SERVER];
  if (mode !== 'plain') env['LOOPWATCH'] = mode.replace('+attach', '');
  env['LOOPWATCH_ATTACH'] = mode === 'production' ? '0' : 'unix';
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  return { child, port: Number(chunk.toString().trim()) };
}
