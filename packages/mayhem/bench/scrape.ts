/**
 * What abusive scraping of `--http` costs the work: the whole `mayhem run --count N` (embedded
 * defaults: in-memory broker with its own simulated publisher, SQLite file in a fresh directory,
 * zero-latency restarts, logs off, `--http` on a loopback port), timed from spawn to exit, once
 * alone and once with S concurrent scrapers hammering `/metrics` from this process for the whole
 * run. Prints both ack rates and their ratio, per round.
 *
 *   node packages/mayhem/dist/bench/scrape.js [--scrapers 2000] [--n 200000] [--rounds 1] [--path /metrics]
 *        [--before <another build's packages/mayhem/dist/src/cli/main.js>]
 *
 * The scrapers are raw sockets, as cheap for this process as a client can be (so the load is as
 * heavy as one core can make it): each sends `GET <path>` on a keep-alive connection, reads the whole
 * response, asks again at once; a connection closed or reset is reopened at once (a refused one
 * after 10 ms: the port is not open yet). `--before` runs that build too, alternating in each round.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
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
  const stop = new AbortController();
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
    const acked = (): { n: number; at: number } => {
      const at = performance.now();
      return { n: count.get() as number, at };
    };
    const rate = (a: { n: number; at: number }, b: { n: number; at: number }): number =>
      ((b.n - a.n) * 1000) / (b.at - a.at);
    await sleep(warmup * 1000);
    const t0 = acked();
    await sleep(seconds * 1000);
    const t1 = acked();
    const stats = startScrapers(port, scrapers, path, stop.signal);
    await sleep(seconds * 1000);
    const t2 = acked();
    stop.abort();
    await sleep(500); // the service closes what the scrapers left
    const t3 = acked();
    await sleep(seconds * 1000);
    const t4 = acked();
    if (child.exitCode !== null) throw failed();
    const before = rate(t0, t1);
    const scraped = rate(t1, t2);
    const after = rate(t3, t4);
    return { before, scraped, after, ratio: scraped / ((before + after) / 2), stats, scrapedSeconds: (t2.at - t1.at) / 1000 };
  } finally {
    stop.abort();
    db?.close();
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
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
      console.log(`               scrapers: ${describeStats(w.stats, w.scrapedSeconds)}`);
    }
  }
}
