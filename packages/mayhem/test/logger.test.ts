/**
 * The service's logger as a process sees it (built code, child processes, stdout a file or a
 * pipe): JSON lines reach the file within a second and a fatal line before anything can kill the
 * process; pretty output cannot be forged by untrusted text; no credentials reach any line.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeControls } from '../src/cli/logger.js';

const LOGGER = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/src/cli/logger.js');
const dir = mkdtempSync(join(tmpdir(), 'mayhem-logger-'));
beforeAll(() => {
  if (!existsSync(LOGGER)) throw new Error(`${LOGGER} is missing: build first (npx tsc -b packages/mayhem)`);
});
const children = new Set<ReturnType<typeof spawn>>();
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Run `body` (ESM, with `createLogger` imported) with stdout going to a file; returns the child and the file. */
function script(
  name: string,
  body: string,
): { child: ReturnType<typeof spawn>; out: string; exited: Promise<NodeJS.Signals | number | null> } {
  const out = join(dir, `${name}.log`);
  const fd = openSync(out, 'w');
  const code = `import { createLogger } from ${JSON.stringify(pathToFileURL(LOGGER).href)};\n${body}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', fd, 'pipe'] });
  children.add(child);
  closeSync(fd);
  const exited = new Promise<NodeJS.Signals | number | null>((r) => child.on('exit', (c, s) => r(s ?? c)));
  return { child, out, exited };
}

const lines = (path: string): string[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '');

async function waitForLines(path: string, n: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (lines(path).length >= n) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 25));
  }
  return Infinity;
}

describe('JSON logs reach the file promptly', () => {
  it('two short lines are in the file within about a second, and survive a SIGKILL', async () => {
    const { child, out, exited } = script(
      'prompt',
      `
      const { logger } = createLogger('info', 'json');
      logger.error({ messageId: 'm1' }, 'Dead-lettered cattle-a');
      logger.error({ messageId: 'm2' }, 'Dead-lettered cattle-b');
      setInterval(() => undefined, 1000);
      process.stderr.write('logged\\n');
    `,
    );
    await new Promise<void>((r) => child.stderr?.once('data', () => r()));
    const waited = await waitForLines(out, 2, 3000);
    child.kill('SIGKILL');
    await exited;
    // The flush timer runs every second; allow for a busy machine.
    expect(waited).toBeLessThan(2500);
    expect(lines(out).map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual([
      'Dead-lettered cattle-a',
      'Dead-lettered cattle-b',
    ]);
  });

  it('a fatal line is written before the call returns (a SIGKILL right after it loses nothing)', async () => {
    const { out, exited } = script(
      'fatal',
      `
      const { logger } = createLogger('info', 'json');
      logger.info('before');
      logger.fatal({ err: 'boom' }, 'Unexpected error outside message handlers: boom');
      process.kill(process.pid, 'SIGKILL');
    `,
    );
    expect(await exited).toBe('SIGKILL');
    expect(lines(out).map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual([
      'before',
      'Unexpected error outside message handlers: boom',
    ]);
  });
});

describe('pretty output cannot be forged', () => {
  it('escapes control characters and line separators in the message', () => {
    expect(escapeControls('Could not save m1\nINFO: Done. Acked cattle-x')).toBe(
      'Could not save m1\\nINFO: Done. Acked cattle-x',
    );
    expect(escapeControls('a\r\tb\u001b[31mc\u2028d\u0085e')).toBe('a\\r\\tb\\u001b[31mc\\u2028d\\u0085e');
    expect(escapeControls('plain ünïcödé')).toBe('plain ünïcödé');
  });

  it('a message id with a newline quoted in an error stays on one line', async () => {
    const { out, exited } = script(
      'pretty',
      `
      const { logger, flush } = createLogger('info', 'pretty');
      const id = 'evil\\n[12:00:00.000] INFO: Done. Acked cattle-fake';
      logger.warn({ messageId: id }, 'Could not save ' + id + '; retrying');
      await flush();
    `,
    );
    await exited;
    const text = readFileSync(out, 'utf8');
    expect(text.split('\n').filter((l) => l !== '')).toHaveLength(1);
    expect(text).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: Could not save /);
    expect(text).toContain('Could not save evil\\n[12:00:00.000] INFO: Done. Acked cattle-fake; retrying');
  });
});

describe('no credentials in any log line', () => {
  it.each(['json', 'pretty'])('%s: URLs in the message and in fields are redacted', async (format) => {
    const { out, exited } = script(
      `redact-${format}`,
      `
      const { logger, flush } = createLogger('info', '${format}');
      logger.info({ db: 'postgres://app:PgS3cret@db:5432/x', broker: 'nats://admin:NatsS3cret@h:4222,nats://TokS3cret@h2:4222' }, 'Mayhem Mandrill is consuming');
      logger.error('cannot connect to NATS at nats://user:NatsS3cret@127.0.0.1:1: CONNECTION_REFUSED');
      logger.warn({ err: 'postgres://x@h/db?password=PgS3cret' }, 'lost');
      await flush();
    `,
    );
    await exited;
    const text = readFileSync(out, 'utf8');
    // One entry per call (pretty prints an `err` field on an indented line of its own).
    expect(text.split('\n').filter((l) => /^[[{]/.test(l))).toHaveLength(3);
    for (const secret of ['PgS3cret', 'NatsS3cret', 'TokS3cret']) expect(text).not.toContain(secret);
    expect(text).toContain('postgres://app:***@db:5432/x');
    expect(text).toContain('nats://***@h2:4222');
  });
});
