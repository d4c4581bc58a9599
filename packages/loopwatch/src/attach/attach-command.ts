/**
 * `loopwatch attach <pid> [--enable debug|production]` on the terminal: Ctrl-C, SIGTERM and a hang-up
 * stop it the way an error does (the inspector it opened is closed before it exits), and what it saw
 * is printed. Node 20 has a WebSocket client only behind a flag, so there the command runs again in a
 * child with it, and passes the signals on.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { shortLocation } from '../model/paths.js';
import { AttachError } from './client.js';
import { WEBSOCKET_FLAGS } from './cdp.js';
import type { Attached } from './inspect-pid.js';
import type { EnableMode } from './enable-remote.js';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function counted(items: readonly string[]): string {
  const n = new Map<string, number>();
  for (const i of items) n.set(i, (n.get(i) ?? 0) + 1);
  return [...n].map(([k, c]) => `${c} ${k}`).join(', ');
}

export function attachedView(pid: number, a: Attached): string {
  const how = `through node's inspector (SIGUSR1; ${a.shut ? 'the port is closed again' : 'the port is not closed yet'})`;
  let out =
    a.sight.kind === 'idle'
      ? `main thread of ${pid} is idle, ${how}: no JavaScript running; its event loop waits for ${counted(a.sight.waitingFor) || 'nothing'}\n`
      : `main thread of ${pid}, ${how}:\n${a.sight.frames.map((f) => `  at ${f.functionName} (${shortLocation(f)})\n`).join('')}`;
  if (a.enabled) out += `loopwatch ${a.enabled} is on in ${pid} now: loopwatch ps|pstree|top|dump ${pid}\n`;
  else if (a.enableFailed) out += `loopwatch could not be loaded there: ${a.enableFailed}\n`;
  else
    out += `loopwatch is not loaded there: no tasks, busy time or reports (\`loopwatch attach ${pid} --enable debug\` loads it; or start it with --import loopwatch/register).\n`;
  return out;
}

/** Runs the command; the exit code is set on `process`. */
export async function runAttach(pid: number, enable: EnableMode | undefined, argv: readonly string[]): Promise<void> {
  if (WEBSOCKET_FLAGS.length > 0 && typeof WebSocket === 'undefined') return rerunWithWebSocket(argv);
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    const { attachToPid } = await import('./inspect-pid.js');
    const a = await attachToPid(pid, { signal: stop.signal, ...(enable ? { enable } : {}) });
    process.stdout.write(attachedView(pid, a));
    if (a.enableFailed) process.exitCode = 1;
    if (!a.shut) {
      process.stderr.write(
        `loopwatch: the inspector of ${pid} on ${a.door.host}:${a.door.port} did not close in time; loopwatch's keeper (pid ${a.keeperPid}) closes it\n`,
      );
      process.exitCode = 1;
    }
  } catch (e) {
    if (!stop.signal.aborted) throw e;
    process.stderr.write(`${e instanceof AttachError ? e.message : String(e)}\n`);
    process.exitCode = 130;
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}

async function rerunWithWebSocket(argv: readonly string[]): Promise<void> {
  const cli = fileURLToPath(new URL('../cli.js', import.meta.url));
  const child = spawn(process.execPath, [...WEBSOCKET_FLAGS, cli, ...argv], { stdio: 'inherit' });
  // A terminal's Ctrl-C reaches both; `kill <pid>` only this one: pass it on (the child stops once).
  const pass = (s: NodeJS.Signals): void => void child.kill(s);
  for (const s of SIGNALS) process.on(s, pass);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('exit', (c, s) => resolve([c, s])),
  );
  for (const s of SIGNALS) process.off(s, pass);
  process.exitCode = code ?? (signal === 'SIGINT' ? 130 : 1);
}
