import { defineConfig } from 'vitest/config';
import type { Reporter, TestModule } from 'vitest/node';

/**
 * One plain closing line, `vitest: N passed, N failed, N skipped`, after vitest's own summary, so a
 * reader (or CI) that only knows the common "N passed, N failed" shape can tell a run from no run.
 */
class ClosingLine implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of testModules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
      // A file that failed to load has no tests; count it as a failure.
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) failed++;
    }
    process.stdout.write(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', new ClosingLine()],
    // (Project arrays add to the root's, so include/exclude live only in the projects.)
    // Two tiers: `unit` (test/unit/ in each package: in process, no child process, worker or server,
    // enforced by vitest.unit-guard.ts; seconds) and `system` (everything else: the CLI, NATS,
    // PostgreSQL, SQLite's worker, real sockets). `npm test` runs both; `npm run test:unit` the first.
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['packages/*/test/unit/**/*.test.ts'], setupFiles: ['./vitest.unit-guard.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: ['packages/*/test/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**', 'packages/*/test/unit/**'],
        },
      },
    ],
  },
});
