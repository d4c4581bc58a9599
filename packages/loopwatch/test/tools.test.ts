/**
 * Only the user's processes: under `NODE_OPTIONS="--import loopwatch/register"` every node process of a
 * command line loads register, and package managers and wrappers must stay plain however they are
 * reached, while the user's script they start is instrumented. Each process records, from a second
 * `--import` placed after register, its main script and the mode register left it in.
 *
 * npm, npx, corepack and tsx are the real ones on the machine (the repository's tsx). yarn, pnpm and
 * nodemon are not installed here: they are stand-ins with the real packages' entry layout (package.json
 * name and bin, the file the global `bin/` symlink points to), which is all register looks at.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from './run-fixture.js';

const REPO_ROOT = path.resolve(PACKAGE_ROOT, '..', '..');
const DIST = path.join(PACKAGE_ROOT, 'dist', 'src');
const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'lw-tools-')));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const probe = path.join(root, 'probe.mjs');
fs.writeFileSync(
  probe,
  `import { activeMode } from ${JSON.stringify(pathToFileURL(path.join(DIST, 'lifecycle.js')).href)};
import { appendFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
if (isMainThread) appendFileSync(process.env.LW_PROBE_LOG, JSON.stringify({ script: process.argv[1] ?? '-', mode: activeMode() }) + '\\n');
`,
);
const app = path.join(root, 'app');
fs.mkdirSync(app);
fs.writeFileSync(
  path.join(app, 'package.json'),
  JSON.stringify({ name: 'app', private: true, scripts: { hello: 'node app.mjs' } }),
);
fs.writeFileSync(path.join(app, 'app.mjs'), "console.log('app ran');\n");
fs.writeFileSync(path.join(app, 'app.ts'), "const said: string = 'app ran';\nconsole.log(said);\n");

interface Seen {
  readonly script: string;
  readonly mode: string;
}
let runs = 0;

/** Runs `file args` with register and the probe in NODE_OPTIONS; the processes that loaded them, in start order. */
async function seen(file: string, args: readonly string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const log = path.join(root, `seen-${++runs}.jsonl`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_OPTIONS: `--import ${pathToFileURL(path.join(DIST, 'register.js')).href} --import ${pathToFileURL(probe).href}`,
    LOOPWATCH: 'production',
    LOOPWATCH_ATTACH: '0',
    LOOPWATCH_SUMMARY: '0',
    LW_PROBE_LOG: log,
    npm_config_update_notifier: 'false',
    ...opts.env,
  };
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { cwd: opts.cwd ?? app, env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });
  const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
  return { ...result, seen: lines.map((l) => JSON.parse(l) as Seen) };
}

function which(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    const f = path.join(dir, name);
    if (fs.existsSync(f)) return f;
  }
  return undefined;
}

const npm = which('npm');
const npx = which('npx');
const corepack = which('corepack');
const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');

describe.concurrent('package managers, as the machine has them', () => {
  it.skipIf(!npm)('npm through its bin/npm symlink: plain', async () => {
    expect(fs.lstatSync(npm!).isSymbolicLink()).toBe(true);
    const r = await seen(npm!, ['--version']);
    expect(r.code).toBe(0);
    expect(r.seen).toEqual([{ script: npm, mode: 'off' }]);
  });

  it.skipIf(!npm)('npm run: npm plain, the script it runs instrumented', async () => {
    const r = await seen(npm!, ['run', '--silent', 'hello']);
    expect(r.stdout).toBe('app ran\n');
    expect(r.seen).toEqual([
      { script: npm, mode: 'off' },
      { script: path.join(app, 'app.mjs'), mode: 'production' },
    ]);
  });

  it.skipIf(!npx)('npx tsx: npx and tsx’s CLI parent plain, the child running the script instrumented', async () => {
    const r = await seen(npx!, ['--no-install', 'tsx', path.join(app, 'app.ts')], { cwd: PACKAGE_ROOT });
    expect(r.stdout).toBe('app ran\n');
    expect(r.seen).toEqual([
      { script: npx, mode: 'off' },
      { script: expect.stringMatching(/node_modules[\\/]\.bin[\\/]tsx$/) as unknown, mode: 'off' },
      { script: path.join(app, 'app.ts'), mode: 'production' },
    ]);
  });

  it.skipIf(!npm)('npm exec -- tsx: the same', async () => {
    const r = await seen(npm!, ['exec', '--', 'tsx', path.join(app, 'app.ts')], { cwd: PACKAGE_ROOT });
    expect(r.stdout).toBe('app ran\n');
    expect(r.seen.map((s) => s.mode)).toEqual(['off', 'off', 'production']);
    expect(r.seen[2]!.script).toBe(path.join(app, 'app.ts'));
  });

  it.skipIf(!corepack)('corepack, and the yarn / pnpm shims `corepack enable` links', async () => {
    expect((await seen(corepack!, ['--version'])).seen).toEqual([{ script: corepack, mode: 'off' }]);
    const shims = path.join(root, 'corepack-shims');
    fs.mkdirSync(shims);
    await seen(corepack!, ['enable', '--install-directory', shims, 'yarn', 'pnpm']);
    // No network here: the shim fails to fetch the package manager, after register has decided.
    const env = { COREPACK_ENABLE_NETWORK: '0', COREPACK_HOME: path.join(root, 'corepack-home') };
    for (const shim of ['yarn', 'pnpm', 'pnpx', 'yarnpkg']) {
      expect(fs.realpathSync(path.join(shims, shim))).toMatch(/corepack[\\/]dist[\\/]\w+\.js$/);
      expect((await seen(path.join(shims, shim), ['--version'], { env })).seen).toEqual([
        { script: path.join(shims, shim), mode: 'off' },
      ]);
    }
  });
});

describe('tsx without npm', () => {
  it('node_modules/.bin/tsx app.ts: the wrapper plain, its child instrumented', async () => {
    const r = await seen(tsx, [path.join(app, 'app.ts')]);
    expect(r.stdout).toBe('app ran\n');
    expect(r.seen).toEqual([
      { script: tsx, mode: 'off' },
      { script: path.join(app, 'app.ts'), mode: 'production' },
    ]);
  });
});

// A stand-in entry: `run <file>` starts the file in a child, as the real tools start a script.
const STAND_IN = `#!/usr/bin/env node
const { spawnSync } = require('node:child_process');
const [cmd, file] = process.argv.slice(2);
if (cmd === 'run') process.exitCode = spawnSync(process.execPath, [file], { stdio: 'inherit' }).status ?? 1;
`;

/** `<prefix>/lib/node_modules/<pkg>` with its package.json and entry, and `<prefix>/bin/<name>` → entry. */
function installStandIn(
  prefix: string,
  pkg: string,
  bins: Record<string, string>,
  dir?: string,
): Record<string, string> {
  const pkgDir = dir ?? path.join(prefix, 'lib', 'node_modules', pkg);
  fs.mkdirSync(pkgDir, { recursive: true });
  fs.writeFileSync(path.join(pkgDir, 'package.json'), JSON.stringify({ name: pkg, version: '9.9.9', bin: bins }));
  const links: Record<string, string> = {};
  for (const [name, entry] of Object.entries(bins)) {
    const target = path.join(pkgDir, entry);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, STAND_IN, { mode: 0o755 });
    fs.mkdirSync(path.join(prefix, 'bin'), { recursive: true });
    links[name] = path.join(prefix, 'bin', name);
    fs.symlinkSync(path.relative(path.join(prefix, 'bin'), target), links[name]);
  }
  return links;
}

describe.concurrent('stand-ins for the tools this machine lacks (the real entry layouts)', () => {
  const prefix = path.join(root, 'global');
  const cases: [string, Record<string, string>][] = [
    ['pnpm', { pnpm: 'bin/pnpm.cjs', pnpx: 'bin/pnpx.cjs' }],
    ['yarn', { yarn: 'bin/yarn.js', yarnpkg: 'bin/yarn.js' }],
    ['nodemon', { nodemon: 'bin/nodemon.js' }],
  ];
  for (const [pkg, bins] of cases) {
    it(`${pkg} through its global bin symlink: plain; \`run app.mjs\` instrumented`, async () => {
      const links = installStandIn(prefix, pkg, bins);
      for (const link of Object.values(links)) {
        const r = await seen(link, ['run', path.join(app, 'app.mjs')]);
        expect(r.stdout).toBe('app ran\n');
        expect(r.seen).toEqual([
          { script: link, mode: 'off' },
          { script: path.join(app, 'app.mjs'), mode: 'production' },
        ]);
      }
    });
  }

  it('pnpm from corepack’s cache (COREPACK_HOME/v1/pnpm/<version>/): plain, by its package.json', async () => {
    const home = path.join(root, 'cp-home');
    const dir = path.join(home, 'v1', 'pnpm', '9.15.0');
    installStandIn(path.join(root, 'cp-bin'), 'pnpm', { pnpm: 'bin/pnpm.cjs' }, dir);
    const r = await seen(process.execPath, [path.join(dir, 'bin', 'pnpm.cjs'), 'run', path.join(app, 'app.mjs')]);
    expect(r.seen.map((s) => s.mode)).toEqual(['off', 'production']);
  });

  it('a yarn release checked into the project (.yarn/releases/yarn-4.5.3.cjs): plain', async () => {
    const release = path.join(app, '.yarn', 'releases', 'yarn-4.5.3.cjs');
    fs.mkdirSync(path.dirname(release), { recursive: true });
    fs.writeFileSync(release, STAND_IN);
    const r = await seen(process.execPath, [release, 'run', path.join(app, 'app.mjs')]);
    expect(r.seen).toEqual([
      { script: release, mode: 'off' },
      { script: path.join(app, 'app.mjs'), mode: 'production' },
    ]);
  });

  it('a script that merely lives inside a tool’s package, or is named like one, is the user’s', async () => {
    const inside = path.join(prefix, 'lib', 'node_modules', 'nodemon-user', 'server.js');
    fs.mkdirSync(path.dirname(inside), { recursive: true });
    fs.writeFileSync(path.join(path.dirname(inside), 'package.json'), JSON.stringify({ name: 'nodemon-user' }));
    fs.writeFileSync(inside, '');
    const mine = path.join(app, 'npm-cli.js');
    fs.writeFileSync(mine, '');
    expect((await seen(process.execPath, [inside])).seen).toEqual([{ script: inside, mode: 'production' }]);
    expect((await seen(process.execPath, [mine])).seen).toEqual([{ script: mine, mode: 'production' }]);
  });
});
