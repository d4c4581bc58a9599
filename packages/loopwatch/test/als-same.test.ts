/**
 * The same reports with an AsyncLocalStorage active as without, on whichever Node line runs the suite (CI runs it
 * on each): the fixture is run directly and inside `als.run(…)` (fixtures/in-als.ts), and the facts compared.
 */
import { describe, expect, it } from 'vitest';
import { fixturePath, runFixture, type Line } from './run-fixture.js';

function facts(reports: Line[], kind: string): unknown[] {
  return reports
    .filter((r) => r.kind === kind)
    .map((r) => ({
      kind: r.kind,
      task: r.task?.name,
      functionName: r.functionName,
      location: r.location,
      createdAt: r.createdAt?.[0]?.functionName,
      // The wrapper's own tasks (its `als.run` callback, the import) are not the fixture's.
      waiting: r.tasks
        ?.filter((t) => ![...t.createdAt, ...t.waitingAt].some((f) => f.file.includes('in-als')))
        .map((t) => [t.name, t.waitingAt.map((f) => f.line)])
        .sort(),
    }));
}

const CASES = [
  { fixture: 'fire-and-forget', kind: 'unhandled-task-error', nodeArgs: [] },
  { fixture: 'lost-wakeup', kind: 'task-destroyed-pending', nodeArgs: ['--expose-gc'] },
  { fixture: 'floating', kind: 'never-awaited', nodeArgs: ['--expose-gc'] },
  { fixture: 'named-tasks', kind: 'task-dump', nodeArgs: [] },
] as const;

describe(`the same reports with an AsyncLocalStorage active (node ${process.versions.node})`, () => {
  for (const c of CASES) {
    it(`${c.kind} (${c.fixture})`, async () => {
      const direct = await runFixture(c.fixture, { nodeArgs: c.nodeArgs });
      const inAls = await runFixture('in-als', { nodeArgs: c.nodeArgs, args: [fixturePath(c.fixture)] });
      expect(inAls.code).toBe(direct.code);
      expect(inAls.stdout).toBe(direct.stdout);
      const want = facts(direct.reports, c.kind);
      expect(want.length).toBeGreaterThan(0);
      expect(facts(inAls.reports, c.kind)).toEqual(want);
    });
  }
});
