/**
 * Reports worth reading: a microtask flood names the function that re-queues itself (not node's
 * runMicrotask); start-up is reported only when unusual or asked for; a turn of node's own code alone
 * blames nothing of node's as if it were a culprit.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { callLineIn } from '../src/source/call-site-source.js';
import { reportMessage } from '../src/sinks/words.js';
import { culpritOf, type Frame } from '../src/model/report.js';
import { markerLine, runFixture } from './run-fixture.js';

const PROD = { LOOPWATCH: 'production', LOOPWATCH_SLOW_MS: '100' };

describe('a microtask flood', () => {
  for (const mode of ['production', 'debug']) {
    it(`names the function that re-queues itself (${mode})`, async () => {
      const run = await runFixture('microtask-flood', { env: { ...PROD, LOOPWATCH: mode } });
      expect(run.code).toBe(0);
      const slow = run.reports.filter((r) => r.kind === 'slow-callback' && (r.durationMs ?? 0) >= 300);
      expect(slow.length).toBeGreaterThanOrEqual(1);
      const r = slow[0]!;
      expect(r.functionName).toBe('requeue');
      expect(r.location).toMatch(/microtask-flood\.ts:\d+:\d+$/);
      expect(r.message).not.toMatch(/ in runMicrotasks?\b/);
      // Its line is within the function (its first line, the clock check, or the re-queue).
      const line = Number(/:(\d+):\d+$/.exec(r.location ?? '')?.[1]);
      const requeueLine = await markerLine('microtask-flood', 'REQUEUE-LINE');
      expect(line).toBeLessThanOrEqual(requeueLine);
      expect(line).toBeGreaterThanOrEqual(requeueLine - 2);
    });
  }
});

describe('start-up', () => {
  it('an ordinary start-up (300 ms of module loading) is not reported', async () => {
    const run = await runFixture('slow-start', { env: PROD, args: ['300'] });
    expect(run.stdout.trim()).toBe('loaded');
    expect(run.reports.filter((r) => r.kind === 'start-up')).toEqual([]);
    // Nor is it a slow callback.
    expect(run.reports.filter((r) => r.kind === 'slow-callback')).toEqual([]);
  });

  it('asked for (LOOPWATCH_KINDS names it): one line', async () => {
    const run = await runFixture('slow-start', {
      env: { ...PROD, LOOPWATCH_KINDS: 'start-up,slow-callback' },
      args: ['300'],
    });
    const startUp = run.reports.filter((r) => r.kind === 'start-up');
    expect(startUp).toHaveLength(1);
    expect(startUp[0]!.message).toMatch(/^loading modules took \d+ ms/);
    expect(startUp[0]!.pid).toBe(run.pid);
  });

  it('an unusual one (over a second) is reported unasked', async () => {
    const run = await runFixture('slow-start', { env: PROD, args: ['1300'] });
    const startUp = run.reports.filter((r) => r.kind === 'start-up');
    expect(startUp).toHaveLength(1);
    expect(startUp[0]!.durationMs).toBeGreaterThanOrEqual(1000);
  });
});

describe('a turn of node’s own code alone', () => {
  it('is said to be node’s, not blamed on its frame as a culprit', () => {
    const m = reportMessage({
      kind: 'slow-callback',
      time: 0,
      durationMs: 233,
      attribution: 'code',
      location: 'node:internal/process/task_queues:74:0',
      functionName: 'processTicksAndRejections',
      stack: [
        {
          functionName: 'processTicksAndRejections',
          file: 'node:internal/process/task_queues',
          line: 74,
          column: 0,
          origin: 'node',
        },
      ],
    });
    expect(m).toBe(
      "Executing a callback took 233 ms in node's own code (processTicksAndRejections, task_queues:74), no frame of the program on the stack",
    );
  });
});

describe('the API the program called', () => {
  it('under node’s frames alone, the node frame right inside the culprit is named, not node’s helper at the bottom', () => {
    const m = reportMessage({
      kind: 'slow-callback',
      time: 0,
      durationMs: 380,
      attribution: 'code',
      location: '/app/hash.js:11:10',
      functionName: 'hashIt',
      stack: [
        { functionName: 'run', file: '', line: 74, column: 0, origin: 'node' },
        { functionName: 'pbkdf2Sync', file: 'node:internal/crypto/pbkdf2', line: 62, column: 20, origin: 'node' },
        { functionName: 'hashIt', file: '/app/hash.js', line: 11, column: 10 },
      ],
    });
    expect(m).toBe('Executing a callback took 380 ms in hashIt (/app/hash.js:11:10), inside pbkdf2Sync (pbkdf2:62)');
  });
});

describe('no user frame: a library’s before node’s', () => {
  it('a slow turn in node’s stream code under a library’s call blames the library frame', () => {
    const stack: Frame[] = [
      { functionName: 'Socket._write', file: 'node:net', line: 1336, column: 0, origin: 'node' },
      { functionName: 'consoleCall', file: '', line: 0, column: 0, origin: 'node' },
      {
        functionName: 'flush',
        file: '/s/node_modules/tape/lib/default_stream.js',
        line: 38,
        column: 16,
        origin: 'library',
      },
    ];
    expect(culpritOf(stack)?.functionName).toBe('flush');
    expect(reportMessage({ kind: 'slow-callback', time: 0, durationMs: 128, attribution: 'code', stack })).toBe(
      'Executing a callback took 128 ms in flush (/s/node_modules/tape/lib/default_stream.js:38:16), inside Socket._write (node:net:1336)',
    );
  });

  it('a stall in node’s frames alone is said to be node’s', () => {
    const m = reportMessage({
      kind: 'stall',
      time: 0,
      durationMs: 1795,
      location: 'node:internal/async_context_frame:21:17',
      functionName: 'activeExchange',
      stack: [
        {
          functionName: 'activeExchange',
          file: 'node:internal/async_context_frame',
          line: 21,
          column: 17,
          origin: 'node',
        },
        { functionName: 'processTimers', file: 'node:internal/timers', line: 618, column: 7, origin: 'node' },
      ],
      stall: { capture: 'paused', detectedAfterMs: 0 },
    });
    expect(m).toBe(
      "event loop stalled for 1795 ms in node's own code (activeExchange, async_context_frame:21; no frame of the program on the stack)",
    );
  });
});

describe('time inside a builtin, from samples alone', () => {
  it('names the line that calls it, not the function’s first line', async () => {
    const run = await runFixture('builtin-call', { plain: true });
    expect(run.stdout.trim()).toBe('done');
    const line = await markerLine('builtin-call', 'PBKDF2-LINE');
    expect(run.stderr).toMatch(new RegExp(`slow-callback: .* in hashIt \\(.*builtin-call\\.ts:${line}:\\d+\\)`));
  });

  it('callLineIn stops at the function’s end and finds calls through a member', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-calls-'));
    const file = path.join(dir, 'a.js');
    fs.writeFileSync(
      file,
      [
        'function a() {',
        '  const x = 1;',
        '  return crypto.pbkdf2Sync(x);',
        '}',
        'function b() {',
        '  JSON.parse(y);',
        '}',
      ].join('\n'),
    );
    expect(callLineIn(file, 1, 'pbkdf2Sync')).toEqual({ line: 3, column: 17 });
    expect(callLineIn(file, 1, 'JSON.parse')).toBeUndefined();
    expect(callLineIn(file, 5, 'JSON.parse')).toEqual({ line: 6, column: 8 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
