/**
 * Test parts for the pipeline and consumer: a controllable restart executor, a capturing logger,
 * a no-op metrics backend and one function that wires the real core to the memory broker and
 * memory storage. Everything runs on the global timers, so vitest's fake timers drive it.
 */
import { pino, type Logger } from 'pino';
import { MemoryBroker } from '../src/brokers/memory.js';
import type { Delivery, Metrics, RestartExecutor, Storage } from '../src/core/contracts.js';
import { cancelled, notRestarted, RESTARTED, type RestartOutcome } from '../src/core/restart-outcome.js';
import { defaultMayhemSettings } from '../src/config/mayhem-options.js';
import { createMayhem } from '../src/core/assemble.js';
import { Consumer, nackOnHandlerError, type ConsumerOptions } from '../src/core/consumer.js';
import { Counters } from '../src/core/counters.js';
import { LocalHostGuard } from '../src/core/host-guard.js';
import { encodeRestartRequest } from '../src/core/message.js';
import { MessagePipeline, type PipelineOptions } from '../src/core/pipeline.js';
import { openMemoryStorage, type MemoryStorage } from '../src/storage/memory/storage.js';
import type { LocalFleetControl } from '../src/storage/memory/control.js';
import { HostFilter } from '../src/core/policy.js';
import { Rails, type RailsOptions, type RailsSettings } from '../src/core/rails.js';

export const noopMetrics: Metrics = {
  increment: () => undefined,
  gauge: () => undefined,
  timing: () => undefined,
  close: () => Promise.resolve(),
};

export interface LogLine {
  level: number;
  msg: string;
  messageId?: string;
  [key: string]: unknown;
}

/** A pino logger whose records land in `lines` (parsed), synchronously. */
export function capturingLogger(level = 'info'): { logger: Logger; lines: LogLine[]; messages(): string[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level, base: undefined }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines, messages: () => lines.map((l) => l.msg) };
}

/**
 * What one restart call does after `latencyMs`: resolve `restarted`; `fail`: `not-restarted`;
 * `outcome`: that outcome; `throws`: reject with it (a bug, by the executor contract).
 */
export interface RestartPlan {
  readonly latencyMs: number;
  readonly fail?: boolean;
  readonly outcome?: RestartOutcome | undefined;
  readonly throws?: unknown;
}

export interface RestartCall {
  readonly host: string;
  readonly at: number;
  /** 1-based, per host. */
  readonly nth: number;
  outcome: 'pending' | 'ok' | 'failed' | 'aborted';
}

/**
 * A restart executor that does what `plan` says for each call and records every call, the
 * concurrency overall and per host, and whether the abort signal reached it.
 */
export class FakeExecutor implements RestartExecutor {
  readonly calls: RestartCall[] = [];
  active = 0;
  maxActive = 0;
  maxActivePerHost = 0;
  readonly #activeByHost = new Map<string, number>();
  readonly #plan: (host: string, nth: number) => RestartPlan;

  constructor(plan: (host: string, nth: number) => RestartPlan = () => ({ latencyMs: 100 })) {
    this.#plan = plan;
  }

  callsFor(host: string): RestartCall[] {
    return this.calls.filter((c) => c.host === host);
  }

  restart(hostname: string, signal: AbortSignal): Promise<RestartOutcome> {
    const nth = this.callsFor(hostname).length + 1;
    const call: RestartCall = { host: hostname, at: Date.now(), nth, outcome: 'pending' };
    this.calls.push(call);
    if (signal.aborted) {
      call.outcome = 'aborted';
      return Promise.resolve(cancelled(`cancelled before restarting ${hostname}`));
    }
    const plan = this.#plan(hostname, nth);
    this.active += 1;
    this.maxActive = Math.max(this.maxActive, this.active);
    const onHost = (this.#activeByHost.get(hostname) ?? 0) + 1;
    this.#activeByHost.set(hostname, onHost);
    this.maxActivePerHost = Math.max(this.maxActivePerHost, onHost);
    const done = (): void => {
      this.active -= 1;
      this.#activeByHost.set(hostname, (this.#activeByHost.get(hostname) ?? 1) - 1);
    };
    return new Promise<RestartOutcome>((resolve, reject) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        call.outcome = 'aborted';
        done();
        // Like the mock: a restart stopped before its latency is over did not happen.
        resolve(cancelled(`cancelled before restarting ${hostname}`));
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        done();
        if (plan.throws !== undefined) {
          call.outcome = 'failed';
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          return reject(plan.throws);
        }
        const outcome =
          plan.outcome ?? (plan.fail === true ? notRestarted(`Could not restart ${hostname}`) : RESTARTED);
        call.outcome = outcome.kind === 'restarted' ? 'ok' : 'failed';
        resolve(outcome);
      }, plan.latencyMs);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export const defaultPipelineOptions: PipelineOptions = {
  extendEveryMs: 1000,
  ackDeadlineMs: 5000,
  restartAttempts: 3,
  saveAttempts: 3,
  maxDeliveries: 3,
  // random() is 1 below, so every backoff is its ceiling: 100, 200, 400 ms; nacks 1000, 2000, 4000 ms.
  retryBackoff: { baseMs: 100, maxMs: 2000 },
  nackBackoff: { baseMs: 1000, maxMs: 10_000 },
  dryRun: false,
  random: () => 1,
};

export interface Rig {
  readonly broker: MemoryBroker;
  readonly memory: MemoryStorage;
  readonly storage: Storage;
  readonly executor: FakeExecutor;
  readonly counters: Counters;
  readonly pipeline: MessagePipeline;
  readonly log: ReturnType<typeof capturingLogger>;
  readonly hostGuard: LocalHostGuard;
  /** The rails' fleet state and audit trail (the memory storage's). */
  readonly control: LocalFleetControl;
  /** The rails, when the rig has them. */
  readonly rails: Rails | undefined;
  /** Publish a valid restart request for `instanceName`; returns its messageId. */
  publish(instanceName: string, messageId?: string): string;
  /** Pull what is ready now (never waits). */
  pullNow(max?: number): Promise<Delivery[]>;
  consumer(options?: Partial<ConsumerOptions>): Consumer;
}

export interface RigOptions {
  readonly pipeline?: Partial<PipelineOptions>;
  readonly executor?: FakeExecutor;
  /** Wrap the memory storage (fault injection). */
  readonly storage?: (memory: MemoryStorage) => Storage;
  readonly ackDeadlineMs?: number;
  readonly metrics?: Metrics;
  /** The memory broker's bound (default none). */
  readonly maxBacklog?: number;
  /** Safety rails (their fleet state is the memory storage's control). */
  readonly rails?: Partial<RailsSettings>;
  /** How the rails leash, and where a leashed instance keeps what it would do (given the control). */
  readonly railsOptions?: (control: LocalFleetControl) => RailsOptions;
}

let ids = 0;

/** Rails settings with nothing set but `rails`. */
export function railsSettingsWith(rails: Partial<RailsSettings>): RailsSettings {
  return {
    hosts: new HostFilter([], []),
    window: undefined,
    minIntervalMs: 0,
    maxConcurrent: 0,
    onLimit: 'delay',
    leashed: false,
    ...rails,
  };
}

export function rig(o: RigOptions = {}): Rig {
  const ackDeadlineMs = o.ackDeadlineMs ?? defaultPipelineOptions.ackDeadlineMs;
  // The broker's clock is Date.now, so fake time drives leases too.
  const broker = new MemoryBroker({ ackDeadlineMs, maxBacklog: o.maxBacklog, now: () => Date.now() });
  const memory = openMemoryStorage();
  const storage = o.storage ? o.storage(memory) : memory;
  const executor = o.executor ?? new FakeExecutor();
  const log = capturingLogger();
  const hostGuard = new LocalHostGuard();
  const control = memory.control();
  const rails =
    o.rails === undefined
      ? undefined
      : new Rails(railsSettingsWith(o.rails), control, () => 0.5, o.railsOptions?.(control));
  // The service's own wiring (its consumer is made per test below, with the options the test needs).
  const { counters, pipeline } = createMayhem(
    { broker, storage, executor, hostGuard, rails, control, metrics: o.metrics ?? noopMetrics, logger: log.logger },
    { ...defaultMayhemSettings(), ...defaultPipelineOptions, ackDeadlineMs, instance: 'test:1', ...o.pipeline },
  );
  return {
    broker,
    memory,
    storage,
    executor,
    counters,
    pipeline,
    log,
    hostGuard,
    control,
    rails,
    publish(instanceName, messageId = `m-${++ids}`) {
      broker.publishSync(encodeRestartRequest({ messageId, instanceName, publishedAt: Date.now() }), messageId);
      return messageId;
    },
    pullNow(max = 100) {
      if (broker.stats().ready === 0) return Promise.resolve([]);
      return broker.pull(max, new AbortController().signal);
    },
    consumer(options = {}) {
      return new Consumer({
        broker,
        pipeline,
        counters,
        logger: log.logger,
        onHandlerError: nackOnHandlerError(log.logger, counters),
        maxInFlight: 10,
        pullBatch: 10,
        ...options,
      });
    },
  };
}

/** Storage whose `saveMessage` fails the first `failures` calls (per messageId), then works. */
export function failingSaves(failures: number, calls: number[] = []): (memory: MemoryStorage) => Storage {
  return (memory) => {
    const seen = new Map<string, number>();
    return {
      ...memory,
      saveMessage(request, deliveryCount, signal) {
        calls.push(Date.now());
        const n = (seen.get(request.messageId) ?? 0) + 1;
        seen.set(request.messageId, n);
        if (n <= failures) return Promise.reject(new Error(`Could not save ${request.messageId}`));
        return memory.saveMessage(request, deliveryCount, signal);
      },
    };
  };
}

/**
 * `d` with some methods replaced. Built member by member: a Delivery may be a class instance,
 * whose methods and getters an object spread would drop.
 */
export function wrapDelivery(
  d: Delivery,
  overrides: Partial<Pick<Delivery, 'extend' | 'ack' | 'nack' | 'deadLetter'>>,
): Delivery {
  return {
    get data() {
      return d.data;
    },
    deliveryCount: d.deliveryCount,
    extend: overrides.extend ?? (() => d.extend()),
    ack: overrides.ack ?? (() => d.ack()),
    nack: overrides.nack ?? ((ms) => d.nack(ms)),
    deadLetter: overrides.deadLetter ?? ((reason) => d.deadLetter(reason)),
  };
}

/** A promise's state without waiting for it. */
export function track<T>(p: Promise<T>): {
  readonly settled: boolean;
  readonly value: T | undefined;
  readonly error: unknown;
  readonly promise: Promise<T>;
} {
  const state = { settled: false, value: undefined as T | undefined, error: undefined as unknown, promise: p };
  void p.then(
    (v) => {
      state.settled = true;
      state.value = v;
    },
    (e: unknown) => {
      state.settled = true;
      state.error = e;
    },
  );
  return state;
}
