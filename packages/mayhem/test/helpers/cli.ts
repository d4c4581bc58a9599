/**
 * The real CLI as a child process, for tests (build first: `npx tsc -b packages/mayhem`, which
 * `npm test` does). stdout is not a TTY, so logs are JSON lines, parsed as they arrive.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/src/cli/main.js');

export interface Line {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Summary {
  published: number;
  pulled: number;
  acked: number;
  nacked: number;
  deadLettered: number;
  malformed: number;
  inFlight: number;
  leftInBroker: number;
  reason: string;
}

export interface Cli {
  readonly child: ChildProcess;
  readonly lines: Line[];
  stderr(): string;
  /** Resolves once a log line satisfies `pred` (checked as lines arrive); rejects if the process exits first. */
  waitFor(pred: (lines: Line[]) => boolean): Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Cli {
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', ...env },
  });
  const lines: Line[] = [];
  let partial = '';
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') lines.push(JSON.parse(p) as Line);
    for (const w of watchers) w();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolveExit) => {
    child.on('close', (code, signal) => {
      for (const w of watchers) w();
      resolveExit({ code, signal, at: performance.now() });
    });
  });
  return {
    child,
    lines,
    exited,
    stderr: () => err,
    waitFor: (pred) =>
      new Promise<void>((resolveWait, reject) => {
        const check = (): void => {
          if (pred(lines)) {
            watchers.delete(check);
            resolveWait();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            watchers.delete(check);
            reject(
              new Error(`exited (${child.exitCode ?? child.signalCode}) before the awaited log line; stderr: ${err}`),
            );
          }
        };
        watchers.add(check);
        check();
      }),
  };
}

export const count = (lines: Line[], pred: (l: Line) => boolean): number =>
  lines.reduce((n, l) => n + (pred(l) ? 1 : 0), 0);
export const summaryOf = (lines: Line[]): Summary => {
  const found = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Summary ('));
  expect(found).toHaveLength(1);
  return found[0] as unknown as Summary;
};

export function execCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** Run a short CLI command to its end: its output and exit code (0 or what it exited with). */
export function mayhemCli(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ stdout, stderr, code });
    });
  });
}
