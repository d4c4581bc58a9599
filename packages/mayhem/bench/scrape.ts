/**
 * What abusive scraping of `--http` costs the work: one whole `mayhem run` as users start it
 * (embedded defaults: in-memory broker with its own simulated publisher, SQLite file in a fresh
 * directory; zero-latency restarts, logs off, `--http` on a loopback port), and its ack rate over
 * three windows: alone, with S concurrent scrapers hammering `/metrics`, alone again. Acked
 * messages are counted in its SQLite file (not over HTTP, which would queue behind the scrapers).
 * Prints the three rates and scraped / mean(alone), the main thread's CPU, and what the scrapers got.
 *
 *   node packages/mayhem/dist/bench/scrape.js [--scrapers 2000] [--seconds 10] [--rounds 1] [--path /metrics]
 *        [--before <another build's packages/mayhem/dist/src/cli/main.js>]
 *
 * The scrapers are raw sockets in a process (and session) of their own, as cheap per request as a
 * client can be, so the load is as heavy as one core can make it: each sends `GET <path>` on a
 * keep-alive connection, reads the whole response, asks again at once; a connection closed or reset
 * is reopened at once (a refused one after 10 ms: the port is not open yet). `--before` runs that
 * build too, alternating in each round.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

const here = dirname(fileURLToPath(import.meta.url));
const MAIN = join(here, '..', 'src', 'cli', 'main.js');

export interface ScrapeStats {
  /** Complete responses, by status code. */
  readonly responses: Map<number, number>;
  /** Connections opened (that connected), and closed by either side or reset. */
  connected: number;
  /** Socket errors, by code (ECONNRESET, ECONNREFUSED, ...). */
  readonly errors: Map<string, number>;
}

const bump = <K>(m: Map<K, number>, k: K): void => void m.set(k, (m.get(k) ?? 0) + 1);

/** `count` scrapers against 127.0.0.1:port until `signal` aborts. */
export function startScrapers(port: number, count: number, path: string, signal: AbortSignal): ScrapeStats {
  const stats: ScrapeStats = { responses: new Map(), connected: 0, errors: new Map() };
  const live = new Set<Socket>();
  signal.addEventListener('abort', () => {
    for (const s of live) s.destroy();
  });
  const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: scrape-bench\r\n\r\n`, 'latin1');
  for (let i = 0; i < count; i++) scraper();
  return stats;

  function scraper(): void {
    if (signal.aborted) return;
    const sock: Socket = connect({ port, host: '127.0.0.1' });
    live.add(sock);
    let head = '';
    let bodyLeft = -1;
    let status = 0;
    let closeAfter = false;
    // A chunked body ends with "0\r\n\r\n" (the metrics text has no CR: a plain search is enough).
    let chunked = false;
    let tail = '';
    let everConnected = false;
    let refused = false;
    sock.setNoDelay(true);
    sock.on('connect', () => {
      everConnected = true;
      stats.connected++;
      sock.write(request);
    });
    sock.on('data', (chunk: Buffer) => {
      let data = chunk;
      while (data.length > 0) {
        if (bodyLeft < 0) {
          head += data.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          const rest = Buffer.from(head.slice(end + 4), 'latin1');
          const lines = head.slice(0, end).toLowerCase();
          status = Number(lines.slice(9, 12));
          bodyLeft = Number(/\r\ncontent-length: *(\d+)/.exec(lines)?.[1] ?? 0);
          closeAfter = /\r\nconnection: *close/.test(lines);
          chunked = /\r\ntransfer-encoding: *chunked/.test(lines);
          tail = '';
          head = '';
          data = rest;
        }
        if (chunked) {
          // One request at a time: nothing follows the last chunk.
          tail = (tail + data.toString('latin1')).slice(-7);
          data = data.subarray(data.length);
          if (tail.endsWith('\r\n0\r\n\r\n') || tail === '0\r\n\r\n') bodyLeft = 0;
        } else {
          const take = Math.min(bodyLeft, data.length);
          bodyLeft -= take;
          data = data.subarray(take);
        }
        if (bodyLeft === 0) {
          bump(stats.responses, status);
          bodyLeft = -1;
          if (closeAfter || signal.aborted) {
            sock.destroy();
            return;
          }
          sock.write(request);
        }
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      bump(stats.errors, err.code ?? 'error');
      if (err.code === 'ECONNREFUSED') refused = true;
    });
    sock.on('close', () => {
      live.delete(sock);
      if (signal.aborted) return;
      if (!everConnected && refused) setTimeout(scraper, 10);
      else setImmediate(scraper);
    });
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export interface ScrapeWindows {
  /** Acked/s alone before the scrapers, with them, alone after them. */
  readonly before: number;
  readonly scraped: number;
  readonly after: number;
  /** scraped / mean(before, after): the mean cancels the slow drift of a growing table. */
  readonly ratio: number;
  readonly stats: ScrapeStats;
  readonly scrapedSeconds: number;
  /** CPU of the service's main thread and of the whole process, in cores, per window (alone, scraped, alone). */
  readonly cpu: WindowCpu[];
  /** /healthz response times while scraped, ms, sorted (Infinity: no answer within 1 s). */
  readonly health: number[];
}

interface WindowCpu {
  /** Cores used by the service's main thread, and by the whole process. */
  readonly main: number;
  readonly all: number;
  /** Main-thread CPU per acked message, µs: what scraping costs the thread that acks. */
  readonly mainUsPerAck: number;
}

interface Mark {
  readonly n: number;
  readonly at: number;
  readonly main: number;
  readonly all: number;
}

const TICKS_PER_S = 100;

/** utime + stime of the main thread and of the whole process, in clock ticks (Linux /proc). */
function cpuTicks(pid: number): { main: number; all: number } {
  const ticks = (path: string): number => {
    try {
      const stat = readFileSync(path, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    } catch {
      return NaN;
    }
  };
  return { main: ticks(`/proc/${pid}/task/${pid}/stat`), all: ticks(`/proc/${pid}/stat`) };
}

/**
 * One `mayhem run --http …` (no --count; SIGTERM at the end): `warmup` s, then acked/s over three
 * windows of `seconds` each: alone, with `scrapers` scraping, alone again. Acked messages are
 * counted in the SQLite file (a read-only connection of this process), not over HTTP, so the count
 * does not queue behind the scrapers.
 */
export async function measureWindows(
  mainJs: string,
  scrapers: number,
  path: string,
  seconds: number,
  warmup = 3,
): Promise<ScrapeWindows> {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-scrape-'));
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      mainJs,
      'run',
      '--publish-rate',
      '0',
      '--restart-latency',
      '0',
      '--restart-failure-rate',
      '0',
      '--log-level',
      'silent',
      '--http',
      `127.0.0.1:${port}`,
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const failed = (): Error => new Error(`mayhem run exited ${child.exitCode}: ${stderr.trim().split('\n')[0] ?? ''}`);
  let db: Database.Database | undefined;
  try {
    const file = join(dir, 'mayhem.db');
    // Open once the service has made the file and its schema (it answers HTTP only after that).
    for (;;) {
      if (child.exitCode !== null) throw failed();
      if (existsSync(file) && (await answers(port))) break;
      await sleep(100);
    }
    db = new Database(file, { readonly: true, fileMustExist: true });
    const count = db.prepare('SELECT count(*) FROM message_rows WHERE acked = 1').pluck();
    const pid = child.pid!;
    const acked = (): Mark => {
      const at = performance.now();
      return { n: count.get() as number, at, ...cpuTicks(pid) };
    };
    const rate = (a: Mark, b: Mark): number => ((b.n - a.n) * 1000) / (b.at - a.at);
    const cpu = (a: Mark, b: Mark): WindowCpu => ({
      main: (b.main - a.main) / TICKS_PER_S / ((b.at - a.at) / 1000),
      all: (b.all - a.all) / TICKS_PER_S / ((b.at - a.at) / 1000),
      mainUsPerAck: (((b.main - a.main) / TICKS_PER_S) * 1e6) / (b.n - a.n),
    });
    await sleep(warmup * 1000);
    const t0 = acked();
    await sleep(seconds * 1000);
    const t1 = acked();
    const client = startClient(port, scrapers, path);
    // /healthz as an orchestrator asks it meanwhile: one at a time, 1 s timeout.
    const health: number[] = [];
    const until = performance.now() + seconds * 1000;
    while (performance.now() < until) {
      const t = performance.now();
      health.push((await answers(port)) ? performance.now() - t : Infinity);
      await sleep(Math.max(0, Math.min(250, until - performance.now())));
    }
    const t2 = acked();
    const stats = await client.stop();
    await sleep(1000); // the service closes what the scrapers left
    const t3 = acked();
    await sleep(seconds * 1000);
    const t4 = acked();
    if (child.exitCode !== null) throw failed();
    const before = rate(t0, t1);
    const scraped = rate(t1, t2);
    const after = rate(t3, t4);
    return {
      before,
      scraped,
      after,
      ratio: scraped / ((before + after) / 2),
      stats,
      scrapedSeconds: (t2.at - t1.at) / 1000,
      health: health.sort((a, b) => a - b),
      cpu: [cpu(t0, t1), cpu(t1, t2), cpu(t3, t4)],
    };
  } finally {
    db?.close();
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The scrapers in a process of their own, in a session of its own (so, on Linux, in a scheduling
 * group of its own, as clients on other machines or of other users would be: not sharing the
 * bench's, and the service's, share of the CPU).
 */
function startClient(port: number, scrapers: number, path: string): { stop(): Promise<ScrapeStats> } {
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), '--client', String(port), '--scrapers', String(scrapers), '--path', path],
    { detached: true, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited;
      const j = JSON.parse(out) as { responses: [number, number][]; connected: number; errors: [string, number][] };
      return { responses: new Map(j.responses), connected: j.connected, errors: new Map(j.errors) };
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether GET /healthz answers 200 (once, 1 s at most). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

function describeStats(s: ScrapeStats, seconds: number): string {
  const responses = [...s.responses].map(([code, k]) => `${code}: ${k}`).join(', ') || 'none';
  const total = [...s.responses.values()].reduce((a, b) => a + b, 0);
  const errors = [...s.errors].map(([code, k]) => `${code}: ${k}`).join(', ') || 'none';
  return `responses ${responses} (${Math.round(total / seconds)}/s); connections ${s.connected}; errors ${errors}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--client') {
  // The scrapers' process (startClient): until SIGTERM, then what they saw, as JSON.
  const { values } = parseArgs({
    options: { client: { type: 'string' }, scrapers: { type: 'string' }, path: { type: 'string' } },
  });
  const stop = new AbortController();
  const stats = startScrapers(Number(values.client), Number(values.scrapers), values.path ?? '/metrics', stop.signal);
  process.once('SIGTERM', () => {
    stop.abort();
    process.stdout.write(
      JSON.stringify({ responses: [...stats.responses], connected: stats.connected, errors: [...stats.errors] }),
      () => process.exit(0),
    );
  });
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      scrapers: { type: 'string', default: '2000' },
      seconds: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '1' },
      path: { type: 'string', default: '/metrics' },
      before: { type: 'string' },
    },
  });
  const scrapers = Number(values.scrapers);
  const seconds = Number(values.seconds);
  const builds: [string, string][] = [['this', MAIN]];
  if (values.before !== undefined) builds.unshift(['before', values.before]);
  const fmt = (x: number): string => Math.round(x).toLocaleString('en-US').padStart(7);
  console.log(
    `mayhem run --http 127.0.0.1:<port> (SQLite, zero-latency restarts, logs off): acked/s over ${seconds} s alone, ${seconds} s with ${scrapers} scrapers of ${values.path}, ${seconds} s alone again`,
  );
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const [name, mainJs] of builds) {
      const w = await measureWindows(mainJs, scrapers, values.path, seconds);
      console.log(
        `round ${round} ${name.padEnd(6)} alone ${fmt(w.before)}  scraped ${fmt(w.scraped)}  alone again ${fmt(w.after)}  ratio ${w.ratio.toFixed(2)}`,
      );
      const c = w.cpu
        .map((x) => `${x.main.toFixed(2)}/${x.all.toFixed(2)} cores, ${x.mainUsPerAck.toFixed(1)} µs/ack`)
        .join('; ');
      console.log(`               CPU (main thread/process; main thread per ack): ${c}`);
      console.log(`               scrapers: ${describeStats(w.stats, w.scrapedSeconds)}`);
      const h = w.health;
      const q = (f: number): string => {
        const v = h[Math.min(h.length - 1, Math.floor(f * h.length))] ?? NaN;
        return Number.isFinite(v) ? `${v.toFixed(1)} ms` : 'none in 1 s';
      };
      console.log(
        `               /healthz meanwhile: ${h.length} asked, ${h.filter((x) => !Number.isFinite(x)).length} unanswered in 1 s; median ${q(0.5)}, max ${q(1)}`,
      );
    }
  }
}
