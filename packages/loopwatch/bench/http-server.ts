/**
 * A small node:http JSON service for the overhead bench: per request it parses a body-sized JSON
 * document, awaits two async hops (a "database" and a "cache" on timers/promises), and answers JSON.
 * Prints its port on stdout once listening; `GET /__cpu` answers the process's CPU time so far (µs).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as hop } from 'node:timers/promises';

const doc = JSON.stringify({
  items: Array.from({ length: 20 }, (_, i) => ({ id: `item-${i}`, price: i * 1.5, tags: ['a', 'b', 'c'] })),
});

async function load(id: string): Promise<{ id: string; total: number }> {
  await hop();
  const parsed = JSON.parse(doc) as { items: { price: number }[] };
  return { id, total: parsed.items.reduce((s, x) => s + x.price, 0) };
}

async function cached(id: string): Promise<boolean> {
  await hop();
  return id.length % 2 === 0;
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const id = req.url ?? '/';
  const [row, hit] = await Promise.all([load(id), cached(id)]);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ...row, hit }));
}

const server = http.createServer((req, res) => {
  // The bench reads the server's own CPU time (all threads: loopwatch's workers and V8's sampler too).
  if (req.url === '/__cpu') {
    const { user, system } = process.cpuUsage();
    res.end(JSON.stringify({ cpuUs: user + system }));
    return;
  }
  handle(req, res).catch(() => {
    res.statusCode = 500;
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
