/**
 * The loop stays free: the whole process (`mayhem run --count N` on the embedded defaults: SQLite file,
 * in-memory broker, UUIDv4 ids, publish rate 0, zero-latency restarts) under loopwatch's production
 * mode, reading loopwatch's own figures from its JSON reports on stderr:
 *
 *   - loop lag: every `loop-lag` report (one a second, `monitorEventLoopDelay` with the watchdog's
 *     stalls folded in): the worst second's p99, the median second's p99, and the max;
 *   - turns ≥ 50 ms: every `slow-callback` report (threshold LOOPWATCH_SLOW_MS=50) with the ones it
 *     says it folded in (rate-limited bursts), each attributed by the culprit loopwatch names: mayhem's
 *     own code (a location under packages/mayhem/), other code (Node internals, dependencies), or not
 *     analysed (folded into a rate-limited report, or no JavaScript frame sampled: GC, native code, or a
 *     thread the machine did not run).
 *
 * Start-up (module loading, opening the file) is loopwatch's `start-up` report, not a slow turn.
 *
 *   node packages/mayhem/dist/bench/loop.js [--n 1000000] [--main <a build's dist/src/cli/main.js>]
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const ownMain = join(here, '..', 'src', 'cli', 'main.js');

export interface LoopFigures {
  readonly n: number;
  readonly seconds: number;
  /** p99 of the worst one-second interval, and of the median interval, ms. */
  readonly worstP99Ms: number;
  readonly medianP99Ms: number;
  readonly maxMs: number;
  /** Turns ≥ 50 ms: in mayhem's code, in other code, not analysed. */
  readonly slowMayhem: number;
  readonly slowOther: number;
  readonly slowUnattributed: number;
  /** The mayhem sites named, with their counts. */
  readonly mayhemSites: Readonly<Record<string, number>>;
}

interface Report {
  kind: string;
  lag?: { p99Ms: number; maxMs: number };
  location?: string;
  attribution?: string;
  suppressed?: { count: number };
  burst?: { count: number };
}

/** One whole run under loopwatch production mode; throws when the run fails. */
export function measureLoop(n: number, mainJs = ownMain, nodeBin = process.execPath): LoopFigures {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-loop-'));
  // The register module of the loopwatch next to this build (its own node_modules).
  const register = pathToFileURL(createRequire(mainJs).resolve('loopwatch/register')).href;
  try {
    const t0 = performance.now();
    const r = spawnSync(
      nodeBin,
      [
        '--import',
        register,
        mainJs,
        'run',
        ...['--count', String(n), '--publish-rate', '0', '--restart-latency', '0', '--restart-failure-rate', '0'],
        ...['--log-level', 'silent'],
      ],
      {
        cwd: dir,
        env: {
          ...process.env,
          LOOPWATCH: 'production',
          LOOPWATCH_SLOW_MS: '50',
          LOOPWATCH_MONITOR_MS: '1000',
          LOOPWATCH_FORMAT: 'json',
          LOOPWATCH_ATTACH: '0',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
        encoding: 'utf8',
        maxBuffer: 1 << 28,
      },
    );
    const seconds = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`mayhem run exited ${r.status ?? r.signal}: ${r.stderr.slice(0, 300)}`);
    const reports: Report[] = [];
    for (const line of r.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        reports.push(JSON.parse(line) as Report);
      } catch {
        /* not a report */
      }
    }
    const p99s = reports
      .filter((x) => x.kind === 'loop-lag' && x.lag !== undefined)
      .map((x) => x.lag!.p99Ms)
      .sort((a, b) => a - b);
    const maxMs = Math.max(0, ...reports.filter((x) => x.kind === 'loop-lag').map((x) => x.lag?.maxMs ?? 0));
    let slowMayhem = 0;
    let slowOther = 0;
    let slowUnattributed = 0;
    const mayhemSites: Record<string, number> = {};
    for (const x of reports) {
      if (x.kind !== 'slow-callback') continue;
      slowUnattributed += (x.suppressed?.count ?? 0) + (x.burst?.count ?? 0);
      if (x.burst !== undefined) continue; // a burst report is only its count
      const loc = x.location;
      if (loc === undefined) slowUnattributed++;
      else if (/packages\/mayhem\//.test(loc)) {
        slowMayhem++;
        const site = loc.replace(/^.*packages\/mayhem\//, '');
        mayhemSites[site] = (mayhemSites[site] ?? 0) + 1;
      } else slowOther++;
    }
    return {
      n,
      seconds,
      worstP99Ms: p99s.at(-1) ?? NaN,
      medianP99Ms: p99s[Math.floor(p99s.length / 2)] ?? NaN,
      maxMs,
      slowMayhem,
      slowOther,
      slowUnattributed,
      mayhemSites,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The printed lines for one or two builds. */
export function loopTable(n: number, builds: readonly [string, string][]): string[] {
  const out = [
    `loop: mayhem run --count ${n.toLocaleString('en-US')} (SQLite file, memory broker, publish rate 0) under LOOPWATCH=production, LOOPWATCH_SLOW_MS=50; loopwatch's own figures`,
    '  build   seconds  lag p99 (worst s)  lag p99 (median s)  lag max  turns ≥ 50 ms: mayhem / other / not analysed  mayhem sites',
  ];
  for (const [label, mainJs] of builds) {
    const f = measureLoop(n, mainJs);
    const sites = Object.entries(f.mayhemSites)
      .sort((a, b) => b[1] - a[1])
      .map(([s, c]) => `${c}× ${s}`)
      .join(', ');
    out.push(
      `  ${label.padEnd(6)}  ${f.seconds.toFixed(1).padStart(7)}  ${f.worstP99Ms.toFixed(1).padStart(14)} ms  ${f.medianP99Ms.toFixed(1).padStart(15)} ms  ${f.maxMs.toFixed(0).padStart(4)} ms  ${`${f.slowMayhem} / ${f.slowOther} / ${f.slowUnattributed}`.padStart(40)}  ${sites || '—'}`,
    );
  }
  out.push('  target on a quiet machine: lag p99 ≤ 10 ms, no turn ≥ 50 ms in mayhem code');
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { n: { type: 'string', default: '1000000' }, before: { type: 'string' } },
  });
  const builds: [string, string][] = [
    ...(values.before !== undefined ? [['before', values.before] as [string, string]] : []),
    ['this', ownMain],
  ];
  process.stdout.write(`${loopTable(Number(values.n), builds).join('\n')}\n`);
}
