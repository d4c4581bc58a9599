/**
 * loopwatch's overhead on a real HTTP server: the node:http service of `http-server.ts` under
 * autocannon (10 connections, pipelining 1), plain / production / debug servers started fresh and
 * alternated round by round (the machine is shared: pairs, medians and per-round ratios). Modes as in
 * start-server.ts (production without the attach endpoint; production+attach with it).
 * Usage: node packages/loopwatch/dist/bench/http-overhead.js [rounds=6] [seconds=8] [modes=plain,production,debug]
 */
import { once } from 'node:events';
import autocannon from 'autocannon';
import { printVsPlain, rotateRounds } from './rounds.js';
import { startServer } from './start-server.js';

const ROUNDS = Number(process.argv[2] ?? 6);
const SECONDS = Number(process.argv[3] ?? 8);
const MODES = (process.argv[4] ?? 'plain,production,debug').split(',');

async function measure(mode: string): Promise<number> {
  const { child, port } = await startServer(mode);
  try {
    // A short warm-up (JIT, connection set-up), then the measured run.
    await autocannon({ url: `http://127.0.0.1:${port}/warm`, connections: 10, duration: 1 });
    const r = await autocannon({ url: `http://127.0.0.1:${port}/order/123`, connections: 10, duration: SECONDS });
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`${mode}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    return r.requests.average;
  } finally {
    child.kill('SIGTERM');
    await once(child, 'close');
  }
}

const show = (x: number): string => Math.round(x).toString();
const results = await rotateRounds(MODES, ROUNDS, measure, show, 'req/s');
printVsPlain(results, `node:http + autocannon, ${ROUNDS} rounds × ${SECONDS} s, 10 connections (req/s)`, show);
