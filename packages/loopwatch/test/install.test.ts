/**
 * What a user gets from the registry: the packed tarball installed into an empty project, then
 * `npx loopwatch` (the bin) and `import 'loopwatch'`. Dependencies come from the npm cache that
 * `npm ci` filled (`--prefer-offline`), so the test needs no network when the cache is warm.
 * And what a contributor gets from a fresh clone: npm links bins before `npm ci` builds dist/, so the
 * bin must be a committed file (checked here cheaply; the full clone + `npm ci` is a manual check).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from './run-fixture.js';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-install-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('in a fresh clone, before the build', () => {
  it('the bin npm links is committed and executable, and says in one line that dist/ is missing', async () => {
    const { bin } = JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    const entry = bin['loopwatch']!;
    const { stdout: staged } = await run('git', ['ls-files', '--stage', entry], { cwd: PACKAGE_ROOT });
    expect(staged).toMatch(/^100755 /);
    // The package as a clone has it before `npm ci` builds: the bin, no dist/.
    const bare = path.join(dir, 'bare');
    fs.mkdirSync(path.join(bare, path.dirname(entry)), { recursive: true });
    fs.writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'loopwatch', type: 'module', bin }));
    fs.copyFileSync(path.join(PACKAGE_ROOT, entry), path.join(bare, entry));
    fs.chmodSync(path.join(bare, entry), 0o755);
    const r = await run(path.join(bare, entry), ['help']).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(r).toMatchObject({
      code: 1,
      stdout: '',
      stderr: 'loopwatch: not built yet (no dist/): run `npm ci` or `npm run build` in the repository first\n',
    });
  });
});

describe('installed from its tarball', () => {
  it('npx loopwatch runs the command, and the library imports', async () => {
    const { stdout: packed } = await run('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: PACKAGE_ROOT });
    const tarball = path.join(dir, packed.trim().split('\n').pop()!);
    const app = path.join(dir, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], {
      cwd: app,
      timeout: 120_000,
    });
    const help = await run('npx', ['--no-install', 'loopwatch', 'help'], { cwd: app });
    expect(help.stdout).toMatch(/^usage: loopwatch list \| ps <pid>/);
    const list = await run('npx', ['--no-install', 'loopwatch', 'list'], {
      cwd: app,
      env: { ...process.env, LOOPWATCH_ATTACH_DIR: path.join(dir, 'none') },
    });
    expect(list.stdout).toBe('no attachable processes\n');
    const lib = await run(
      process.execPath,
      ['--input-type=module', '-e', "import { dumpTasks } from 'loopwatch'; console.log(typeof dumpTasks)"],
      { cwd: app },
    );
    expect(lib.stdout).toBe('function\n');
  });
});
