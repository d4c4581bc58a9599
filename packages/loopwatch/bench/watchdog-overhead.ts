/**
 * Cost of production mode's watchdog + loop-lag monitor on a promise-heavy workload: plain and watched
 * rounds alternate in one process (so CPU frequency and JIT state hit both alike); prints medians and
 * the ratio. `node packages/loopwatch/dist/bench/watchdog-overhead.js [rounds] [ops per round]`
 */
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises';
import { startStallWatchdog } from '../src/instrument/watchdog.js';
import { monitorLoopLag } from '../src/instrument/loop-lag.js';
import type { Report } from '../src/model/report.js';

const ROUNDS = Number(process.argv[2] ?? 8);
const OPS = Number(process.argv[3] ?? 400_000);
/** Which part to measure: all (default), watchdog, no-inspector (watchdog without frame capture), lag, none (A/A: the bench's own bias). */
const VARIANT = process.env['BENCH_VARIANT'] ?? 'all';

async function leaf(i: number): Promise<number> {
  await Promise.resolve();
  return i & 1;
}

async function handle(i: number): Promise<number> {
  let s = 0;
  for (let k = 0; k < 4; k++) s += await leaf(i + k);
  return s;
}

/** OPS async invocations of `handle` in batches of 1000, one loop turn between batches. */
async function workload(): Promise<number> {
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  for (let done = 0; done < OPS; done += 1000) {
    const batch: Promise<number>[] = [];
    for (let i = 0; i < 1000; i++) batch.push(handle(done + i));
    await Promise.all(batch);
    await turn();
  }
  const cpu = process.cpuUsage(cpu0);
  // CPU time of the whole process (worker included): on a shared machine wall time mostly measures the neighbours.
  cpuRates.push(OPS / ((cpu.user + cpu.system) / 1e6));
  return OPS / ((performance.now() - start) / 1000);
}

const cpuRates: number[] = [];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const reports: Report[] = [];
const plain: number[] = [];
const watched: number[] = [];
await workload(); // warm-up
cpuRates.length = 0;
for (let r = 0; r < ROUNDS; r++) {
  // Same idle gap before both kinds of round: an idle pause alone slows the next round (CPU clocks, caches).
  await sleep(300);
  plain.push(await workload());
  const watchdog =
    VARIANT === 'lag' || VARIANT === 'none'
      ? undefined
      : startStallWatchdog({
          thresholdMs: 500,
          emit: (x) => reports.push(x),
          captureFrames: VARIANT !== 'no-inspector',
        });
  const lag =
    VARIANT === 'watchdog' || VARIANT === 'no-inspector' || VARIANT === 'none'
      ? undefined
      : monitorLoopLag({ intervalMs: 1000, emit: (x) => reports.push(x) });
  // Let the worker boot before measuring: in a real program it starts once, not per round.
  await sleep(300);
  watched.push(await workload());
  lag?.stop();
  await watchdog?.stop();
}
const p = median(plain);
const w = median(watched);
console.log(`promise-heavy workload, ${ROUNDS} alternating rounds of ${OPS} async calls (x5 awaits)`);
console.log(`${'plain'.padEnd(18)}: ${Math.round(p).toLocaleString('en')} calls/s (median)`);
console.log(`${VARIANT.padEnd(18)}:     ${Math.round(w).toLocaleString('en')} calls/s (median)`);
// Per-pair ratios drift less with the machine's load than a ratio of medians.
const pair = median(plain.map((x, i) => (watched[i] ?? 0) / x));
console.log(`ratio of medians:   ${(w / p).toFixed(3)}`);
console.log(`median pair ratio:  ${pair.toFixed(3)}  (cost ${((1 - pair) * 100).toFixed(1)}%)`);
// cpuRates alternate plain, watched, plain, watched...
const cpuPair = median(cpuRates.filter((_, i) => i % 2 === 0).map((x, i) => (cpuRates[2 * i + 1] ?? 0) / x));
console.log(
  `CPU-time pair ratio: ${cpuPair.toFixed(3)}  (cost ${((1 - cpuPair) * 100).toFixed(1)}% of process CPU per call, worker included)`,
);
console.log(
  `load average: ${(await import('node:os'))
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
console.log(`stall reports during the run: ${reports.filter((x) => x.kind === 'stall').length}`);
