/**
 * `--executor command`: restarts a host by running a program, one process per restart.
 *
 * The program and its arguments come from an argv template parsed once at start (see
 * argv-template.ts); `{host}` and `{instance}` are put in as whole arguments, and no shell runs
 * unless `--restart-shell` asks for one — then the command is fixed text and the fields arrive only
 * as environment variables (`MAYHEM_HOST`, `MAYHEM_INSTANCE`, `MAYHEM_MESSAGE_ID`, `MAYHEM_ATTEMPT`,
 * `MAYHEM_DELIVERY`), which every command gets. Nothing else of mayhem's environment reaches it but
 * PATH, HOME, LANG and the names `--restart-env` lists (executors/child-env.ts): mayhem's own holds
 * its secrets.
 *
 * What the pipeline is told (the outcome it resolves with, core/restart-outcome.ts):
 * - exit 0: `restarted`.
 * - exit ≠ 0: `not-restarted` (retried) with the last line of stderr as the reason.
 * - the program could not be started (ENOENT, EACCES): `not-restarted`: it certainly did nothing.
 * - it could not be started for want of a resource (EMFILE, ENFILE, ENOMEM, EAGAIN: descriptors,
 *   memory, processes): `not-restarted` with that `resource`, retried with backoff until the pressure is gone.
 * - a field that starts with '-' (option injection): `rejected`.
 * - aborted (shutdown) before the process started: `cancelled`.
 * - aborted while it ran, or killed by the timeout: the process group is stopped (SIGTERM, then
 *   SIGKILL), and the outcome is `unknown` — it may have done its work — so the restart stays in doubt
 *   and is never run again for that message. Commands should fail fast by themselves (e.g.
 *   `ssh -o ConnectTimeout=5`) so that an unreachable host is an exit ≠ 0, which is retried.
 * - killed by a signal mayhem did not send: unknown, likewise.
 *
 * Each command runs in its own process group (a new session), so the stop reaches what it started
 * too, and a Ctrl-C on mayhem's terminal does not cut a restart short: the shutdown's grace period
 * decides.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { RestartContext, RestartExecutor } from '../core/contracts.js';
import { describeResourceFault, resourceFaultOf } from '../core/resource-fault.js';
import {
  cancelled,
  notRestarted,
  outcomeUnknown,
  rejected,
  RESTARTED,
  type RestartOutcome,
} from '../core/restart-outcome.js';
import { renderArgs, type ArgvTemplate } from './argv-template.js';
import { childEnv } from './child-env.js';
import { instanceOf, seconds } from './outcome.js';

export interface CommandExecutorOptions {
  /** The parsed argv template; or, with `shell`, ignored. */
  readonly template: ArgvTemplate;
  /** `--restart-shell`: run this fixed text with `/bin/sh -c` instead (fields only as env vars). */
  readonly shellCommand?: string | undefined;
  readonly timeoutMs: number;
  /** Between SIGTERM and SIGKILL of a stopped command's process group; default 2000 ms. */
  readonly killGraceMs?: number;
  readonly logger: Logger;
  /** Environment the allow-listed variables are taken from; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** `--restart-env`: names passed on besides PATH, HOME and LANG. */
  readonly passEnv?: readonly string[];
}

// The end of stderr kept for the reason: enough for a last line, bounded however much a command writes.
const STDERR_TAIL = 4096;
const REASON_MAX = 200;
// After the command exits, how long its stderr may stay open (held by something it started in the
// background) before the reason is taken from what arrived.
const STDERR_LINGER_MS = 250;

export class CommandRestartExecutor implements RestartExecutor {
  readonly #o: CommandExecutorOptions;
  readonly #killGraceMs: number;
  readonly #running = new Set<number>();

  constructor(options: CommandExecutorOptions) {
    this.#o = options;
    this.#killGraceMs = options.killGraceMs ?? 2000;
  }

  /** Process ids of commands running now. */
  get running(): readonly number[] {
    return [...this.#running];
  }

  restart(hostname: string, signal: AbortSignal, context?: RestartContext): Promise<RestartOutcome> {
    if (signal.aborted)
      return Promise.resolve(cancelled(`Restart of ${hostname} cancelled before its command started`));
    const instance = instanceOf(hostname, context);
    for (const [name, value] of [
      ['host', hostname],
      ['instance', instance],
    ] as const) {
      // Argument injection: a value that starts with '-' would be read as an option by most programs.
      if (value.startsWith('-'))
        return Promise.resolve(
          rejected(`refusing to pass ${name} ${JSON.stringify(value)} to the restart command: it starts with '-'`),
        );
    }
    const { template, shellCommand } = this.#o;
    const file = shellCommand !== undefined ? '/bin/sh' : template.program;
    const args = shellCommand !== undefined ? ['-c', shellCommand] : renderArgs(template, { host: hostname, instance });
    const env = childEnv(this.#o.env ?? process.env, this.#o.passEnv, {
      MAYHEM_HOST: hostname,
      MAYHEM_INSTANCE: instance,
      // A messageId is any string of up to 200 characters: NUL cannot be in an environment.
      MAYHEM_MESSAGE_ID: (context?.messageId ?? '').replace(/\0/g, '\uFFFD'),
      MAYHEM_ATTEMPT: String(context?.attempt ?? 1),
      MAYHEM_DELIVERY: String(context?.deliveryCount ?? 1),
    });
    return new Promise<RestartOutcome>((resolvePromise) => {
      let child;
      try {
        child = spawn(file, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env });
      } catch (err) {
        resolvePromise(notStarted(hostname, err));
        return;
      }
      const pid = child.pid;
      if (pid === undefined) {
        // The spawn failed (EMFILE, ENOENT, …): no process, no pipes; its 'error' follows on the next tick.
        child.once('error', (err: NodeJS.ErrnoException) => resolvePromise(notStarted(hostname, err)));
        return;
      }
      let tail = Buffer.alloc(0);
      child.stderr.on('data', (chunk: Buffer) => {
        tail =
          tail.length + chunk.length <= STDERR_TAIL
            ? Buffer.concat([tail, chunk])
            : Buffer.concat([tail, chunk]).subarray(-STDERR_TAIL);
      });
      // A stderr that errors (it should not) must not become an uncaught exception.
      child.stderr.on('error', () => undefined);
      let stopping: 'timeout' | 'shutdown' | undefined;
      let killTimer: NodeJS.Timeout | undefined;
      let exited = false;
      const stop = (why: 'timeout' | 'shutdown'): void => {
        if (exited || stopping !== undefined) return;
        stopping = why;
        this.#o.logger.warn(
          { host: hostname, pid, reason: why },
          `Stopping the restart command for ${hostname} (pid ${pid}): ${why === 'timeout' ? `it ran past ${seconds(this.#o.timeoutMs)}` : 'shutdown'}`,
        );
        killGroup(pid, 'SIGTERM');
        killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), this.#killGraceMs);
      };
      const onAbort = (): void => stop('shutdown');
      const timer = setTimeout(() => stop('timeout'), this.#o.timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#running.delete(pid);
      };

      // With a pid the process ran: a later 'error' (a failed kill) says nothing about the restart.
      child.on('error', () => undefined);
      this.#running.add(pid);
      this.#o.logger.debug({ host: hostname, pid }, `Running the restart command for ${hostname} (pid ${pid})`);

      child.once('exit', (code, sig) => {
        exited = true;
        cleanup();
        if (stopping !== undefined) {
          // The leader is gone: whatever it started and left behind in its group goes now.
          clearTimeout(killTimer);
          killGroup(pid, 'SIGKILL');
        }
        const settle = (): void => resolvePromise(this.#ended(hostname, code, sig, stopping, lastLine(tail)));
        // The rest of stderr may still be in the pipe: wait for its end, briefly (a background
        // process the command started may hold it open for good).
        if (child.stderr.readableEnded) return settle();
        const linger = setTimeout(() => {
          child.stderr.destroy();
          settle();
        }, STDERR_LINGER_MS);
        child.stderr.once('close', () => {
          clearTimeout(linger);
          settle();
        });
      });
    });
  }

  /** How the command's end reads: exit 0 restarted; ≠ 0 not; stopped or killed by a signal, unknown. */
  #ended(
    hostname: string,
    code: number | null,
    sig: NodeJS.Signals | null,
    stopping: 'timeout' | 'shutdown' | undefined,
    reason: string,
  ): RestartOutcome {
    const said = reason ? `: ${reason}` : '';
    if (code === 0) return RESTARTED;
    if (stopping === 'shutdown')
      return outcomeUnknown(
        `the restart command for ${hostname} was still running at shutdown and was stopped; it may have restarted the host${said}`,
        true,
      );
    if (stopping === 'timeout')
      return outcomeUnknown(
        `the restart command for ${hostname} ran past ${seconds(this.#o.timeoutMs)} and was killed; it may have restarted the host${said}`,
      );
    if (code !== null) return notRestarted(`the restart command for ${hostname} exited with code ${code}${said}`);
    return outcomeUnknown(
      `the restart command for ${hostname} was killed by ${sig ?? 'a signal'} (not sent by mayhem); it may have restarted the host${said}`,
    );
  }
}

/** The command did not start: for want of a resource (retried until there is), or for good (ENOENT, EACCES). */
function notStarted(hostname: string, err: unknown): RestartOutcome {
  const code = resourceFaultOf(err);
  if (code !== undefined)
    return notRestarted(`could not start the restart command for ${hostname}: ${describeResourceFault(code)}`, code);
  const e = err as NodeJS.ErrnoException;
  return notRestarted(`could not start the restart command for ${hostname}: ${e.code ?? e.message}`);
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // ESRCH: the group is gone already.
  }
}

/** The last non-empty line of `buf`, one line of printable text, at most REASON_MAX characters. */
function lastLine(buf: Buffer): string {
  const lines = buf.toString('utf8').split(/\r?\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    // eslint-disable-next-line no-control-regex
    const line = lines[i]!.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
    if (line !== '') return line.length > REASON_MAX ? `${line.slice(0, REASON_MAX - 1)}…` : line;
  }
  return '';
}

/**
 * Where `program` would be found (for the check at start), or a one-line reason it cannot run.
 * A program with a `/` is taken relative to the working directory; else looked up in PATH.
 */
export function findProgram(
  program: string,
  env: NodeJS.ProcessEnv = process.env,
): { path: string } | { error: string } {
  const usable = (p: string): boolean => {
    try {
      if (!statSync(p).isFile()) return false;
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (program.includes('/')) {
    const path = isAbsolute(program) ? program : resolve(program);
    return usable(path) ? { path } : { error: `${JSON.stringify(program)} is not an executable file` };
  }
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const path = join(dir, program);
    if (usable(path)) return { path };
  }
  return { error: `${JSON.stringify(program)} was not found in PATH` };
}
