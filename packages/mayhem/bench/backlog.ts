/**
 * RSS of the whole service over a long run with a publisher far faster than the consumer:
 * `mayhem run --db memory: --publish-rate 0 --restart-latency 1s` (the command of issue 9 item 5,
 * default settings otherwise, so the memory broker holds at most --max-backlog 10,000).
 * Samples VmRSS every few seconds; the figure is the growth over the second half of the run
 * (after warm-up), which is ~0 when memory is bounded.
 *
 *   node packages/mayhem/dist/bench/backlog.js [--seconds 300] [--every 5] [-- extra mayhem flags]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');

export interface BacklogRss {
  seconds: number;
  /** RSS at the first sample after start, MB. */
  startMB: number;
  /** Highest and last sample, MB. */
  peakMB: number;
  lastMB: number;
  /** Median RSS of the first and of the last quarter of the run, MB (the drift between them). */
  secondQuarterMB: number;
  lastQuarterMB: number;
  /** From the service's own summary after SIGTERM. */
  acked: number;
  ackedPerSecond: number;
  leftInBroker: number;
  samples: number[];
}

function rssMB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

export async function measureBacklogRss(
  seconds: number,
  everySeconds = 5,
  extra: string[] = [],
  progress: (text: string) => void = () => undefined,
): Promise<BacklogRss> {
  // Default log level (info), as the issue ran it: the log is read and only its tail kept.
  const child = spawn(
    process.execPath,
    [MAIN, 'run', '--db', 'memory:', '--publish-rate', '0', '--restart-latency', '1s', ...extra],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (out.length > 1 << 18) out = out.slice(-(1 << 17));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const samples: number[] = [];
  const t0 = performance.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, everySeconds * 1000));
    if (child.exitCode !== null) throw new Error(`mayhem exited early (${child.exitCode}): ${out.slice(-500)}`);
    samples.push(rssMB(child.pid as number));
    const elapsed = (performance.now() - t0) / 1000;
    if (samples.length % 6 === 0) progress(`backlog RSS: ${Math.round(elapsed)} s, ${samples.at(-1)} MB`);
    if (elapsed >= seconds) break;
  }
  child.kill('SIGTERM');
  await exited;
  const summary = out
    .split('\n')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    })
    .find((l) => typeof l?.msg === 'string' && l.msg.startsWith('Summary ('));
  const q = Math.max(1, Math.floor(samples.length / 4));
  return {
    seconds,
    startMB: samples[0] ?? NaN,
    peakMB: Math.max(...samples),
    lastMB: samples.at(-1) ?? NaN,
    secondQuarterMB: median(samples.slice(q, 2 * q)),
    lastQuarterMB: median(samples.slice(-q)),
    acked: Number(summary?.acked ?? NaN),
    ackedPerSecond: Number(summary?.ackedPerSecond ?? NaN),
    leftInBroker: Number(summary?.leftInBroker ?? NaN),
    samples,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const flag = (name: string, fallback: string): string => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
  };
  const dash = args.indexOf('--');
  const extra = dash >= 0 ? args.slice(dash + 1) : [];
  const r = await measureBacklogRss(Number(flag('seconds', '300')), Number(flag('every', '5')), extra, (t) =>
    process.stderr.write(`  … ${t}\n`),
  );
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
