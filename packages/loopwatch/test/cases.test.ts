/**
 * The cases found on real programs (README of `test/cases/`): each behaves as its line there says, in
 * debug and production mode where the mode applies, loaded with `--import` and through `NODE_OPTIONS`.
 */
import { describe, expect, it } from 'vitest';
import { caseSite, ofKind, runCase, siteOf, VIAS } from './run-case.js';

const MODES = ['debug', 'production'] as const;

describe.concurrent('never change what a program does', () => {
  for (const mode of MODES) {
    for (const via of VIAS) {
      it(`worker.mjs: a file-based worker runs and posts its message (${mode}, ${via})`, async () => {
        const run = await runCase('worker.mjs', { mode, via });
        expect(run.stdout).toBe('worker said 1\n');
        expect(run.code).toBe(0);
        expect(run.stderr).not.toMatch(/ThreadAffinityError|worker error|LoopwatchWarning/);
      });

      it(`pino-transport.cjs: the log line reaches the file, exit 0 (${mode}, ${via})`, async () => {
        const run = await runCase('pino-transport.cjs', { mode, via });
        expect(run.stdout).toMatch(/^ended; file has [1-9]\d* bytes\n$/);
        expect(run.code).toBe(0);
        expect(ofKind(run.reports, 'stall')).toEqual([]);
      });
    }
  }
});

describe('one copy of loopwatch per process', () => {
  for (const mode of MODES) {
    for (const via of VIAS) {
      // stderr is a pipe here, as under every test runner and log shipper: that is what used to split it.
      it(`one-copy.mjs: the program's import is register's instance (${mode}, ${via})`, async () => {
        const run = await runCase('one-copy.mjs', { mode, via });
        expect(run.code).toBe(0);
        expect(run.stdout).toBe(`${mode}\n`);
      });
    }
  }
});

describe('the stall watchdog survives NODE_OPTIONS', () => {
  for (const mode of MODES) {
    for (const via of VIAS) {
      it(`stall.mjs: a stall report names crunch at its loop line (${mode}, ${via})`, async () => {
        const run = await runCase('stall.mjs', { mode, via });
        expect(run.code).toBe(0);
        expect(run.stdout).toBe('crunched\n');
        expect(run.stderr).not.toMatch(/LoopwatchWarning|watchdog stopped/);
        const stalls = ofKind(run.reports, 'stall');
        expect(stalls).toHaveLength(1);
        expect(stalls[0]!.functionName).toBe('crunch');
        expect([caseSite('stall.mjs', 'LOOP-HEAD'), caseSite('stall.mjs', 'LOOP-BODY')]).toContain(siteOf(stalls[0]));
      });
    }
  }
});

describe.concurrent('debug mode beside other promise hooks', () => {
  for (const via of VIAS) {
    for (const als of ['', '1']) {
      const label = `${als ? 'with' : 'without'} AsyncLocalStorage, ${via}`;
      it(`als.mjs: floating save, pending tasks in the dump, destroyed-pending after GC (${label})`, async () => {
        const run = await runCase('als.mjs', { via, nodeArgs: ['--expose-gc'], env: { USE_ALS: als } });
        expect(run.code).toBe(0);
        const floating = ofKind(run.reports, 'never-awaited');
        expect(floating.map(siteOf)).toEqual([caseSite('als.mjs', 'ALS-FLOATING')]);
        expect(floating[0]!.task?.name).toBe('save');
        const dump = ofKind(run.reports, 'task-dump')[0];
        const names = (dump?.tasks ?? []).map((t) => t.name).sort();
        expect(names).toEqual(['hang', 'waitForever']);
        const hang = dump?.tasks?.find((t) => t.name === 'hang');
        // Where it waits: its own await line, then the await line of the task awaiting it.
        expect(hang?.waitingAt.map((f) => `als.mjs:${f.line}`)).toEqual([
          caseSite('als.mjs', 'ALS-HANG'),
          caseSite('als.mjs', 'ALS-WAIT'),
        ]);
        const destroyed = ofKind(run.reports, 'task-destroyed-pending')
          .map((r) => r.task?.name)
          .sort();
        expect(destroyed).toEqual(['hang', 'waitForever']);
      });

      it(`als-unh.mjs: the unhandled error names task fail, started at start line 4 (${label})`, async () => {
        const run = await runCase('als-unh.mjs', { via, env: { USE_ALS: als } });
        expect(run.code).toBe(1);
        const r = ofKind(run.reports, 'unhandled-task-error');
        expect(r).toHaveLength(1);
        expect(r[0]!.task?.name).toBe('fail');
        expect(r[0]!.functionName).toBe('start');
        expect(siteOf(r[0])).toBe(caseSite('als-unh.mjs', 'START-CALL'));
      });
    }

    it(`float.test.mjs: under node --test both floating saves are reported (${via})`, async () => {
      const run = await runCase('float.test.mjs', {
        via,
        nodeArgs: ['--expose-gc'],
        args: ['--test', '--test-reporter=tap'],
      });
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/# pass 3/);
      const sites = ofKind(run.reports, 'never-awaited').map(siteOf).sort();
      expect(sites).toEqual(
        [caseSite('float.test.mjs', 'NAMED-FLOATS'), caseSite('float.test.mjs', 'ARROW-FLOATS')].sort(),
      );
    });
  }
});

describe.concurrent('never-awaited rules a user can predict', () => {
  for (const via of VIAS) {
    it(`float-reject.mjs: a floating call that fails is one unhandled-task-error, no never-awaited (${via})`, async () => {
      const run = await runCase('float-reject.mjs', { via, nodeArgs: ['--expose-gc'] });
      expect(run.code).toBe(0);
      expect(run.stdout).toBe('logged: cannot save 1\ndone\n');
      const site = caseSite('float-reject.mjs', 'FLOAT-REJECTS');
      expect(run.reports.filter((r) => r.kind !== 'summary').map((r) => `${r.kind} ${siteOf(r)}`)).toEqual([
        `unhandled-task-error ${site}`,
      ]);
    });

    it(`fn1.mjs: all five floating saves, in .then, forEach and IIFE arrows too (${via})`, async () => {
      const run = await runCase('fn1.mjs', { via, nodeArgs: ['--expose-gc'] });
      expect(run.code).toBe(0);
      const sites = [...new Set(ofKind(run.reports, 'never-awaited').map(siteOf))].sort();
      expect(sites).toEqual(['FN1-A', 'FN1-B', 'FN1-C', 'FN1-D', 'FN1-E'].map((m) => caseSite('fn1.mjs', m)).sort());
    });

    it(`fp1.mjs: only E is floating; void work() is an intended fire-and-forget (${via})`, async () => {
      const run = await runCase('fp1.mjs', { via, nodeArgs: ['--expose-gc'] });
      expect(run.code).toBe(0);
      expect(ofKind(run.reports, 'never-awaited').map(siteOf)).toEqual([caseSite('fp1.mjs', 'FP1-E')]);
    });

    it(`fp2.mjs: promises returned to listeners, timers, microtasks and forEach are treated alike (${via})`, async () => {
      const run = await runCase('fp2.mjs', { via, nodeArgs: ['--expose-gc'] });
      expect(run.code).toBe(0);
      expect(ofKind(run.reports, 'never-awaited')).toEqual([]);
    });

    it(`top.cjs: a CommonJS top-level main() is the entry-point idiom, as in ESM (${via})`, async () => {
      const run = await runCase('top.cjs', { via, nodeArgs: ['--expose-gc'] });
      expect(run.code).toBe(0);
      expect(ofKind(run.reports, 'never-awaited')).toEqual([]);
    });
  }
});

describe('reports lead to the user line', () => {
  for (const mode of MODES) {
    for (const via of VIAS) {
      it(`lastslow.mjs: the slow spin right before exit is reported (${mode}, ${via})`, async () => {
        const run = await runCase('lastslow.mjs', { mode, via });
        expect(run.code).toBe(0);
        expect(run.stdout).toBe('done\n');
        const slow = ofKind(run.reports, 'slow-callback');
        expect(slow).toHaveLength(1);
        expect(slow[0]!.functionName).toBe('spin');
        expect([caseSite('lastslow.mjs', 'LOOP-HEAD'), caseSite('lastslow.mjs', 'LOOP-BODY')]).toContain(
          siteOf(slow[0]),
        );
        expect(slow[0]!.durationMs).toBeGreaterThanOrEqual(250);
      });

      // The pause lands in the hot loop: its condition (`Date.now()`) or its body.
      it(`where.ts through tsx: the slow callback names spin at its loop line, not 1:1 (${mode}, ${via})`, async () => {
        const run = await runCase('where.ts', { mode, via, nodeArgs: ['--import', 'tsx/esm'] });
        expect(run.code).toBe(0);
        expect(run.stdout).toContain(`${caseSite('where.ts', 'HERE')}:`);
        // The spin is the program's one long callback (300 ms). On a loaded machine a short turn (tsx
        // compiling, a preempted timer) can also pass the 100 ms threshold; it must not be the spin again.
        const all = ofKind(run.reports, 'slow-callback');
        const slow = all.filter((r) => (r.durationMs ?? 0) >= 250);
        expect(slow).toHaveLength(1);
        expect(all.filter((r) => r.functionName === 'spin')).toHaveLength(1);
        expect(slow[0]!.functionName).toBe('spin');
        expect([caseSite('where.ts', 'LOOP-HEAD'), caseSite('where.ts', 'LOOP-BODY')]).toContain(siteOf(slow[0]));
        expect(ofKind(run.reports, 'thread-affinity')).toEqual([]);
      });
    }
  }
});
