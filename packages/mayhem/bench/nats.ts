/**
 * End-to-end throughput through NATS JetStream with PostgreSQL storage and a zero-latency mock
 * executor: N restart requests pre-published to a fresh stream, then 1 (and 2) instances — each its
 * own process running the real pipeline, consumer, NATS broker and PostgreSQL storage — work them
 * off; acked msg/s = N / (last ack − start). Beside it: the same pipeline and PostgreSQL storage on
 * the in-memory broker, and the ratio.
 *
 *   node packages/mayhem/dist/bench/nats.js [--count 200000] [--instances 1,2] [--max-in-flight 1000]
 *
 * The count is what makes this a sustained rate: at 60,000 a case lasts about 3 s, and the start of
 * a fresh process (connections, first pull, JIT warm-up) weighs in it: the instance's CPU per
 * message was 42-45 µs at 60,000 and 30-33 µs at 200,000 on the same code.
 *        [--storage postgres|memory]   (memory: the broker path alone, storage out of the picture)
 *
 * Starts its own nats-server (a temp store, a free port) and uses PostgreSQL as the tests do
 * (127.0.0.1:5432 database `test` when it answers, else a throwaway server), with a fresh database
 * per case.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { MemoryBroker } from '../src/brokers/memory.js';
import { openNatsBroker, openNatsPublisher } from '../src/brokers/nats/index.js';
import { defaultMayhemSettings } from '../src/config/mayhem-options.js';
import { createMayhem } from '../src/core/assemble.js';
import type { Broker, Storage } from '../src/core/contracts.js';
import { encodeRestartRequest } from '../src/core/message.js';
import { seededRandom } from '../src/core/timing.js';
import { MockRestartExecutor } from '../src/executors/mock.js';
import { noopMetrics } from '../src/metrics/noop.js';
import { openStorage } from '../src/storage/open.js';
import type { PostgresStorage } from '../src/storage/postgres/storage.js';
import { randomInstanceName } from '../src/publisher/simulated.js';

// Hosts as the service's own simulated publisher makes them (cattle-xxxx: 1.7M names, few repeats).
const hostRandom = seededRandom(7);
import { startNatsServer } from '../test/helpers/nats-server.js';
import { startTestPostgres } from '../test/helpers/postgres.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '200000' },
    instances: { type: 'string', default: '1,2' },
    'max-in-flight': { type: 'string', default: '1000' },
    worker: { type: 'boolean', default: false },
    broker: { type: 'string' },
    db: { type: 'string' },
    stream: { type: 'string' },
    storage: { type: 'string', default: 'postgres' },
  },
});
const count = Number(values.count);
const maxInFlight = Number(values['max-in-flight']);
const logger = pino({ level: 'warn' });
const random = seededRandom(7);

type FromParent = { type: 'go' } | { type: 'stop' };
type FromWorker =
  | { type: 'ready' }
  | { type: 'done'; acked: number; lastAckAt: number; pullRequests: number; statements: number; cpuUs: number };

/** One instance: the real consumer + pipeline on the given broker and PostgreSQL storage. */
async function instance(broker: Broker, dbUrl: string) {
  const storage = await openStorage({ url: dbUrl, logger, saveFailureRate: 0, random, maxInFlight });
  const { consumer } = createMayhem(
    {
      broker,
      storage,
      metrics: noopMetrics,
      logger,
      executor: new MockRestartExecutor({ latencyMs: 0, failureRate: 0, random }),
    },
    { ...defaultMayhemSettings(), random, maxInFlight },
  );
  let acked = 0;
  let lastAckAt = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  consumer.onSettled = (o) => {
    if (o !== 'acked') return;
    acked += 1;
    lastAckAt = Date.now();
    for (const w of waiters) if (acked >= w.n) w.resolve();
  };
  const stop = new AbortController();
  const cancel = new AbortController();
  let running: Promise<void> | undefined;
  return {
    start: () => {
      running = consumer.run(stop.signal, cancel.signal);
    },
    ackedReaches: (n: number) => new Promise<void>((resolve) => waiters.push({ n, resolve })),
    finish: async () => {
      stop.abort();
      await running;
      await consumer.drained();
      await broker.close();
      await storage.close();
      return { acked, lastAckAt, statements: pgStatements(storage) };
    },
  };
}

/** PostgreSQL statements sent (writes, reads, host locks): round trips are what the instance waits on. */
function pgStatements(storage: Storage): number {
  const s = (storage as Partial<PostgresStorage>).stats?.();
  return s ? s.writeBatches + s.readBatches + s.lockStatements : 0;
}

async function worker(): Promise<void> {
  const broker = await openNatsBroker({
    servers: [values.broker!],
    stream: values.stream,
    subject: `${values.stream}.restart`,
    deadLetterSubject: `${values.stream}.dead`,
    durable: 'bench',
    maxAckPending: maxInFlight * 16,
    logger,
  });
  const inst = await instance(broker, values.db!);
  let cpu0 = process.cpuUsage();
  process.on('message', (m: FromParent) => {
    if (m.type === 'go') {
      cpu0 = process.cpuUsage();
      inst.start();
    } else if (m.type === 'stop') {
      // CPU spent by this instance (user + system): steadier than msg/s on a shared machine.
      const cpu = process.cpuUsage(cpu0);
      void inst.finish().then((r) => {
        const msg: FromWorker = {
          type: 'done',
          ...r,
          pullRequests: broker.stats().pullRequests,
          cpuUs: cpu.user + cpu.system,
        };
        process.send?.(msg, () => process.exit(0));
      });
    }
  });
  process.send?.({ type: 'ready' } satisfies FromWorker);
}

function once<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string }): void => {
      if (m.type === type) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(m as T);
      }
    };
    const onExit = (code: number | null): void =>
      reject(new Error(`bench worker exited (code ${code}) before '${type}'`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

async function publish(url: string, stream: string): Promise<number> {
  const publisher = await openNatsPublisher({
    servers: [url],
    stream,
    subject: `${stream}.restart`,
    deadLetterSubject: `${stream}.dead`,
    logger,
  });
  const t0 = performance.now();
  const window = new Set<Promise<void>>();
  for (let i = 0; i < count; i++) {
    const id = randomUUID(); // as real producers send (sequential ids flatter the storage's index)
    const p = publisher
      .publish(
        encodeRestartRequest({ messageId: id, instanceName: randomInstanceName(hostRandom), publishedAt: Date.now() }),
        id,
      )
      .finally(() => window.delete(p));
    window.add(p);
    if (window.size >= 2048) await Promise.race(window);
  }
  await Promise.all(window);
  await publisher.close();
  return Math.round((count * 1000) / (performance.now() - t0));
}

/**
 * CPU time (user + system, µs) from /proc (0 elsewhere) of this case's nats-server (by its port)
 * and of PostgreSQL: the backends of this case's database and the server's own background
 * processes (WAL writer, checkpointer...), not other clients' backends.
 */
function serverCpuUs(natsPort: string, dbName: string): { postgres: number; nats: number } {
  const total = { postgres: 0, nats: 0 };
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return total;
  }
  for (const pid of pids) {
    let stat: string;
    let cmd: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // exited meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    let key: 'postgres' | 'nats' | undefined;
    if (comm === 'nats-server' && cmd.includes(` -p ${natsPort} `)) key = 'nats';
    else if (comm === 'postgres' && (cmd.includes(` ${dbName} `) || !cmd.includes('('))) key = 'postgres';
    if (!key) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total[key] += ((Number(f[11]) + Number(f[12])) * 1e6) / CLOCK_TICKS; // utime, stime
  }
  return total;
}
const CLOCK_TICKS = 100; // USER_HZ on Linux

async function waitDrained(url: string, stream: string): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    for (;;) {
      const ci = await jsm.consumers.info(stream, 'bench');
      if (ci.num_pending === 0 && ci.num_ack_pending === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await nc.close();
  }
}

async function natsCase(
  url: string,
  dbUrl: string,
  stream: string,
  instances: number,
): Promise<{
  msgPerSec: number;
  publishPerSec: number;
  pullRequests: number;
  statements: number;
  cpuUsPerMsg: number;
  pgUsPerMsg: number;
  natsUsPerMsg: number;
}> {
  const publishPerSec = await publish(url, stream);
  const self = fileURLToPath(import.meta.url);
  const children = Array.from({ length: instances }, () =>
    // BENCH_WORKER_ARGS='--cpu-prof --cpu-prof-dir=DIR' profiles the instances (NODE_OPTIONS refuses --cpu-prof).
    fork(
      self,
      ['--worker', '--broker', url, '--db', dbUrl, '--stream', stream, '--max-in-flight', String(maxInFlight)],
      {
        stdio: 'inherit',
        execArgv: process.env.BENCH_WORKER_ARGS ? process.env.BENCH_WORKER_ARGS.split(' ') : process.execArgv,
      },
    ),
  );
  try {
    await Promise.all(children.map((c) => once(c, 'ready')));
    const servers0 = serverCpuUs(new URL(url).port, new URL(dbUrl).pathname.slice(1));
    const t0 = Date.now();
    for (const c of children) c.send({ type: 'go' } satisfies FromParent);
    await waitDrained(url, stream);
    const servers1 = serverCpuUs(new URL(url).port, new URL(dbUrl).pathname.slice(1));
    const done = children.map((c) => once<Extract<FromWorker, { type: 'done' }>>(c, 'done'));
    for (const c of children) c.send({ type: 'stop' } satisfies FromParent);
    const results = await Promise.all(done);
    const acked = results.reduce((s, r) => s + r.acked, 0);
    if (acked < count) throw new Error(`only ${acked} of ${count} acked`);
    const last = Math.max(...results.map((r) => r.lastAckAt));
    return {
      msgPerSec: Math.round((count * 1000) / (last - t0)),
      publishPerSec,
      pullRequests: results.reduce((s, r) => s + r.pullRequests, 0),
      statements: results.reduce((s, r) => s + r.statements, 0),
      cpuUsPerMsg: results.reduce((s, r) => s + r.cpuUs, 0) / count,
      pgUsPerMsg: (servers1.postgres - servers0.postgres) / count,
      natsUsPerMsg: (servers1.nats - servers0.nats) / count,
    };
  } finally {
    // Workers exit by themselves after 'done'; anything left after 5 s is killed.
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
            c.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}

/** The same pipeline and PostgreSQL storage on the in-memory broker (messages pre-published). */
async function memoryCase(dbUrl: string): Promise<number> {
  const broker = new MemoryBroker({ ackDeadlineMs: 60_000 });
  for (let i = 0; i < count; i++) {
    const id = randomUUID();
    broker.publishSync(
      encodeRestartRequest({ messageId: id, instanceName: randomInstanceName(hostRandom), publishedAt: Date.now() }),
      id,
    );
  }
  const inst = await instance(broker, dbUrl);
  const t0 = Date.now();
  inst.start();
  await inst.ackedReaches(count);
  const { lastAckAt } = await inst.finish();
  return Math.round((count * 1000) / (lastAckAt - t0));
}

async function main(): Promise<void> {
  const instanceCounts = values.instances.split(',').map(Number);
  const usePg = values.storage !== 'memory';
  const store = usePg ? 'PostgreSQL' : 'memory storage';
  const [nats, pgt] = await Promise.all([startNatsServer(), usePg ? startTestPostgres() : undefined]);
  const dbUrl = async (): Promise<string> => (pgt ? (await pgt.createDatabase()).url : 'memory:');
  try {
    const mem = await memoryCase(await dbUrl());
    process.stdout.write(
      `NATS JetStream + ${store}, zero-latency mock, ${count} messages, --max-in-flight ${maxInFlight} (nats-server ${nats.url})\n`,
    );
    process.stdout.write(`  memory broker + ${store}, 1 instance: ${mem.toLocaleString('en-US')} acked msg/s\n`);
    for (const k of instanceCounts) {
      const r = await natsCase(nats.url, await dbUrl(), `BENCH${k}`, k);
      process.stdout.write(
        `  NATS JetStream + ${store}, ${k} instance${k > 1 ? 's' : ''}: ${r.msgPerSec.toLocaleString('en-US')} acked msg/s ` +
          `(${(r.msgPerSec / mem).toFixed(2)}× memory broker; ${r.pullRequests} pull requests; ${r.statements} SQL statements; CPU/msg: ${r.cpuUsPerMsg.toFixed(1)} µs instances, ${r.pgUsPerMsg.toFixed(1)} µs postgres, ${r.natsUsPerMsg.toFixed(1)} µs nats-server; published at ${r.publishPerSec.toLocaleString('en-US')}/s)\n`,
      );
    }
  } finally {
    await nats.destroy();
    await pgt?.close();
  }
}

if (values.worker) await worker();
else await main();
