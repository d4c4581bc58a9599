/**
 * Runs one of `test/cases/` (programs from real projects, copied from the team's shared cases) as a
 * child process, loaded the two ways users load loopwatch: `node --import loopwatch/register` and
 * `NODE_OPTIONS="--import loopwatch/register"`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { PACKAGE_ROOT, type Line } from './run-fixture.js';

export const CASES_DIR = path.join(PACKAGE_ROOT, 'test', 'cases');
export type Via = 'import' | 'node-options';
export const VIAS: readonly Via[] = ['import', 'node-options'];

export interface CaseRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly reports: Line[];
}

export interface CaseOptions {
  readonly mode?: 'debug' | 'production' | 'plain';
  readonly via?: Via;
  readonly env?: Record<string, string>;
  /** node options placed before the loopwatch import (e.g. another loader). */
  readonly nodeArgs?: readonly string[];
  readonly args?: readonly string[];
  readonly timeoutMs?: number;
}

export async function runCase(file: string, opts: CaseOptions = {}): Promise<CaseRun> {
  const mode = opts.mode ?? 'debug';
  const env: NodeJS.ProcessEnv = { ...process.env, LOOPWATCH_FORMAT: 'json', ...opts.env };
  delete env['NODE_OPTIONS'];
  const nodeArgs = [...(opts.nodeArgs ?? [])];
  if (mode === 'plain') delete env['LOOPWATCH'];
  else {
    env['LOOPWATCH'] = mode;
    if (opts.via === 'node-options') env['NODE_OPTIONS'] = '--import loopwatch/register';
    else nodeArgs.push('--import', 'loopwatch/register');
  }
  const child = spawn(process.execPath, [...nodeArgs, ...(opts.args ?? []), file], { cwd: CASES_DIR, env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c: number | null) => resolve(c));
  });
  clearTimeout(timer);
  // node --test relays a child's stderr as `# ` comment lines on stdout.
  const reports = `${stderr}\n${stdout}`
    .split('\n')
    .map((l) => l.replace(/^# /, ''))
    .filter((l) => l.startsWith('{"kind":'))
    .map((l) => JSON.parse(l) as Line);
  return { code, stdout, stderr, reports };
}

export function ofKind(reports: readonly Line[], kind: string): Line[] {
  return reports.filter((r) => r.kind === kind);
}

/** `file:line` of a report's location, the file as a base name. */
export function siteOf(r: Line | undefined): string {
  const m = /([^/\\]+):(\d+):\d+$/.exec(r?.location ?? '');
  return m ? `${m[1]}:${m[2]}` : `(no location: ${r?.location})`;
}

/** `file:line` of the line marked `[MARKER]` in a case file (cases keep their markers in comments). */
export function caseSite(file: string, marker: string): string {
  const lines = readFileSync(path.join(CASES_DIR, file), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(`[${marker}]`));
  if (i < 0) throw new Error(`marker ${marker} not in ${file}`);
  return `${file}:${i + 1}`;
}
