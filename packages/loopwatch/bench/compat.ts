/**
 * `npm run compat`: third-party test suites, run plain and under loopwatch (each mode, each way of
 * loading), must pass and fail exactly the same tests. The suites come from the npm registry at run
 * time (their published tarballs ship their tests) into a cache outside the repository:
 * `$LOOPWATCH_COMPAT_CACHE`, default `~/.cache/loopwatch-compat`. Only the dev dependencies their
 * test files import are installed.
 *
 *   pino     node:test; log transports in worker threads
 *   fastify  node:test; AsyncLocalStorage and async_hooks (a subset of its files)
 *   mpath    mocha
 *   avvio             node:test; fastify's plugin loader (promises, timeouts, reentrant awaits)
 *   sonic-boom        node:test; pino's file sink (fs callbacks, sync and async writes)
 *   light-my-request  node:test; fastify's inject (fake HTTP streams)
 *
 * LOOPWATCH_COMPAT_VARIANTS=debug,production  runs only the variants whose label contains one of these
 * (plain always runs); LOOPWATCH_COMPAT_REPORTS=<dir> writes each run's loopwatch report lines to
 * <dir>/<suite>.<variant>.txt, to read them (useful or noise) rather than only count them.
 *
 * Usage: node packages/loopwatch/dist/bench/compat.js [suite ...]   (exit 1 when counts differ)
 * On another Node line, the suites run under that line's node (process.execPath):
 *   scripts/with-node.sh 26 npm run compat
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Suite {
  readonly name: string;
  readonly version: string;
  /** Test files (globs are not needed: explicit lists, or a directory filter). */
  readonly files: (dir: string) => string[];
  readonly runner: 'node-test' | 'mocha';
  /** Dev dependencies needed besides what the test files import (the runner). */
  readonly extraDev?: readonly string[];
}

const SUITES: readonly Suite[] = [
  {
    name: 'pino',
    version: '10.4.0',
    runner: 'node-test',
    files: (dir) => [...listTests(dir, 'test'), ...listTests(dir, 'test/transport')],
  },
  {
    name: 'fastify',
    version: '5.12.8',
    runner: 'node-test',
    files: () => [
      'test/als.test.js',
      'test/async_hooks.test.js',
      'test/async-await.test.js',
      'test/hooks-async.test.js',
      'test/404s.test.js',
      'test/500s.test.js',
    ],
  },
  {
    name: 'mpath',
    version: '0.9.0',
    runner: 'mocha',
    files: () => ['test/index.js', 'test/stringToParts.js'],
    extraDev: ['mocha'],
  },
  {
    name: 'avvio',
    version: '9.3.1',
    runner: 'node-test',
    // plugin-timeout-await's 'do not load' gives plugins 10 ms: on a loaded machine it fails plain too (1 of 3 runs).
    files: (dir) =>
      [...listTests(dir, 'test'), ...listTests(dir, 'test/lib'), ...listTests(dir, 'test/gh-issues')].filter(
        (f) => f !== 'test/plugin-timeout-await.test.js',
      ),
  },
  {
    name: 'sonic-boom',
    version: '5.0.2',
    runner: 'node-test',
    files: (dir) => listTests(dir, 'test'),
  },
  {
    name: 'light-my-request',
    version: '6.8.1',
    runner: 'node-test',
    files: (dir) => listTests(dir, 'test'),
  },
];

interface Variant {
  readonly label: string;
  readonly env: Record<string, string>;
  readonly nodeArgs: readonly string[];
}

const REGISTER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'register.js');
const VARIANTS: readonly Variant[] = [
  { label: 'plain', env: {}, nodeArgs: [] },
  { label: 'production --import', env: { LOOPWATCH: 'production' }, nodeArgs: ['--import', REGISTER] },
  {
    label: 'production NODE_OPTIONS',
    env: { LOOPWATCH: 'production', NODE_OPTIONS: `--import ${REGISTER}` },
    nodeArgs: [],
  },
  { label: 'debug --import', env: { LOOPWATCH: 'debug' }, nodeArgs: ['--import', REGISTER] },
  { label: 'debug NODE_OPTIONS', env: { LOOPWATCH: 'debug', NODE_OPTIONS: `--import ${REGISTER}` }, nodeArgs: [] },
];

const REPORTS_DIR = process.env['LOOPWATCH_COMPAT_REPORTS'];
const CACHE = process.env['LOOPWATCH_COMPAT_CACHE'] ?? path.join(os.homedir(), '.cache', 'loopwatch-compat');

function listTests(dir: string, sub: string): string[] {
  const d = path.join(dir, sub);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => path.posix.join(sub, f));
}

function run(cmd: string, args: readonly string[], cwd: string): void {
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}:\n${r.stderr}`);
}

/** Every bare specifier the test files (and test helpers beside them) import, as package names. */
function importedPackages(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(p);
      } else if (/\.(c|m)?js$/.test(e.name)) {
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(/(?:require\(|from\s+|import\()\s*['"]([^'"./][^'"]*)['"]/g)) {
          const spec = m[1]!;
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
          if (!spec.startsWith('node:') && !builtinModules.includes(name)) out.add(name);
        }
      }
    }
  };
  walk(path.join(dir, 'test'));
  return out;
}

/** Downloads the suite's tarball and installs what its tests need (once; cached). */
function prepare(s: Suite): string {
  const dir = path.join(CACHE, `${s.name}-${s.version}`);
  const pkgDir = path.join(dir, 'package');
  if (existsSync(path.join(pkgDir, '.compat-ready'))) return pkgDir;
  mkdirSync(dir, { recursive: true });
  process.stdout.write(`compat: fetching ${s.name}@${s.version} into ${dir}\n`);
  run('npm', ['pack', `${s.name}@${s.version}`, '--pack-destination', dir, '--silent'], dir);
  const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`no tarball for ${s.name}`);
  run('tar', ['-xzf', tgz], dir);
  const pkgFile = path.join(pkgDir, 'package.json');
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as {
    name: string;
    devDependencies?: Record<string, string>;
    scripts?: unknown;
  };
  const wanted = new Set([...importedPackages(pkgDir), ...(s.extraDev ?? [])]);
  const dev = Object.fromEntries(
    Object.entries(pkg.devDependencies ?? {}).filter(([n]) => wanted.has(n) && n !== pkg.name),
  );
  // The package's own tests import it by name (`require('pino')`): a link to itself.
  writeFileSync(pkgFile, JSON.stringify({ ...pkg, devDependencies: dev, scripts: {} }, null, 2));
  run(
    'npm',
    ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'],
    pkgDir,
  );
  const self = path.join(pkgDir, 'node_modules', ...pkg.name.split('/'));
  if (!existsSync(self)) spawnSync('ln', ['-s', pkgDir, self]);
  writeFileSync(path.join(pkgDir, '.compat-ready'), '');
  return pkgDir;
}

interface Outcome {
  readonly pass: number;
  readonly fail: number;
  readonly wallMs: number;
  /** loopwatch report lines written (stderr, and node:test's relayed child output). */
  readonly reports: number;
  readonly code: number | null;
  readonly lines: readonly string[];
}

function counts(s: Suite, out: string): { pass: number; fail: number } {
  if (s.runner === 'mocha') {
    return { pass: Number(/(\d+) passing/.exec(out)?.[1] ?? 0), fail: Number(/(\d+) failing/.exec(out)?.[1] ?? 0) };
  }
  return { pass: Number(/^# pass (\d+)/m.exec(out)?.[1] ?? 0), fail: Number(/^# fail (\d+)/m.exec(out)?.[1] ?? 0) };
}

async function runSuite(s: Suite, dir: string, v: Variant): Promise<Outcome> {
  const files = s.files(dir);
  const args =
    s.runner === 'mocha'
      ? [
          ...v.nodeArgs,
          path.join(dir, 'node_modules', 'mocha', 'bin', '_mocha'),
          '--reporter',
          'dot',
          '--timeout',
          '20000',
          ...files,
        ]
      : [...v.nodeArgs, '--test', '--test-reporter=tap', '--test-concurrency=2', ...files];
  const env: NodeJS.ProcessEnv = { ...process.env, ...v.env, LOOPWATCH_SUMMARY: '0' };
  if (!v.env['NODE_OPTIONS']) delete env['NODE_OPTIONS'];
  if (!v.env['LOOPWATCH']) delete env['LOOPWATCH'];
  const start = performance.now();
  const child = spawn(process.execPath, args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15 * 60_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const wallMs = performance.now() - start;
  // A report is its header line and the indented lines under it (node:test relays them with a `# ` prefix).
  const lines: string[] = [];
  let inReport = false;
  for (const l of `${out}\n${err}`.split('\n')) {
    const header = / loopwatch\[\d+/.test(l) && !/ summary: /.test(l);
    if (header) lines.push(l);
    else if (inReport && /^(# )?\s+\S/.test(l)) lines.push(l);
    inReport = header || (inReport && /^(# )?\s+\S/.test(l));
  }
  const reports = lines.filter((l) => / loopwatch\[\d+/.test(l)).length;
  return { ...counts(s, out), wallMs, reports, code, lines };
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const suites = only.length > 0 ? SUITES.filter((s) => only.includes(s.name)) : SUITES;
  const wantedVariants = (process.env['LOOPWATCH_COMPAT_VARIANTS'] ?? '').split(',').filter(Boolean);
  const variants = VARIANTS.filter(
    (v) => v.label === 'plain' || wantedVariants.length === 0 || wantedVariants.some((w) => v.label.includes(w)),
  );
  let differs = false;
  const rows: string[] = [];
  for (const s of suites) {
    const dir = prepare(s);
    const results = new Map<string, Outcome>();
    for (const v of variants) {
      process.stdout.write(`compat: ${s.name} ${v.label} …`);
      const o = await runSuite(s, dir, v);
      results.set(v.label, o);
      if (REPORTS_DIR) {
        mkdirSync(REPORTS_DIR, { recursive: true });
        const file = path.join(REPORTS_DIR, `${s.name}.${v.label.replace(/[^a-z]+/gi, '-')}.txt`);
        writeFileSync(file, o.lines.join('\n') + '\n');
      }
      process.stdout.write(` pass ${o.pass} fail ${o.fail} in ${(o.wallMs / 1000).toFixed(1)} s\n`);
    }
    const plain = results.get('plain')!;
    if (plain.pass === 0) {
      process.stdout.write(
        `compat: ${s.name} ran no test plain (exit ${String(plain.code)}): the suite is not set up right\n`,
      );
      differs = true;
    }
    for (const [label, o] of results) {
      const same = o.pass === plain.pass && o.fail === plain.fail;
      if (!same) differs = true;
      rows.push(
        `node ${process.versions.node.padEnd(8)} ${s.name.padEnd(8)} ${label.padEnd(24)} pass ${String(o.pass).padStart(4)} fail ${String(o.fail).padStart(3)}  ` +
          `wall ${(o.wallMs / 1000).toFixed(1).padStart(6)} s  ×${(o.wallMs / plain.wallMs).toFixed(2)}  reports ${String(o.reports).padStart(4)}  ${same ? 'same as plain' : 'DIFFERS from plain'}`,
      );
    }
  }
  process.stdout.write(`\n${rows.join('\n')}\n`);
  process.exitCode = differs ? 1 : 0;
}

await main();
