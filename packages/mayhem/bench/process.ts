/**
 * The whole process, as users run it: `mayhem run --count N` on the embedded defaults (in-memory
 * broker with the service's own simulated publisher, random UUIDv4 ids; SQLite file `./mayhem.db`
 * in a fresh directory), zero-latency restarts that never fail, logs off. Timed from spawn to exit,
 * so start-up, the growing table and the final close (checkpoint) are all in the figure.
 *
 * Also runnable alone:
 *   node packages/mayhem/dist/bench/process.js [--n 100000,200000,1000000] [--rounds 3] [--db sqlite,memory]
 *        [--before <another build's packages/mayhem/dist/src/cli/main.js>] [--node 22,24,26] [--python]
 *
 * `--before` runs every case on that build too, alternating with this one in each round (A/B pairs in
 * one sitting), and prints both and their ratio. `--node` runs every case under each of those Node.js
 * lines (bench/node-lines.ts), alternating, one row per line. `--python` runs the article's Python
 * (bench/python/mandrill.py, doing the same work) at each size too, in the same rounds.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { OWN_LINE, resolveNodeLines, type NodeLine } from './node-lines.js';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, '..', 'src', 'cli', 'main.js');
const usageHook = pathToFileURL(join(here, 'usage-hook.js')).href;
// Not compiled: the same file from dist/bench and bench/.
const pythonPort = join(here, '..', '..', 'bench', 'python', 'mandrill.py');

/** `sqlite` = the default (no --db flag: `./mayhem.db` in the run's own directory); `memory` = `--db memory:`. */
export type ProcessDb = 'sqlite' | 'memory';

export interface ProcessFigures {
  readonly n: number;
  readonly db: ProcessDb;
  readonly ms: number;
  readonly msgPerSec: number;
  /** Wall time per message, µs (1e6 / msgPerSec). */
  readonly usPerMsg: number;
  /** CPU (user + system, every thread of the process) per message, µs: steadier than wall time on a shared machine. */
  readonly cpuUsPerMsg: number;
  readonly maxRssMB: number;
  /** SQLite only: database and WAL size right after exit. */
  readonly dbMB?: number;
}

/** Run one whole process; throws if it fails or the database does not hold N acked rows. */
export function runProcess(
  n: number,
  db: ProcessDb,
  mainJs = main,
  extraArgs: readonly string[] = [],
  nodeBin = process.execPath,
): ProcessFigures {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-process-'));
  const usageFile = join(dir, 'usage.json');
  try {
    const args = [
      '--import',
      usageHook,
      mainJs,
      'run',
      '--count',
      String(n),
      '--publish-rate',
      '0',
      '--restart-latency',
      '0',
      '--restart-failure-rate',
      '0',
      '--log-level',
      'silent',
      ...(db === 'memory' ? ['--db', 'memory:'] : []),
      ...extraArgs,
    ];
    const t0 = process.hrtime.bigint();
    const r = spawnSync(nodeBin, args, {
      cwd: dir,
      env: { ...process.env, MAYHEM_BENCH_USAGE: usageFile },
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0)
      throw new Error(`mayhem run exited ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n')[0] ?? ''}`);
    const usage = JSON.parse(readFileSync(usageFile, 'utf8')) as { cpuUs: number; maxRssKB: number };
    let dbMB: number | undefined;
    if (db === 'sqlite') {
      const file = join(dir, 'mayhem.db');
      const check = new Database(file, { readonly: true });
      try {
        const acked = check.prepare('SELECT count(*) FROM messages WHERE acked = 1').pluck().get() as number;
        if (acked < n) throw new Error(`only ${acked} of ${n} messages recorded as acked in ${file}`);
        const pages = check.pragma('page_count', { simple: true }) as number;
        const pageSize = check.pragma('page_size', { simple: true }) as number;
        dbMB = Math.round((pages * pageSize) / 2 ** 20);
      } finally {
        check.close();
      }
    }
    const msgPerSec = (n * 1000) / ms;
    return {
      n,
      db,
      ms: Math.round(ms),
      msgPerSec: Math.round(msgPerSec),
      usPerMsg: 1e6 / msgPerSec,
      cpuUsPerMsg: usage.cpuUs / n,
      maxRssMB: Math.round(usage.maxRssKB / 1024),
      ...(dbMB !== undefined ? { dbMB } : {}),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The article's Python service doing the same work (bench/python/mandrill.py: asyncio, SQLite WAL file
 * with group commit, UUIDv4 ids, at most 1,000 in flight); `python3` from PATH or MAYHEM_BENCH_PYTHON.
 */
export function runPython(n: number): ProcessFigures {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-python-'));
  try {
    const file = join(dir, 'mandrill.db');
    const t0 = process.hrtime.bigint();
    const r = spawnSync(
      process.env.MAYHEM_BENCH_PYTHON ?? 'python3',
      [pythonPort, '--count', String(n), '--db', file],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        encoding: 'utf8',
      },
    );
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0)
      throw new Error(`python exited ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      n: number;
      cpu_seconds: number;
      max_rss_kb: number;
    };
    if (out.n !== n) throw new Error(`python acked ${out.n} of ${n}`);
    const check = new Database(file, { readonly: true });
    let dbMB: number;
    try {
      const acked = check.prepare('SELECT count(*) FROM messages WHERE acked = 1').pluck().get() as number;
      if (acked < n) throw new Error(`only ${acked} of ${n} messages recorded as acked by python`);
      dbMB = Math.round(
        ((check.pragma('page_count', { simple: true }) as number) *
          (check.pragma('page_size', { simple: true }) as number)) /
          2 ** 20,
      );
    } finally {
      check.close();
    }
    const msgPerSec = (n * 1000) / ms;
    return {
      n,
      db: 'sqlite',
      ms: Math.round(ms),
      msgPerSec: Math.round(msgPerSec),
      usPerMsg: 1e6 / msgPerSec,
      cpuUsPerMsg: (out.cpu_seconds * 1e6) / n,
      maxRssMB: Math.round(out.max_rss_kb / 1024),
      dbMB,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

export interface ProcessTableOptions {
  readonly sizes: readonly number[];
  readonly dbs: readonly ProcessDb[];
  readonly rounds: number;
  readonly progress: (text: string) => void;
  /** Another build's `main.js` to run alternately with this one ("before"). */
  readonly before?: string | undefined;
  /** Node.js lines to run every case under, alternately (default: the running node). */
  readonly lines?: readonly NodeLine[];
  /** Run the article's Python (bench/python/mandrill.py) at each size too, alternately, on SQLite. */
  readonly python?: boolean;
}

/**
 * Every (db, N) case `rounds` times, alternating (a noisy machine skews every case alike); medians.
 * Returns the printed table's lines.
 */
export function processTable(o: ProcessTableOptions): string[] {
  const lines = o.lines ?? [OWN_LINE];
  const mains: [string, string][] =
    o.before !== undefined
      ? [
          ['before', o.before],
          ['this', main],
        ]
      : [['this', main]];
  // A variant is one build under one line; its label names what differs.
  const builds: [string, string, string][] = lines.flatMap((line) =>
    mains.map(([build, mainJs]): [string, string, string] => [
      lines.length > 1 ? (mains.length > 1 ? `${build} ${line.label}` : line.label) : build,
      mainJs,
      line.bin,
    ]),
  );
  const seen = new Map<string, ProcessFigures[]>();
  for (let r = 1; r <= o.rounds; r++) {
    for (const n of o.sizes) {
      for (const db of o.dbs) {
        for (const [build, mainJs, bin] of builds) {
          const key = `${build}/${db}/${n}`;
          o.progress(
            `whole process round ${r}/${o.rounds}: ${builds.length > 1 ? `${build} build, ` : ''}${db}, n = ${n.toLocaleString('en-US')}`,
          );
          try {
            seen.set(key, [...(seen.get(key) ?? []), runProcess(n, db, mainJs, [], bin)]);
          } catch (err) {
            process.stderr.write(`  ! whole process ${key} failed: ${(err as Error).message}\n`);
          }
        }
      }
      if (o.python === true) {
        o.progress(`whole process round ${r}/${o.rounds}: python, n = ${n.toLocaleString('en-US')}`);
        try {
          seen.set(`python/sqlite/${n}`, [...(seen.get(`python/sqlite/${n}`) ?? []), runPython(n)]);
        } catch (err) {
          process.stderr.write(`  ! python ${n} failed: ${(err as Error).message}\n`);
        }
      }
    }
  }
  const fmt = (x: number, digits = 0): string =>
    Number.isFinite(x)
      ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
      : '—';
  const med = (build: string, db: ProcessDb, n: number, k: keyof ProcessFigures): number =>
    median((seen.get(`${build}/${db}/${n}`) ?? []).map((f) => f[k] as number));
  const smallest = Math.min(...o.sizes);
  const largest = Math.max(...o.sizes);
  const out = [
    `whole process: mayhem run --count N --publish-rate 0 --restart-latency 0 --restart-failure-rate 0 --log-level silent, UUIDv4 ids (medians of ${o.rounds} alternating rounds)`,
  ];
  const head = [
    ...(builds.length > 1 ? ['build'] : []),
    'N',
    ...o.dbs.flatMap((db) =>
      db === 'sqlite'
        ? ['SQLite (default) msg/s', 'µs/msg', 'CPU µs/msg', `vs ${fmt(smallest)}`, 'db MB', 'peak RSS MB']
        : ['--db memory: msg/s', 'µs/msg'],
    ),
  ];
  const rows: string[][] = [head];
  const labels = [...builds.map(([b]) => b), ...(o.python === true ? ['python'] : [])];
  if (o.python === true && builds.length === 1) head.unshift('build');
  for (const build of labels) {
    for (const n of o.sizes) {
      if (build === 'python' && !o.dbs.includes('sqlite')) continue;
      rows.push([
        ...(labels.length > 1 ? [build] : []),
        fmt(n),
        ...o.dbs.flatMap((db) => {
          if (build === 'python' && db !== 'sqlite') return ['', ''];
          const rate = med(build, db, n, 'msgPerSec');
          const us = med(build, db, n, 'usPerMsg');
          if (db !== 'sqlite') return [fmt(rate), fmt(us, 1)];
          return [
            fmt(rate),
            fmt(us, 1),
            fmt(med(build, db, n, 'cpuUsPerMsg'), 1),
            `${(us / med(build, db, smallest, 'usPerMsg')).toFixed(2)}×`,
            fmt(med(build, db, n, 'dbMB')),
            fmt(med(build, db, n, 'maxRssMB')),
          ];
        }),
      ]);
    }
  }
  const widths = head.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  for (const r of rows)
    out.push(
      `  ${r.map((cell, c) => (c === 0 && labels.length > 1 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')}`,
    );
  if (mains.length > 1 && lines.length === 1) {
    for (const db of o.dbs) {
      out.push(
        `  this / before, ${db} msg/s: ${o.sizes.map((n) => `${(med('this', db, n, 'msgPerSec') / med('before', db, n, 'msgPerSec')).toFixed(2)}× at ${fmt(n)}`).join(', ')}`,
      );
    }
  }
  if (lines.length > 1) {
    // Ratios against the first line named (the active LTS, by the README's convention), per build.
    for (const [build] of mains) {
      const label = (line: NodeLine): string => (mains.length > 1 ? `${build} ${line.label}` : line.label);
      const first = lines[0]!;
      for (const db of o.dbs) {
        for (const line of lines.slice(1)) {
          out.push(
            `  ${label(line)} / ${label(first)}, ${db} msg/s: ${o.sizes.map((n) => `${(med(label(line), db, n, 'msgPerSec') / med(label(first), db, n, 'msgPerSec')).toFixed(2)}× at ${fmt(n)}`).join(', ')}`,
          );
        }
      }
    }
  }
  if (o.python === true && o.dbs.includes('sqlite')) {
    for (const [build] of builds)
      out.push(
        `  ${build} / python msg/s: ${o.sizes.map((n) => `${(med(build, 'sqlite', n, 'msgPerSec') / med('python', 'sqlite', n, 'msgPerSec')).toFixed(2)}× at ${fmt(n)}`).join(', ')}; CPU per message: ${o.sizes.map((n) => `${(med('python', 'sqlite', n, 'cpuUsPerMsg') / med(build, 'sqlite', n, 'cpuUsPerMsg')).toFixed(2)}× at ${fmt(n)}`).join(', ')}`,
      );
  }
  if (o.dbs.includes('sqlite')) {
    out.push(
      `  targets: SQLite ≥ 62,000 msg/s and ≥ 5× python at 200,000 and 1,000,000; µs/msg at ${fmt(largest)} within 1.20× of ${fmt(smallest)}; peak RSS at 1,000,000 ≤ 300 MB`,
    );
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '100000,200000,1000000' },
      rounds: { type: 'string', default: '3' },
      db: { type: 'string', default: 'sqlite,memory' },
      before: { type: 'string' },
      node: { type: 'string' },
      python: { type: 'boolean', default: false },
    },
  });
  const lines = processTable({
    sizes: values.n.split(',').map(Number),
    dbs: values.db.split(',') as ProcessDb[],
    rounds: Number(values.rounds),
    progress: (t) => process.stderr.write(`  … ${t}\n`),
    before: values.before,
    lines: resolveNodeLines(values.node),
    python: values.python,
  });
  process.stdout.write(`${lines.join('\n')}\n`);
}
