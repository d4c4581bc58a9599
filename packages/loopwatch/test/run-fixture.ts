/** Runs a compiled fixture as a child process, optionally under `--import loopwatch/register`. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { ReportFields, ReportKind } from '../src/model/report.js';

/** A report line as the JSON sink writes it, seen through the fields any kind may have. */
export type Line = ReportFields & {
  readonly kind: ReportKind;
  readonly message: string;
  readonly time: number;
  readonly pid?: number;
  readonly script?: string;
};

/** The package root, from `dist/test/` (tests run compiled) or `test/` (vitest runs sources). */
export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface FixtureRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly reports: Line[];
  readonly pid: number | undefined;
}

export interface FixtureOptions {
  readonly env?: Record<string, string>;
  readonly args?: readonly string[];
  readonly nodeArgs?: readonly string[];
  /** Run without loopwatch at all. */
  readonly plain?: boolean;
}

export function fixturePath(name: string): string {
  return path.join(PACKAGE_ROOT, 'dist', 'test', 'fixtures', `${name}.js`);
}

export function sourcePath(name: string): string {
  return path.join(PACKAGE_ROOT, 'test', 'fixtures', `${name}.ts`);
}

export async function runFixture(name: string, opts: FixtureOptions = {}): Promise<FixtureRun> {
  const nodeArgs = [...(opts.nodeArgs ?? []), ...(opts.plain ? [] : ['--import', 'loopwatch/register'])];
  const env: NodeJS.ProcessEnv = { ...process.env, LOOPWATCH: 'debug', LOOPWATCH_FORMAT: 'json', ...opts.env };
  if (opts.plain) delete env['LOOPWATCH'];
  const child = spawn(process.execPath, [...nodeArgs, fixturePath(name), ...(opts.args ?? [])], {
    cwd: PACKAGE_ROOT,
    env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c: number | null) => resolve(c));
  });
  const reports = stderr
    .split('\n')
    .filter((l) => l.startsWith('{"kind":'))
    .map((l) => JSON.parse(l) as Line);
  return { code, stdout, stderr, reports, pid: child.pid };
}

/** 1-based line of the marker comment in a fixture's TypeScript source. */
export async function markerLine(name: string, marker: string): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const lines = (await readFile(sourcePath(name), 'utf8')).split('\n');
  const i = lines.findIndex((l) => l.includes(`// ${marker}`));
  if (i < 0) throw new Error(`marker ${marker} not in ${name}`);
  return i + 1;
}
