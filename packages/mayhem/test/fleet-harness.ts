/**
 * Runs the real CLI (`node dist/src/cli/main.js run ...`) as child processes against real NATS and
 * PostgreSQL, follows their JSON logs as events, and checks the fleet invariants at the end:
 * published N = exactly N distinct messageIds acked, none lost, none acked without restart+save
 * recorded, and no message's host restarted again after its restart was recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { pino } from 'pino';
import { encodeRestartRequest } from '../src/core/message.js';
import { openNatsPublisher, type NatsOptions } from '../src/brokers/nats/index.js';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

const here = dirname(fileURLToPath(import.meta.url));
/** The compiled CLI (the tests run from source, the instances from dist: build first). */
export const CLI = join(here, '..', 'dist', 'src', 'cli', 'main.js');

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface LogLine {
  readonly level: number;
  readonly time: number;
  readonly msg: string;
  readonly messageId?: string;
  readonly [key: string]: unknown;
}

/** One `mayhem run` process and what it has said so far. */
export class Instance {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  /** messageIds this instance acked ("Done. Acked"). */
  readonly acked = new Set<string>();
  /** messageIds this instance pulled. */
  readonly pulled = new Set<string>();
  /** messageIds this instance pulled as a redelivery (delivery > 1). */
  readonly redelivered = new Set<string>();
  /** Every "Restarted <host>" event: which message, when (ms). */
  readonly restarts: { messageId: string; time: number }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  #listeners = new Set<() => void>();

  constructor(name: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.name = name;
    this.child = spawn(process.execPath, [CLI, 'run', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    live.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        live.delete(this.child);
        resolve({ code, signal });
        this.#notify();
      });
    });
    let pending = '';
    this.child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) this.#line(part);
      this.#notify();
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8');
    });
  }

  #line(text: string): void {
    if (text.trim() === '') return;
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      this.stderr += `${text}\n`;
      return;
    }
    this.lines.push(line);
    const id = line.messageId;
    if (typeof id === 'string') {
      if (line.msg.startsWith('Done. Acked')) this.acked.add(id);
      else if (line.msg.startsWith('Pulled ')) {
        this.pulled.add(id);
        if (typeof line.delivery === 'number' && line.delivery > 1) this.redelivered.add(id);
      } else if (line.msg.startsWith('Restarted ')) this.restarts.push({ messageId: id, time: line.time });
    }
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolve when `predicate` holds (checked on every batch of log lines), reject on exit or timeout. */
  until(what: string, predicate: () => boolean, timeoutMs = 60_000): Promise<void> {
    return waitFor([this], what, predicate, timeoutMs);
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  linesMatching(re: RegExp): LogLine[] {
    return this.lines.filter((l) => re.test(l.msg));
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  describe(): string {
    const tail = this.lines
      .slice(-15)
      .map((l) => `${l.msg}`)
      .join('\n  ');
    return `${this.name}: acked ${this.acked.size}, pulled ${this.pulled.size}\n  ${tail}\n  stderr: ${this.stderr.slice(-2000)}`;
  }
}

/** Wait for a condition over several instances' logs (event-driven: re-checked on each new output). */
export function waitFor(
  instances: Instance[],
  what: string,
  predicate: () => boolean,
  timeoutMs = 60_000,
): Promise<void> {
  if (predicate()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (err?: Error): void => {
      clearTimeout(timer);
      for (const off of offs) off();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () =>
        done(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${what}\n${instances.map((i) => i.describe()).join('\n')}`,
          ),
        ),
      timeoutMs,
    );
    for (const inst of instances) {
      offs.push(
        inst.onChange(() => {
          if (predicate()) done();
        }),
      );
    }
  });
}

/** Kill every instance still running (test cleanup, also after failures). */
export async function killAll(instances: Instance[]): Promise<void> {
  for (const i of instances) i.kill('SIGKILL');
  await Promise.all(instances.map((i) => i.exited));
}

export interface FleetNames {
  readonly stream: string;
  readonly subject: string;
  readonly durable: string;
  readonly deadLetterSubject: string;
}

export function fleetNames(tag: string): FleetNames {
  return {
    stream: `F_${tag}`,
    subject: `fleet.${tag}.restart`,
    durable: `fleet_${tag}`,
    deadLetterSubject: `fleet.${tag}.dead`,
  };
}

/** Common `mayhem run` flags for a fleet member. */
export function runArgs(o: {
  brokerUrl: string;
  dbUrl: string;
  names: FleetNames;
  replicas?: number;
  extra?: string[];
}): string[] {
  return [
    '--broker',
    o.brokerUrl,
    '--db',
    o.dbUrl,
    '--stream',
    o.names.stream,
    '--subject',
    o.names.subject,
    '--durable',
    o.names.durable,
    '--dead-letter-subject',
    o.names.deadLetterSubject,
    '--replicas',
    String(o.replicas ?? 1),
    '--log-format',
    'json',
    '--log-level',
    'info',
    '--status-every',
    '0',
    ...(o.extra ?? []),
  ];
}

export interface Published {
  readonly ids: string[];
}

/**
 * Publish `count` valid restart requests (ids `<tag>-<i>`, `hosts` distinct hosts (40), or one host per
 * message with `hostPerMessage`), optionally with malformed payloads mixed in.
 */
export async function publishRequests(
  servers: string[],
  names: FleetNames,
  tag: string,
  count: number,
  opts: { replicas?: number; malformed?: string[]; hostPerMessage?: boolean; hosts?: number } = {},
): Promise<Published> {
  const natsOpts: NatsOptions = {
    servers,
    stream: names.stream,
    subject: names.subject,
    deadLetterSubject: names.deadLetterSubject,
    replicas: opts.replicas ?? 1,
    logger: pino({ level: 'silent' }),
  };
  const publisher = await openNatsPublisher(natsOpts);
  const ids: string[] = [];
  const malformed = opts.malformed ?? [];
  const every = malformed.length > 0 ? Math.max(1, Math.floor(count / (malformed.length + 1))) : 0;
  let m = 0;
  const window = new Set<Promise<void>>();
  const send = async (payload: string, id?: string): Promise<void> => {
    const p = publisher.publish(payload, id).finally(() => window.delete(p));
    window.add(p);
    if (window.size >= 512) await Promise.race(window);
  };
  try {
    for (let i = 0; i < count; i++) {
      const id = `${tag}-${i}`;
      ids.push(id);
      const instanceName = opts.hostPerMessage === true ? `${tag}-h${i}` : `${tag}-host${i % (opts.hosts ?? 40)}`;
      await send(encodeRestartRequest({ messageId: id, instanceName, publishedAt: Date.now() }), id);
      if (every > 0 && i % every === every - 1 && m < malformed.length) await send(malformed[m++]!);
    }
    while (m < malformed.length) await send(malformed[m++]!);
    await Promise.all(window);
  } finally {
    await publisher.close();
  }
  return { ids };
}

interface Row {
  message_id: string;
  acked: boolean;
  restarted: boolean;
  restart_in_doubt: boolean;
  saved: boolean;
  restarted_ms: string | null;
}

export type Query = <T extends Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<T[]>;

/** A {@link Query} on the database at `url` (a short-lived connection per call). */
export function queryOn(url: string): Query {
  return async <T extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end();
    }
  };
}

/**
 * The fleet invariants. `query` runs on the fleet's database.
 * Returns the rows for extra checks.
 */
export async function verifyFleet(
  query: Query,
  published: Published,
  instances: Instance[],
  opts: { logsComplete?: boolean } = {},
): Promise<{ restartedAgain: number; duplicateRestarts: number; inDoubt: string[] }> {
  const rows = await query<Row & Record<string, unknown>>(
    `SELECT message_id, acked, restarted, restart_in_doubt, saved, (extract(epoch FROM restarted_at) * 1000)::bigint::text AS restarted_ms
       FROM messages WHERE message_id = ANY($1::text[])`,
    [published.ids],
  );
  const byId = new Map(rows.map((r) => [r.message_id, r]));
  const missing = published.ids.filter((id) => !byId.get(id)?.acked);
  if (missing.length > 0)
    throw new Error(
      `${missing.length} published messages not acked in the database, e.g. ${missing.slice(0, 5).join(', ')}`,
    );
  // Acked means saved and the restart recorded — as done, or as in doubt (its instance died mid-restart
  // and the redelivery did not run it again).
  const badAck = rows.filter((r) => r.acked && !((r.restarted || r.restart_in_doubt) && r.saved));
  if (badAck.length > 0)
    throw new Error(`${badAck.length} messages acked without restart+save recorded, e.g. ${badAck[0]?.message_id}`);
  const extra = await query<{ n: string }>(
    'SELECT count(*)::text AS n FROM messages WHERE acked AND NOT (message_id = ANY($1::text[]))',
    [published.ids],
  );
  if (extra[0]?.n !== '0') throw new Error(`${extra[0]?.n} acked records that were never published`);

  // Logs agree: the union of "Done. Acked" over the fleet is exactly the published ids.
  const ackedInLogs = new Set<string>();
  for (const i of instances) for (const id of i.acked) ackedInLogs.add(id);
  const publishedSet = new Set(published.ids);
  // (A SIGKILLed instance loses the tail of its buffered log: then only the database can say.)
  const notInLogs = opts.logsComplete === false ? [] : published.ids.filter((id) => !ackedInLogs.has(id));
  if (notInLogs.length > 0) throw new Error(`${notInLogs.length} messages never logged as acked, e.g. ${notInLogs[0]}`);
  const strangers = [...ackedInLogs].filter((id) => !publishedSet.has(id));
  if (strangers.length > 0) throw new Error(`acked ids that were never published: ${strangers.slice(0, 5).join(', ')}`);

  // No host restarted again once its restart was recorded (restarted_at keeps the first record).
  let restartedAgain = 0;
  let duplicateRestarts = 0;
  const count = new Map<string, number>();
  for (const i of instances) {
    for (const r of i.restarts) {
      count.set(r.messageId, (count.get(r.messageId) ?? 0) + 1);
      const recorded = Number(byId.get(r.messageId)?.restarted_ms ?? Number.POSITIVE_INFINITY);
      if (r.time > recorded) restartedAgain += 1;
    }
  }
  for (const n of count.values()) if (n > 1) duplicateRestarts += n - 1;
  if (restartedAgain > 0)
    throw new Error(`${restartedAgain} restarts happened after the message's restart was recorded`);
  return {
    restartedAgain,
    duplicateRestarts,
    inDoubt: rows.filter((r) => r.restart_in_doubt).map((r) => r.message_id),
  };
}

/** Hosts restarted more than once according to a mock restart journal (MAYHEM_MOCK_JOURNAL), with their counts. */
export function doubleRestarts(journal: string): Map<string, number> {
  const counts = new Map<string, number>();
  const text = existsSync(journal) ? readFileSync(journal, 'utf8') : '';
  for (const host of text.split('\n')) if (host !== '') counts.set(host, (counts.get(host) ?? 0) + 1);
  return new Map([...counts].filter(([, n]) => n > 1));
}

/** The hosts a mock restart journal holds (each once). */
export function journalHosts(journal: string): Set<string> {
  return new Set((existsSync(journal) ? readFileSync(journal, 'utf8') : '').split('\n').filter((h) => h !== ''));
}

/**
 * Resolve once the fleet's durable consumer has nothing pending and nothing unacked: every
 * published message was acked (or terminated). The instances buffer their JSON logs (4 KiB chunks),
 * so the broker, not the log, says when the work is done; logs are complete once they exit.
 */
export async function waitDrained(
  servers: string[],
  names: FleetNames,
  timeoutMs = 90_000,
  instances: Instance[] = [],
): Promise<void> {
  const nc = await connect({ servers, maxReconnectAttempts: -1 });
  try {
    // No account-info check up front: during a leader election it times out; the loop below asks again.
    const jsm = await jetstreamManager(nc, { timeout: 2_000, checkAPI: false });
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const ci = await jsm.consumers.info(names.stream, names.durable);
        last = `pending ${ci.num_pending}, ack pending ${ci.num_ack_pending}, redelivered ${ci.num_redelivered}`;
        if (ci.num_pending === 0 && ci.num_ack_pending === 0) return;
      } catch (err) {
        last = String(err); // e.g. during a leader election: ask again
      }
      if (Date.now() > deadline)
        throw new Error(
          `consumer ${names.durable} not drained after ${timeoutMs} ms (${last})\n${instances.map((i) => i.describe()).join('\n')}`,
        );
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await nc.close();
  }
}
