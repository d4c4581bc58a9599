/**
 * `command:` probes: run a program (no shell) and compare its exit code. Like the executors, it
 * gets an allow-listed environment: PATH, HOME and LANG, plus the names its `env=` lists; none of
 * mayhem's own (`PGPASSWORD`, `MAYHEM_*` with a broker token) reach it. It runs in a process group
 * of its own, killed whole at its timeout.
 */
import { spawn } from 'node:child_process';
import { BASE_CHILD_ENV, childEnv } from '../executors/child-env.js';
import { describeResourceFault, resourceFaultOf } from '../core/resource-fault.js';
import type { CommandProbeSpec } from './spec.js';
import { oneLine, result, type Probe, type ProbeResult } from './probe.js';

/** What every probe command gets from mayhem's environment (the executors' allow-list: executors/child-env.ts). */
export const PROBE_ENV = BASE_CHILD_ENV;
const OUTPUT_KEPT = 4096;

export function probeEnv(names: readonly string[], from: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return childEnv(from, names);
}

export function commandProbe(spec: CommandProbeSpec, from: NodeJS.ProcessEnv = process.env): Probe {
  const env = probeEnv(spec.env, from);
  const [program, ...args] = spec.argv as [string, ...string[]];
  return {
    spec,
    check(timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
      const started = performance.now();
      return new Promise<ProbeResult>((resolve) => {
        let out = '';
        let stopped: 'timeout' | 'abort' | undefined;
        let child;
        try {
          child = spawn(program, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
        } catch (err) {
          return resolve(result(started, false, `cannot run ${program}: ${startError(err)}`, { unreachable: true }));
        }
        const keep = (chunk: Buffer): void => {
          out = (out + chunk.toString('utf8')).slice(-OUTPUT_KEPT);
        };
        // A spawn that failed (EMFILE and the like) has no pid and no pipes: only its 'error' follows.
        if (child.pid !== undefined) {
          child.stdout.on('data', keep);
          child.stderr.on('data', keep);
        }
        const kill = (why: 'timeout' | 'abort'): void => {
          stopped ??= why;
          try {
            if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
          } catch {
            // gone already
          }
        };
        const timer = setTimeout(() => kill('timeout'), timeoutMs);
        const onAbort = (): void => kill('abort');
        signal.addEventListener('abort', onAbort, { once: true });
        const done = (r: ProbeResult): void => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        };
        child.once('error', (err: NodeJS.ErrnoException) =>
          done(result(started, false, `cannot run ${program}: ${startError(err)}`, { unreachable: true })),
        );
        if (child.pid === undefined) return;
        child.once('close', (code, sig) => {
          const said = lastLine(out);
          if (stopped === 'timeout')
            return done(result(started, false, `${program} ran past ${timeoutMs} ms and was killed`));
          if (stopped === 'abort') return done(result(started, false, `${program} was stopped (shutdown)`));
          if (code === spec.code)
            return done(result(started, true, `${program} exited ${code}${said ? `: ${said}` : ''}`));
          const how = code === null ? `was killed by ${sig ?? 'a signal'}` : `exited ${code} (expected ${spec.code})`;
          done(result(started, false, `${program} ${how}${said ? `: ${said}` : ''}`));
        });
      });
    },
    close: () => Promise.resolve(),
  };
}

function startError(err: unknown): string {
  const code = resourceFaultOf(err);
  if (code !== undefined) return describeResourceFault(code);
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  return lines.length === 0 ? '' : oneLine(lines.at(-1)!).slice(0, 200);
}
