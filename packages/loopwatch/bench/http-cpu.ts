/**
 * loopwatch's overhead on a real node:http server, as CPU time per request of the server process.
 *
 * Throughput on this shared 2-core machine swings 3× from run to run (other engineers' jobs), so
 * req/s cannot resolve a 3% target. CPU time per request can: a fixed number of requests is sent to
 * a fresh server, and the server's own CPU time (`process.cpuUsage()`: user + system, every thread of
 * the process — loopwatch's workers and V8's sampling thread included) is read before and after
 * through `GET /__cpu`. Time the server waits for a core does not count, so neighbours' load moves
 * it far less than throughput. Modes alternate round by round in a rotated order; the figures are
 * medians and the median of per-round ratios to plain.
 *
 * Modes: plain; production (LOOPWATCH_ATTACH=0); production+attach (the endpoint open, as under
 * register by default); debug (attach open); production+record and debug+record (LOOPWATCH_RECORD to a
 * temporary file: the recording's cost; its size per minute of this load is printed at the end).
 *
 * Usage: node packages/loopwatch/dist/bench/http-cpu.js [rounds=8] [requests=20000] [modes=plain,production,production+attach,debug]
 *   the recording's cost: ... 12 30000 plain,production,production+record,debug,debug+record
 */
import { once } from 'node:events';
import fs from 'node:fs';
import autocannon from 'autocannon';
import { median, printVsPlain, rotateRounds } from './rounds.js';
import { startServer } from './start-server.js';

const ROUNDS = Number(process.argv[2] ?? 8);
const REQUESTS = Number(process.argv[3] ?? 20_000);
const MODES = (process.argv[4] ?? 'plain,production,production+attach,debug').split(',');
const WARMUP = 3_000;
const CONNECTIONS = 10;

async function cpuOf(port: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/__cpu`);
  return ((await r.json()) as { cpuUs: number }).cpuUs;
}

/** Server CPU µs per request over REQUESTS requests, after a warm-up. */
/** Recording bytes per minute of load and per request, by mode (the `+record` modes). */
const recorded = new Map<string, { perMin: number; perRequest: number }[]>();

async function measure(mode: string): Promise<number> {
  const { child, port, record } = await startServer(mode);
  const started = performance.now();
  try {
    await autocannon({ url: `http://127.0.0.1:${port}/warm`, connections: CONNECTIONS, amount: WARMUP });
    const before = await cpuOf(port);
    const r = await autocannon({
      url: `http://127.0.0.1:${port}/order/123`,
      connections: CONNECTIONS,
      amount: REQUESTS,
    });
    const after = await cpuOf(port);
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${mode}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    // The two /__cpu requests themselves are noise next to 20 000.
    return (after - before) / REQUESTS;
  } finally {
    child.kill('SIGTERM');
    await once(child, 'close');
    if (record) {
      // The whole life of the server: start-up, warm-up, the measured requests (the exit flush included).
      const size = fs.statSync(record).size;
      const perMin = (size / (performance.now() - started)) * 60_000;
      recorded.set(mode, [...(recorded.get(mode) ?? []), { perMin, perRequest: size / (WARMUP + REQUESTS) }]);
      fs.rmSync(record, { force: true });
    }
  }
}

const show = (x: number): string => x.toFixed(1);
const results = await rotateRounds(MODES, ROUNDS, measure, show, 'µs CPU/request');
printVsPlain(
  results,
  `node:http, ${ROUNDS} rounds × ${REQUESTS} requests, ${CONNECTIONS} connections: server CPU µs per request`,
  show,
);
// The recording's own cost: each `X+record` against `X` of the same round.
for (const mode of MODES.filter((m) => m.endsWith('+record'))) {
  const base = results.get(mode.replace(/\+record$/, ''));
  const xs = results.get(mode)!;
  if (!base) continue;
  const ratios = xs.map((x, i) => x / base[i]!).sort((a, b) => a - b);
  const pct = (r: number): string => `${(r * 100).toFixed(1)}%`;
  process.stdout.write(
    `${mode} vs ${mode.replace(/\+record$/, '')}: median of per-round ratios ${pct(median(ratios))} (min ${pct(ratios[0]!)}, max ${pct(ratios.at(-1)!)}), median/median ${pct(median(xs) / median(base))}\n`,
  );
}
for (const [mode, xs] of recorded) {
  const mb = xs.map((x) => x.perMin / 2 ** 20).sort((a, b) => a - b);
  const perRequest = median(xs.map((x) => x.perRequest));
  process.stdout.write(
    `${mode}: recording ${mb[Math.floor(mb.length / 2)]!.toFixed(2)} MiB per minute of this load (median; min ${mb[0]!.toFixed(2)}, max ${mb.at(-1)!.toFixed(2)}), ${perRequest.toFixed(1)} bytes per request\n`,
  );
}
