/**
 * Each buggy fixture runs as a child under `--import loopwatch/register` with LOOPWATCH=debug and json
 * output; the report must name the kind, the function and the line in the fixture's .ts source.
 */
import { describe, expect, it } from 'vitest';
import { fixturePath, markerLine, runFixture, sourcePath } from './run-fixture.js';
import type { Line } from './run-fixture.js';

function only(reports: Line[], kind: string): Line {
  const found = reports.filter((r) => r.kind === kind);
  expect(found, `${kind} reports in ${JSON.stringify(reports)}`).toHaveLength(1);
  return found[0]!;
}

function lineOf(location: string | undefined): { file: string; line: number } {
  const m = /^(.*):(\d+):(\d+)$/.exec(location ?? '');
  expect(m, `location ${location}`).not.toBeNull();
  return { file: m![1]!, line: Number(m![2]) };
}

describe('debug mode reports, from child processes', () => {
  it('slow-callback names the task, the function and the line where the time went', async () => {
    const run = await runFixture('slow-handler');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('1\n');
    const r = only(run.reports, 'slow-callback');
    expect(r.durationMs).toBeGreaterThanOrEqual(250);
    expect(r.task?.name).toBe('handleRequest');
    expect(r.functionName).toBe('crunch');
    expect(lineOf(r.location)).toEqual({
      file: sourcePath('slow-handler'),
      line: await markerLine('slow-handler', 'CULPRIT'),
    });
    expect(r.message).toMatch(/took \d+ ms/);
  });

  it('names the .ts line even when debug mode was turned on from code after the module had loaded', async () => {
    const run = await runFixture('late-enable', { plain: true });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('done\n');
    const r = only(run.reports, 'slow-callback');
    expect(r.functionName).toBe('crunch');
    expect(lineOf(r.location)).toEqual({
      file: sourcePath('late-enable'),
      line: await markerLine('late-enable', 'CULPRIT'),
    });
  });

  it('unhandled-task-error gives where the failing task was started, and keeps node’s exit code', async () => {
    const run = await runFixture('fire-and-forget');
    expect(run.code).toBe(1);
    const r = only(run.reports, 'unhandled-task-error');
    expect(r.task?.name).toBe('failingJob');
    expect(r.functionName).toBe('startJobs');
    expect(lineOf(r.location)).toEqual({
      file: sourcePath('fire-and-forget'),
      line: await markerLine('fire-and-forget', 'STARTED'),
    });
    expect(r.error?.message).toBe('could not restart host');
    expect(r.createdAt?.[0]?.functionName).toBe('startJobs');
  });

  it('unhandled-task-error is reported even when the program listens for unhandledRejection, which still runs', async () => {
    const run = await runFixture('fire-and-forget', { args: ['--own-handler'] });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('program handled: Error: could not restart host\n');
    expect(only(run.reports, 'unhandled-task-error').task?.name).toBe('failingJob');
  });

  it('task-destroyed-pending names the lost task and where it waited', async () => {
    const run = await runFixture('lost-wakeup', { nodeArgs: ['--expose-gc'] });
    expect(run.code).toBe(0);
    const r = only(run.reports, 'task-destroyed-pending');
    expect(r.task?.name).toBe('waitForWakeup');
    expect(r.functionName).toBe('waitForWakeup');
    expect(lineOf(r.location).line).toBe(await markerLine('lost-wakeup', 'WAITS'));
    expect(r.createdAt?.[0]?.functionName).toBe('start');
  });

  it('never-awaited names the dropped call and its call site', async () => {
    const run = await runFixture('floating', { nodeArgs: ['--expose-gc'] });
    expect(run.code).toBe(0);
    const r = only(run.reports, 'never-awaited');
    expect(r.task?.name).toBe('saveRecord');
    expect(r.functionName).toBe('handle');
    expect(lineOf(r.location)).toEqual({
      file: sourcePath('floating'),
      line: await markerLine('floating', 'FLOATING'),
    });
    // Besides it, only the summary at exit (which counts it).
    expect(run.reports.filter((x) => x.kind !== 'never-awaited').map((x) => x.kind)).toEqual(['summary']);
    expect(run.reports.at(-1)?.summary?.byKind).toEqual({ 'never-awaited': 1 });
  });

  it('thread-affinity reports a sync read after start-up, once per call site, not the start-up read', async () => {
    const run = await runFixture('sync-io');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('true\n');
    const r = only(run.reports, 'thread-affinity');
    expect(r.message).toContain('fs.readFileSync');
    expect(r.functionName).toBe('readConfig');
    expect(lineOf(r.location)).toEqual({ file: sourcePath('sync-io'), line: await markerLine('sync-io', 'BLOCKS') });
  });

  it('a read-only blocking built-in is left alone: the program runs, and the summary names it once', async () => {
    const run = await runFixture('sync-io', { nodeArgs: ['--import', fixturePath('readonly-builtin')] });
    expect(run.stderr).not.toMatch(/TypeError|Cannot assign/);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('true\n');
    // Everything else is still watched.
    expect(only(run.reports, 'thread-affinity').message).toContain('fs.readFileSync');
    const summary = only(run.reports, 'summary');
    expect(summary.summary?.notWatched).toContain('fs.lockedSync');
    expect(run.stderr.split('fs.lockedSync').length - 1).toBe(1);
  });

  it('an aborted task says who aborted it: the abort() line through AbortSignal.any, or where the timeout was made', async () => {
    const run = await runFixture('abort-chain');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('done\n');
    const errors = run.reports.filter((r) => r.kind === 'unhandled-task-error');
    const poll = errors.find((r) => r.task?.name === 'poll');
    const backend = errors.find((r) => r.task?.name === 'callBackend');
    const file = sourcePath('abort-chain');
    expect(poll?.abortedBy?.reason).toBe('SIGTERM received');
    expect(poll?.abortedBy?.at[0]).toMatch(
      new RegExp(`^${file}:${await markerLine('abort-chain', 'ABORT-CALL')}:\\d+$`),
    );
    expect(poll?.abortedBy?.via?.[0]).toMatch(
      new RegExp(`^AbortSignal\\.any at .*abort-chain\\.ts:${await markerLine('abort-chain', 'ANY-MADE')}:\\d+$`),
    );
    expect(backend?.abortedBy?.reason).toBe('AbortSignal.timeout(20) fired');
    expect(backend?.abortedBy?.at[0]).toMatch(
      new RegExp(`abort-chain\\.ts:${await markerLine('abort-chain', 'TIMEOUT-MADE')}:\\d+$`),
    );
  });

  it('task-dump shows named tasks as a tree with where each waits (from code and from SIGUSR2)', async () => {
    const run = await runFixture('named-tasks');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('done\n');
    const dumps = run.reports.filter((r) => r.kind === 'task-dump');
    expect(dumps).toHaveLength(2);
    const pollerLine = await markerLine('named-tasks', 'POLLER-WAITS');
    const flusherLine = await markerLine('named-tasks', 'FLUSHER-WAITS');
    for (const dump of dumps) {
      const tasks = dump.tasks ?? [];
      const poller = tasks.find((t) => t.name === 'poller');
      const flusher = tasks.find((t) => t.name === 'flusher');
      const inner = tasks.find((t) => t.name === 'waitForFlush');
      expect(poller?.waitingAt.map((f) => f.line)).toContain(pollerLine);
      expect(inner?.waitingAt[0]).toMatchObject({
        functionName: 'waitForFlush',
        line: flusherLine,
        file: sourcePath('named-tasks'),
      });
      expect(inner?.parentId).toBe(flusher?.id);
      expect(flusher?.parentId).toBeNull();
      expect(poller?.ageMs).toBeGreaterThanOrEqual(0);
    }
  });

  it('text format prints the same facts readably', async () => {
    const run = await runFixture('fire-and-forget', { env: { LOOPWATCH_FORMAT: 'text' } });
    // Every report names its process and script (node --test runs many processes at once).
    expect(run.stderr).toMatch(
      /loopwatch\[\d+ dist\/test\/fixtures\/fire-and-forget\.js\] unhandled-task-error: Task failingJob failed/,
    );
    expect(run.stderr).toMatch(
      /summary: 1 unhandled-task-error in this process\n {2}1 × unhandled-task-error startJobs \(/,
    );
    expect(run.stderr).toMatch(/source_traceback: task created at/);
    const started = await markerLine('fire-and-forget', 'STARTED');
    expect(run.stderr).toMatch(new RegExp(`at startJobs \\(test/fixtures/fire-and-forget\\.ts:${started}:\\d+\\)`));
  });
});

describe('no false reports', () => {
  it('a well-behaved program prints and returns the same with and without loopwatch, and nothing is reported', async () => {
    const plain = await runFixture('well-behaved', { plain: true, nodeArgs: ['--expose-gc'] });
    const debug = await runFixture('well-behaved', { nodeArgs: ['--expose-gc'] });
    const prod = await runFixture('well-behaved', { nodeArgs: ['--expose-gc'], env: { LOOPWATCH: 'production' } });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe('total=279\n');
    for (const run of [debug, prod]) {
      expect(run.stdout).toBe(plain.stdout);
      expect(run.code).toBe(plain.code);
      expect(run.stderr).toBe('');
    }
  });

  it('a bad env value is one clear line on stderr, and the program still runs', async () => {
    const run = await runFixture('well-behaved', { env: { LOOPWATCH_SLOW_MS: 'fast' }, nodeArgs: ['--expose-gc'] });
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('total=279\n');
    expect(run.stderr).toBe(
      'loopwatch: LOOPWATCH_SLOW_MS="fast" is not a positive number of milliseconds; loopwatch stays off\n',
    );
  });
});

describe('task dumps on real shapes', () => {
  it('parents, await lines, groups at scale and await cycles', async () => {
    const run = await runFixture('await-graph');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('done\n');
    const [grouped, full] = run.reports.filter((r) => r.kind === 'task-dump');
    const line = (m: string): Promise<number> => markerLine('await-graph', m);
    const all = full?.tasks ?? [];
    const byName = (n: string) => all.filter((t) => t.name === n);
    const service = byName('runService')[0];
    // The consumer was started by runService, after the publisher had already awaited.
    expect(byName('consumer')[0]?.parentId).toBe(service?.id);
    expect(byName('publisher')[0]?.parentId).toBe(service?.id);
    // Waiting at: the suspended function's await line, then the await line of the task awaiting it.
    expect(byName('consumer')[0]?.waitingAt.map((f) => f.line)).toEqual([await line('CONSUMER-WAITS')]);
    expect(byName('handle')).toHaveLength(50);
    expect(byName('handle')[0]?.waitingAt[0]?.line).toBe(await line('HANDLE-WAITS'));
    // Folded: one group line for the 50 identical handlers.
    const g = grouped?.groups?.find((x) => x.name === 'handle');
    expect(g?.count).toBe(50);
    expect(g?.waitingAt[0]?.line).toBe(await line('HANDLE-WAITS'));
    expect(grouped?.tasks?.some((t) => t.name === 'handle')).toBe(false);
    expect(grouped?.message).toMatch(/50 × handle/);
    // The deadlock: alpha awaits beta's task, beta awaits alpha's.
    const names = (grouped?.cycles ?? []).map((c) => c.map((t) => t.name).join(' → '));
    expect(names.length).toBe(1);
    expect(['alpha → beta → alpha', 'beta → alpha → beta']).toContain(names[0]);
    expect(grouped?.message).toMatch(/await-graph contains cycles/);
    expect(byName('alpha')[0]?.waitingAt[0]?.line).toBe(await line('ALPHA-WAITS'));
  });
});

describe('reports lead to the user line', () => {
  for (const mode of ['debug', 'production']) {
    it(`a slow turn inside a library names the user's call, library frames marked (${mode})`, async () => {
      const run = await runFixture('slow-library', { env: { LOOPWATCH: mode } });
      expect(run.code).toBe(0);
      const r = only(run.reports, 'slow-callback');
      expect(r.functionName).toBe('openDb');
      expect(r.attribution).toBe('code');
      const stack = r.stack ?? [];
      expect(stack[0]).toMatchObject({ functionName: 'busy', origin: 'library' });
      const user = stack.find((f) => f.origin === undefined);
      expect(user?.functionName).toBe('openDb');
      // The pause of the running turn gives the call line, not the function's first line.
      expect(user?.line).toBe(await markerLine('slow-library', 'USER-CALL'));
      expect(stack.some((f) => f.functionName === 'start')).toBe(true);
      expect(r.message).toMatch(/ in openDb \(.*slow-library\.ts:\d+:\d+\), inside busy/);
      expect(r.pid).toBeGreaterThan(0);
    });
  }
});
