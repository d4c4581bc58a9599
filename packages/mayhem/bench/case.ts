/**
 * One benchmark measurement, run in its own process so RSS and loopwatch modes don't leak between
 * cases: `node dist/bench/case.js <case> <n>` prints one JSON line.
 *
 * cases: baseline | memory | sqlite | rss | latency
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { activeMode, trackWork } from 'loopwatch';
import { pino } from 'pino';
import { MemoryBroker } from '../src/brokers/memory.js';
import { defaultMayhemSettings } from '../src/config/mayhem-options.js';
import { createMayhem } from '../src/core/assemble.js';
import type { RestartExecutor, Storage } from '../src/core/contracts.js';
import { RESTARTED, type RestartOutcome } from '../src/core/restart-outcome.js';
import type { Consumer } from '../src/core/consumer.js';
import { encodeRestartRequest } from '../src/core/message.js';
import { seededRandom } from '../src/core/timing.js';
import { MockRestartExecutor } from '../src/executors/mock.js';
import { noopMetrics } from '../src/metrics/noop.js';
import { runSimulatedPublisher, randomInstanceName } from '../src/publisher/simulated.js';
import { openMemoryStorage } from '../src/storage/memory/storage.js';
import { openSqliteWorkerStorage } from '../src/storage/sqlite/worker-storage.js';
import { runBaseline } from './baseline.js';

const logger = pino({ level: 'silent' });
const random = seededRandom(42);

interface Setup {
  storage: Storage;
  executor?: RestartExecutor;
  maxInFlight: number;
}

function build(setup: Setup) {
  const broker = new MemoryBroker({ ackDeadlineMs: 60_000 });
  // The service's own wiring; under loopwatch's debug mode every message is a task, as there.
  const { counters, consumer } = createMayhem(
    {
      broker,
      storage: setup.storage,
      metrics: noopMetrics,
      logger,
      executor: setup.executor ?? new MockRestartExecutor({ latencyMs: 0, failureRate: 0, random }),
      // As the service: each message a work unit (the shared no-op while loopwatch is off).
      track: trackWork,
    },
    { ...defaultMayhemSettings(), random, maxInFlight: setup.maxInFlight, messageTasks: activeMode() === 'debug' },
  );
  return { broker, counters, consumer };
}

/** Resolves once `n` messages were acked. */
function allAcked(consumer: Consumer, n: number): Promise<void> {
  return new Promise((resolve) => {
    let acked = 0;
    consumer.onSettled = (o) => {
      if (o === 'acked' && ++acked === n) resolve();
    };
  });
}

/** n requests with random UUIDv4 ids, as real producers send them (sequential ids flatter storage). */
function prefill(broker: MemoryBroker, n: number): void {
  for (let i = 0; i < n; i++) {
    const messageId = randomUUID();
    broker.publishSync(
      encodeRestartRequest({ messageId, instanceName: randomInstanceName(random), publishedAt: Date.now() }),
      messageId,
    );
  }
}

/** Throughput: n messages pre-published, time until all are acked. */
async function throughput(storage: Storage, n: number): Promise<Record<string, number>> {
  const { broker, consumer } = build({ storage, maxInFlight: 1000 });
  prefill(broker, n);
  const stop = new AbortController();
  const cancel = new AbortController();
  const done = allAcked(consumer, n);
  const t0 = performance.now();
  const running = consumer.run(stop.signal, cancel.signal);
  await done;
  const ms = performance.now() - t0;
  stop.abort();
  await running;
  await storage.close();
  return { msgPerSec: Math.round((n * 1000) / ms), ms: Math.round(ms) };
}

/** Peak RSS with n messages in flight at once (restarts held until all are in flight). */
async function rss(n: number): Promise<Record<string, number>> {
  let release!: () => void;
  const gate = new Promise<RestartOutcome>((r) => (release = () => r(RESTARTED)));
  const executor: RestartExecutor = { restart: () => gate };
  // The default embedded storage (SQLite): records live on disk, so RSS is what in-flight work costs.
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-'));
  const storage = await openSqliteWorkerStorage({ path: join(dir, 'bench.db'), logger });
  const { broker, consumer } = build({ storage, executor, maxInFlight: n });
  const before = process.memoryUsage().rss;
  prefill(broker, n);
  const stop = new AbortController();
  const running = consumer.run(stop.signal, new AbortController().signal);
  // Some hosts repeat, and those wait on the per-host guard: in flight, but not restarting.
  while (consumer.inFlight < n) await new Promise((r) => setImmediate(r));
  const inFlight = consumer.inFlight;
  const rssNow = process.memoryUsage().rss;
  // The high-water mark so far: pre-publishing n messages and pulling them all into flight.
  const peakFilling = process.resourceUsage().maxRSS;
  if (process.env.BENCH_HEAP) process.stderr.write(JSON.stringify(process.memoryUsage()) + '\n');
  if (process.env.BENCH_SNAP) (await import('node:v8')).writeHeapSnapshot(process.env.BENCH_SNAP);
  release();
  await consumer.drained();
  stop.abort();
  await running;
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    inFlight,
    rssMB: Math.round(rssNow / 2 ** 20),
    baseMB: Math.round(before / 2 ** 20),
    peakFillingMB: Math.round(peakFilling / 1024),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

/**
 * Fairness: n published as fast as the loop allows while consuming, on the default storage (SQLite);
 * publish → ack latency, taken when the ack record is durable (the broker ack follows at once).
 */
async function latency(n: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-'));
  const storage = await openSqliteWorkerStorage({ path: join(dir, 'bench.db'), logger });
  const latencies: number[] = [];
  const markAcked = storage.markAcked.bind(storage);
  const publishedAt = new Map<string, number>();
  storage.markAcked = (record) => {
    const written = markAcked(record);
    void written.then(
      () => latencies.push(performance.now() - (publishedAt.get(record.messageId) ?? NaN)),
      () => undefined,
    );
    return written;
  };
  const { broker, consumer } = build({
    storage,
    executor: new MockRestartExecutor({ latencyMs: 10, failureRate: 0, random }),
    maxInFlight: 1000,
  });
  const stop = new AbortController();
  const done = allAcked(consumer, n);
  const t0 = performance.now();
  const running = consumer.run(stop.signal, new AbortController().signal);
  await runSimulatedPublisher(
    (payload, id) => {
      publishedAt.set(id, performance.now());
      broker.publishSync(payload, id);
    },
    { rate: 0, count: n, random },
    stop.signal,
  );
  await done;
  const ms = performance.now() - t0;
  stop.abort();
  await running;
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number =>
    Math.round((latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN) * 10) / 10;
  return { p50Ms: pct(0.5), p99Ms: pct(0.99), maxMs: pct(1), msgPerSec: Math.round((n * 1000) / ms) };
}

const [, , which = 'memory', nText = '100000'] = process.argv;
const n = Number(nText);
let result: Record<string, number>;
switch (which) {
  case 'baseline':
    result = await runBaseline(n);
    break;
  case 'memory':
    result = await throughput(openMemoryStorage(), n);
    break;
  case 'sqlite': {
    const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-'));
    try {
      result = await throughput(await openSqliteWorkerStorage({ path: join(dir, 'bench.db'), logger }), n);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    break;
  }
  case 'rss':
    result = await rss(n);
    break;
  case 'latency':
    result = await latency(n);
    break;
  default:
    throw new Error(`unknown case ${which}`);
}
process.stdout.write(`${JSON.stringify({ case: which, n, ...result })}\n`);
