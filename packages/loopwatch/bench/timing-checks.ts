/**
 * Wall-clock checks that used to sit in unit tests (where a loaded CI box made them flaky): how small
 * an idle interval's lag is, and how close a stall's reported duration is to the real block.
 * Run on a quiet machine: `node packages/loopwatch/dist/bench/timing-checks.js` (exit 1 on a miss).
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorLoopLagTo } from '../src/loop-lag-outputs.js';
import { fileURLToPath } from 'node:url';
import type { Report } from '../src/model/report.js';

interface Check {
  readonly name: string;
  readonly value: number;
  readonly ok: boolean;
  readonly target: string;
}

async function idleLag(): Promise<Check> {
  const lag = monitorLoopLagTo({ intervalMs: 3_600_000 });
  await sleep(50);
  lag.sample();
  await sleep(400);
  const f = lag.sample();
  lag.stop();
  return { name: 'idle interval lag max (ms)', value: f.maxMs, ok: f.maxMs < 150, target: '< 150' };
}

async function stallDuration(): Promise<Check> {
  // Compiled beside this file: dist/bench → dist/test/fixtures.
  const fixture = fileURLToPath(new URL('../test/fixtures/stall-direct.js', import.meta.url));
  const child = spawn(process.execPath, [fixture]);
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await new Promise((resolve) => child.on('close', resolve));
  const report = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { report?: Report })
    .find((l) => l.report)?.report;
  const ms = report?.kind === 'stall' ? report.durationMs : NaN;
  return {
    name: 'stall of a 1500 ms spin, reported (ms)',
    value: ms,
    ok: ms > 1000 && ms < 3000,
    target: '1000..3000',
  };
}

const checks = [await idleLag(), await stallDuration()];
for (const c of checks)
  console.log(
    `${c.ok ? 'ok  ' : 'MISS'} ${c.name.padEnd(42)} ${String(Math.round(c.value)).padStart(6)}  target ${c.target}`,
  );
process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
