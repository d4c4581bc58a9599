/**
 * `npm run bench`: every figure the issues ask for, side by side in one run. Each measurement runs
 * in its own process (clean heap, its own loopwatch mode); comparable cases alternate and the
 * median of the rounds is printed, so a noisy machine skews both sides of a ratio alike.
 *
 *   npm run bench                      every case below
 *   npm run bench -- --cases process   only some: pipeline (baseline, storage off, SQLite, loopwatch
 *                                      modes), process (the whole `mayhem run` at each --process-n, and
 *                                      the article's Python doing the same work), loop (the whole process
 *                                      at --loop-n under loopwatch production mode: loop lag p99/max and
 *                                      turns ≥ 50 ms, from loopwatch's own reports), rss, latency, backlog
 *   npm run bench -- --rounds 9        more rounds of the pipeline cases (default 5)
 *   npm run bench -- --process-n 100000,1000000 --process-rounds 5    whole-process sizes and rounds
 *   npm run bench -- --cases process --before /tmp/old/packages/mayhem/dist/src/cli/main.js
 *                                      the whole process of another build alternately with this one
 *   npm run bench -- --broker nats     JetStream + PostgreSQL end to end (bench/nats.ts)
 *   npm run bench -- --backlog-seconds 60   shorter RSS-over-time run (case backlog; default 300; 0 skips it)
 *   npm run bench -- --node 26,24,22   the pipeline and whole-process cases under each Node.js line,
 *                                      alternating round by round (lines from the npm registry through
 *                                      scripts/with-node.sh); ratios against the first line named
 *
 * Every case uses random UUIDv4 message ids, as real producers send (and the service's own simulated
 * publisher makes): with sequential ids a B-tree keyed by id only ever appends, which flatters storage.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureBacklogRss } from './backlog.js';
import { resolveNodeLines, type NodeLine } from './node-lines.js';
import { loopTable } from './loop.js';
import { processTable, type ProcessDb } from './process.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};

const USAGE = `usage: npm run bench -- [--cases pipeline,process,loop,rss,latency,backlog] [--rounds 5] [--n 200000]
                      [--process-n 100000,200000,1000000] [--process-rounds 3] [--process-db sqlite,memory]
                      [--python 1|0] [--loop-n 1000000]
                      [--before <other build>/packages/mayhem/dist/src/cli/main.js] [--backlog-seconds 300]
                      [--node 26,24,22]
       npm run bench -- --broker nats [--count 200000] [--instances 1,2] [--max-in-flight 1000] [--storage postgres|memory]`;
const KNOWN = new Set([
  'cases',
  'rounds',
  'n',
  'process-n',
  'process-rounds',
  'process-db',
  'before',
  'backlog-seconds',
  'broker',
  'node',
  'python',
  'loop-n',
]);
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}

if (flag('broker', 'memory') === 'nats') {
  const r = spawnSync(process.execPath, [join(here, 'nats.js'), ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

// A mistyped flag would otherwise run the whole half-hour bench with defaults.
for (let i = 0; i < args.length; i += 2) {
  const name = args[i]!.startsWith('--') ? args[i]!.slice(2) : undefined;
  if (name === undefined || !KNOWN.has(name) || args[i + 1] === undefined) {
    console.error(`bench: unexpected argument ${JSON.stringify(args[i])}\n${USAGE}`);
    process.exit(2);
  }
}

const rounds = Number(flag('rounds', '5'));
// Long enough that a case lasts a couple of seconds: at 100,000 the pipeline is done in under one,
// and start-up and JIT warm-up swung the production ratio between 0.94 and 1.00.
const n = Number(flag('n', '200000'));
const cases = new Set(flag('cases', 'pipeline,process,loop,rss,latency,backlog').split(','));
for (const c of cases)
  if (!['pipeline', 'process', 'loop', 'rss', 'latency', 'backlog'].includes(c))
    throw new Error(`unknown case ${c} (expected pipeline, process, loop, rss, latency, backlog)`);

type Figures = Record<string, number>;

const lines = resolveNodeLines(args.includes('--node') ? flag('node', '') : undefined);

function measure(
  which: string,
  count: number,
  env: NodeJS.ProcessEnv = {},
  nodeArgs: string[] = [],
  line: NodeLine = lines[0]!,
): Figures {
  try {
    return measureOnce(which, count, env, nodeArgs, line.bin);
  } catch (err) {
    process.stderr.write(
      `  ! ${which} ${JSON.stringify(env)} failed: ${(err as Error).message.split('\n')[0] ?? ''}\n`,
    );
    return {};
  }
}

function measureOnce(which: string, count: number, env: NodeJS.ProcessEnv, nodeArgs: string[], bin: string): Figures {
  const out = execFileSync(bin, [...nodeArgs, join(here, 'case.js'), which, String(count)], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  const line = out.trim().split('\n').pop() ?? '{}';
  return JSON.parse(line) as Figures;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

function progress(text: string): void {
  process.stderr.write(`  … ${text}\n`);
}

/** Alternate the named variants `rounds` times; median msg/s of each. */
function alternate(variants: Record<string, () => Figures>): Record<string, number> {
  const seen: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let r = 1; r <= rounds; r++) {
    for (const [name, run] of Object.entries(variants)) {
      progress(`round ${r}/${rounds}: ${name}`);
      seen[name]?.push(run().msgPerSec ?? NaN);
    }
  }
  return Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, median(v)]));
}

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
const ratio = (a: number, b: number): string => (a / b).toFixed(2);

process.stderr.write(
  `mayhem bench: n = ${fmt(n)} messages (UUIDv4 ids), ${rounds} alternating rounds, median shown; cases: ${[...cases].join(', ')}; ${lines.map((l) => l.label).join(', ')}\n`,
);

const rows: [string, string, string][] = [];
const register = ['--import', 'loopwatch/register'];
if (cases.has('pipeline')) {
  const variants: Record<string, () => Figures> = {};
  for (const line of lines) {
    const at = (name: string): string => (lines.length > 1 ? `${name} @ ${line.label}` : name);
    variants[at('baseline')] = () => measure('baseline', n, {}, [], line);
    variants[at('memory')] = () => measure('memory', n, {}, [], line);
    variants[at('sqlite')] = () => measure('sqlite', n, {}, [], line);
    variants[at('production')] = () => measure('memory', n, { LOOPWATCH: 'production' }, register, line);
    variants[at('debug')] = () => measure('memory', n, { LOOPWATCH: 'debug' }, register, line);
  }
  const tp = alternate(variants);
  for (const line of lines) {
    const get = (name: string): number => tp[lines.length > 1 ? `${name} @ ${line.label}` : name] ?? NaN;
    const under = lines.length > 1 ? `, ${line.label}` : '';
    rows.push(
      [`hand-written article pipeline (baseline)${under}`, `${fmt(get('baseline'))} msg/s`, '1.00× baseline'],
      [
        '(a) mayhem pipeline, storage off (memory)',
        `${fmt(get('memory'))} msg/s`,
        `${ratio(get('memory'), get('baseline'))}× baseline (target ≥ 0.50)`,
      ],
      ['(b) mayhem pipeline, SQLite (on its worker)', `${fmt(get('sqlite'))} msg/s`, 'target ≥ 40,000 msg/s'],
      [
        '    under LOOPWATCH=production',
        `${fmt(get('production'))} msg/s`,
        `${ratio(get('production'), get('memory'))}× plain (target ≥ 0.97)`,
      ],
      [
        '    under LOOPWATCH=debug',
        `${fmt(get('debug'))} msg/s`,
        `${ratio(get('debug'), get('memory'))}× plain (target ≥ 0.20)`,
      ],
    );
  }
}
if (cases.has('rss')) {
  progress('RSS with 100,000 in flight');
  const rss = measure('rss', 100_000);
  rows.push([
    '(c) RSS, 100,000 in flight (SQLite on its worker)',
    `${fmt(rss.rssMB ?? NaN)} MB`,
    `peak ${fmt(rss.peakFillingMB ?? NaN)} MB while filling, ${fmt(rss.peakRssMB ?? NaN)} MB when all finish at once (target < 300 MB)`,
  ]);
}
if (cases.has('latency')) {
  progress('latency: 10,000 published as fast as possible, restart latency 10ms, SQLite');
  const lat = [1, 2, 3].map(() => measure('latency', 10_000));
  const latMedian = { p50Ms: median(lat.map((l) => l.p50Ms ?? NaN)), p99Ms: median(lat.map((l) => l.p99Ms ?? NaN)) };
  rows.push([
    'latency publish→ack (SQLite), 10k at max rate, 10ms restarts',
    `p50 ${latMedian.p50Ms} ms, p99 ${latMedian.p99Ms} ms`,
    'target p50 ≤ 20, p99 ≤ 50',
  ]);
}
if (cases.has('backlog')) {
  const backlogSeconds = Number(flag('backlog-seconds', '300'));
  progress(`RSS over ${backlogSeconds} s of mayhem run --db memory: --publish-rate 0 --restart-latency 1s`);
  const backlog = backlogSeconds > 0 ? await measureBacklogRss(backlogSeconds, 5, [], progress) : undefined;
  if (backlog) {
    rows.push([
      `(d) RSS over ${backlog.seconds} s, publish-rate 0, 1s restarts`,
      `${fmt(backlog.lastMB)} MB`,
      `start ${fmt(backlog.startMB)}, peak ${fmt(backlog.peakMB)}, 2nd quarter ${fmt(backlog.secondQuarterMB)} → last quarter ${fmt(backlog.lastQuarterMB)} MB; ${fmt(backlog.ackedPerSecond)} acked/s (target: flat)`,
    ]);
  }
}
let wholeProcess: string[] = [];
if (cases.has('process')) {
  wholeProcess = processTable({
    sizes: flag('process-n', '100000,200000,1000000').split(',').map(Number),
    dbs: flag('process-db', 'sqlite,memory').split(',') as ProcessDb[],
    rounds: Number(flag('process-rounds', '3')),
    progress,
    before: args.includes('--before') ? flag('before', '') : undefined,
    lines,
    python: flag('python', '1') !== '0',
  });
}
let loop: string[] = [];
if (cases.has('loop')) {
  const loopN = Number(flag('loop-n', '1000000'));
  progress(`loop: ${fmt(loopN)} messages under loopwatch production mode`);
  const before = args.includes('--before') ? flag('before', '') : undefined;
  loop = loopTable(loopN, [
    ...(before !== undefined ? [['before', before] as [string, string]] : []),
    ['this', join(here, '..', 'src', 'cli', 'main.js')],
  ]);
}

const w0 = Math.max(0, ...rows.map((r) => r[0].length));
const w1 = Math.max(0, ...rows.map((r) => r[1].length));
process.stdout.write(
  `\n${rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padStart(w1)}  ${c}`).join('\n')}${rows.length > 0 ? '\n' : ''}`,
);
if (wholeProcess.length > 0) process.stdout.write(`${rows.length > 0 ? '\n' : ''}${wholeProcess.join('\n')}\n`);
if (loop.length > 0) process.stdout.write(`\n${loop.join('\n')}\n`);
