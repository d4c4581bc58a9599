// Stall watchdog (report kind `stall`): real child processes that block their main thread.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fixturePath, markerLine, PACKAGE_ROOT, runFixture, sourcePath } from './run-fixture.js';
import type { Line } from './run-fixture.js';

const PROD = { LOOPWATCH: 'production', LOOPWATCH_FORMAT: 'json', LOOPWATCH_SLOW_MS: '200' };

function stalls(reports: readonly Line[]): Line[] {
  return reports.filter((r) => r.kind === 'stall');
}

describe('stall watchdog', () => {
  it('from code: names the spinning function at its .ts line, times the stall, stops cleanly', async () => {
    const child = spawn(process.execPath, [fixturePath('stall-direct')], { cwd: PACKAGE_ROOT });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { report?: Line; measured?: number; stopped?: boolean });
    const measured = lines.flatMap((l) => (l.measured === undefined ? [] : [l.measured]));
    const reports = lines.flatMap((l) => (l.report ? [l.report] : []));
    expect(measured).toHaveLength(1);
    expect(measured[0]).toBeGreaterThan(1000);
    expect(reports).toHaveLength(1);
    const r = reports[0]!;
    expect(r.kind).toBe('stall');
    expect(r.functionName).toBe('spinFor');
    expect(r.location).toBe(`${sourcePath('stall-direct')}:${await markerLine('stall-direct', 'SPIN-LINE')}:3`);
    // At least the spin; how close to it the figure is, is a bench check (bench/timing-checks).
    expect(r.durationMs).toBeGreaterThan(1000);
    expect(r.stall?.capture).toBe('paused');
    expect(lines.at(-1)?.stopped).toBe(true);
  });

  it('a stall that never ends is reported while it goes on, by the watchdog thread itself', async () => {
    const child = spawn(process.execPath, ['--import', 'loopwatch/register', fixturePath('stall-forever')], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, ...PROD },
    });
    try {
      let err = '';
      const report = await new Promise<Line>((resolve, reject) => {
        child.stderr.setEncoding('utf8').on('data', (d: string) => {
          err += d;
          for (const line of err.split('\n')) {
            if (!line.startsWith('{')) continue;
            const r = JSON.parse(line) as Line;
            if (r.kind === 'stall') resolve(r);
          }
        });
        child.on('close', (code) =>
          reject(new Error(`fixture exited (${String(code)}) before any stall report: ${err}`)),
        );
      });
      expect(report.stall?.ongoing).toBe(true);
      expect(report.functionName).toBe('spinForever');
      expect(report.location).toMatch(
        new RegExp(`stall-forever\\.ts:${await markerLine('stall-forever', 'FOREVER-LINE')}:\\d+$`),
      );
      expect(report.durationMs).toBeGreaterThanOrEqual(5000);
      expect(report.message).toContain('still blocked');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('the still-blocked report carries pid and script, blames the user frame, not loopwatch’s Atomics.wait wrapper', async () => {
    const run = await runFixture('stall-long-wait', { env: { ...PROD, LOOPWATCH: 'debug', LOOPWATCH_KINDS: 'stall' } });
    expect(run.code).toBe(0);
    const ongoing = stalls(run.reports).find((r) => r.stall?.ongoing === true);
    expect(ongoing).toBeDefined();
    expect(ongoing?.pid).toBe(run.pid);
    expect(ongoing?.script).toMatch(/stall-long-wait\.js$/);
    expect(ongoing?.functionName).toBe('waitLong');
    expect(ongoing?.location).toMatch(
      new RegExp(`stall-long-wait\\.ts:${await markerLine('stall-long-wait', 'LONG-WAIT-LINE')}:\\d+$`),
    );
    expect(ongoing?.message).toContain('still blocked in waitLong');
    expect(ongoing?.stack?.some((f) => /packages\/loopwatch\/(dist\/)?src\//.test(f.file))).toBe(false);
  });

  it('LOOPWATCH_KINDS without stall silences the watchdog thread’s report too', async () => {
    const run = await runFixture('stall-long-wait', { env: { ...PROD, LOOPWATCH_KINDS: 'slow-callback' } });
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe('unblocked');
    expect(stalls(run.reports)).toEqual([]);
    expect(run.stderr).not.toContain('still blocked');
  });

  it('production mode via register: one report, the blocking frame in the user source', async () => {
    const run = await runFixture('stall-cpu', { env: PROD });
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe('true');
    const found = stalls(run.reports);
    expect(found).toHaveLength(1);
    const r = found[0]!;
    expect(r.functionName).toBe('crunchNumbers');
    expect(r.location).toMatch(new RegExp(`stall-cpu\\.ts:${await markerLine('stall-cpu', 'STALL-LINE')}:\\d+$`));
    expect(r.durationMs).toBeGreaterThan(2000);
    expect(r.message).toContain('crunchNumbers');
    expect(r.stack?.some((f) => f.file.endsWith('stall-cpu.ts'))).toBe(true);
  });

  it('debug mode: the stall names the task it belongs to and where it was started', async () => {
    const run = await runFixture('stall-cpu', { env: { ...PROD, LOOPWATCH: 'debug' } });
    expect(run.code).toBe(0);
    const r = stalls(run.reports)[0];
    expect(r?.functionName).toBe('crunchNumbers');
    expect(r?.task?.name).toBe('number-cruncher');
    expect(r?.message).toContain('number-cruncher');
    expect(r?.createdAt?.some((f) => f.file.endsWith('stall-cpu.ts'))).toBe(true);
  });

  it('a native call V8 cannot interrupt (execSync): reports the caller and says so', async () => {
    const run = await runFixture('stall-native', { env: PROD, args: ['exec'] });
    expect(run.code).toBe(0);
    const r = stalls(run.reports)[0];
    expect(r?.stall?.capture).toBe('paused-after-native');
    expect(r?.functionName).toBe('shellOut');
    expect(r?.location).toMatch(new RegExp(`stall-native\\.ts:${await markerLine('stall-native', 'EXEC-LINE')}:\\d+$`));
    expect(r?.message).toMatch(/native call under execSync/);
    expect(r?.durationMs).toBeGreaterThan(1500);
  });

  it('Atomics.wait is interruptible: the exact frame while still blocked', async () => {
    const run = await runFixture('stall-native', { env: PROD, args: ['atomics'] });
    expect(run.code).toBe(0);
    const r = stalls(run.reports)[0];
    expect(r?.functionName).toBe('waitOnAtomics');
    expect(r?.location).toMatch(
      new RegExp(`stall-native\\.ts:${await markerLine('stall-native', 'ATOMICS-LINE')}:\\d+$`),
    );
  });

  it('a well-behaved program gets no stall report and exits on its own', async () => {
    const run = await runFixture('well-behaved', { env: PROD });
    expect(run.code).toBe(0);
    expect(stalls(run.reports)).toEqual([]);
  });
});
