/**
 * TEMPORARY bridge to the stall watchdog and loop-lag monitor (built in parallel): loads them lazily so
 * debug instrumentation works whether or not they are present. Replaced by static imports once they land.
 */
import type { LoopLagFigures, Report } from '../model/report.js';

interface WatchdogModule { startStallWatchdog(opts: { thresholdMs: number; emit: (r: Report) => void; format?: 'text' | 'json' }): { stop(): Promise<void> } }
export interface LoopLagOptions { intervalMs?: number; statsd?: string | object; registry?: unknown; onSample?: (f: LoopLagFigures) => void; emit?: (r: Report) => void; prefix?: string }
interface LagModule { monitorLoopLag(opts: LoopLagOptions): { stop(): void } }

async function load<T>(name: string): Promise<T | undefined> {
  try {
    return (await import(name)) as T;
  } catch {
    return undefined;
  }
}

export function startStallWatchdog(opts: { thresholdMs: number; emit: (r: Report) => void; format?: 'text' | 'json' }): { stop(): Promise<void> } {
  const started = load<WatchdogModule>('./watchdog.js').then((m) => m?.startStallWatchdog(opts));
  return { stop: async () => { await (await started)?.stop(); } };
}

export function monitorLoopLag(opts: LoopLagOptions): { stop(): void } {
  let handle: { stop(): void } | undefined;
  let stopped = false;
  void load<LagModule>('./loop-lag.js').then((m) => {
    if (!stopped) handle = m?.monitorLoopLag(opts);
  });
  return { stop: () => { stopped = true; handle?.stop(); } };
}
