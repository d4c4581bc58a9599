/**
 * Event-loop lag and utilisation every interval (report kind `loop-lag`, the aiodebug
 * `monitor_loop_lag` twin): to the log, StatsD and Prometheus. Avoids the usual exporters' traps:
 * - `monitorEventLoopDelay` cannot sample during a stall (it records one late sample after it), so
 *   stalls measured by the watchdog's heartbeat are fed in as the delays work scheduled during them saw;
 * - the histogram is reset every interval and its resolution (included in every sample) subtracted;
 * - `reset()` also drops the histogram's next sample, so a stall right after a reset would vanish: without
 *   a watchdog the monitor times stalls itself with a cheap unref'd beat;
 * - utilisation is the delta between two `eventLoopUtilization()` snapshots, not cumulative since start.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { LoopLagFigures, LoopLagOutput, Report } from '../model/report.js';
import { errorText } from '../model/error-text.js';
import { defaultStallFeed, type StallFeed, type StallEvent } from './watchdog-feed.js';

/** Options of {@link monitorLoopLag}. */
export interface LoopLagOptions {
  /** Reporting interval, ms; default 10 000. */
  readonly intervalMs?: number;
  /** Where the figures are shipped (StatsD, Prometheus), each once it is set up. */
  readonly outputs?: readonly Promise<LoopLagOutput>[];
  /** Called with the figures of every interval. */
  readonly onSample?: (f: LoopLagFigures) => void;
  /** Receives a `loop-lag` report every interval (the log). */
  readonly emit?: (r: Report) => void;
  /** `monitorEventLoopDelay` resolution, ms; default 10. */
  readonly resolutionMs?: number;
  /** One-line problems (a missing optional package); default: a line on stderr. */
  readonly onError?: (message: string) => void;
  /** Where the watchdog publishes measured stalls; default the shared feed. */
  readonly feed?: StallFeed;
}

/** A running loop-lag monitor. */
export interface LoopLagMonitor {
  stop(): void;
  /** Settles once the StatsD/Prometheus outputs are set up (or failed, reported through `onError`). */
  readonly ready: Promise<void>;
  /** Closes the current interval now and delivers its figures (also what the timer does). */
  sample(): LoopLagFigures;
}

/** Delay samples a stall stands for: work that became due at any moment during it waited until its end. */
const MAX_STALL_SAMPLES = 10_000;

interface Weighted {
  readonly ms: number;
  readonly weight: number;
}

/** Percentile `q` (0..100) of weighted values sorted by `ms`. */
function percentileOf(sorted: readonly Weighted[], total: number, q: number): number {
  const target = (q / 100) * total;
  let acc = 0;
  for (const w of sorted) {
    acc += w.weight;
    if (acc >= target && w.weight > 0) return w.ms;
  }
  return sorted[sorted.length - 1]?.ms ?? 0;
}

/** What {@link mergeFigures} reads of `monitorEventLoopDelay` (ns, resolution included). */
export interface HistogramFigures {
  readonly count: number;
  readonly maxNs: number;
  readonly minNs?: number;
  readonly meanNs?: number;
  readonly stddevNs?: number;
  /** percentile → ns */
  readonly percentiles: ReadonlyMap<number, number>;
}

/** Delay figures of one interval, ms. */
export interface MergedFigures {
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly meanMs: number;
  readonly stddevMs: number;
}

/**
 * Merges the histogram (as its percentile steps) with the stalls' delays. Exported for tests.
 * Mean and standard deviation combine the histogram's exact moments with the stalls' samples (the two
 * populations pooled), not the coarser percentile steps.
 */
export function mergeFigures(hist: HistogramFigures, stalls: readonly number[], resolutionMs: number): MergedFigures {
  const points: Weighted[] = [];
  const res = (ns: number): number => Math.max(0, ns / 1e6 - resolutionMs);
  // Without the histogram's own mean, its percentile steps stand in for it.
  let stepSum = 0;
  if (hist.count > 0) {
    let prev = 0;
    for (const [p, ns] of [...hist.percentiles].sort((a, b) => a[0] - b[0])) {
      const w = { ms: res(ns), weight: ((p - prev) / 100) * hist.count };
      points.push(w);
      stepSum += w.ms * w.weight;
      prev = p;
    }
  }
  let stallMax = 0;
  let stallMin = Infinity;
  let stallN = 0;
  let stallSum = 0;
  let stallSq = 0;
  for (const d of stalls) {
    stallMax = Math.max(stallMax, d);
    const n = Math.max(1, Math.min(MAX_STALL_SAMPLES, Math.floor(d / resolutionMs)));
    const step = d / n;
    for (let k = 0; k < n; k++) {
      const ms = d - k * step;
      points.push({ ms, weight: 1 });
      stallMin = Math.min(stallMin, ms);
      stallSum += ms;
      stallSq += ms * ms;
    }
    stallN += n;
  }
  points.sort((a, b) => a.ms - b.ms);
  const total = points.reduce((s, w) => s + w.weight, 0);
  if (total === 0) return { p50Ms: 0, p90Ms: 0, p99Ms: 0, minMs: 0, maxMs: 0, meanMs: 0, stddevMs: 0 };
  const histMax = hist.count > 0 ? res(hist.maxNs) : 0;
  const histMin = hist.count > 0 ? res(hist.minNs ?? hist.percentiles.get(0) ?? 0) : Infinity;
  const hMean = hist.count > 0 ? (hist.meanNs !== undefined ? res(hist.meanNs) : stepSum / hist.count) : 0;
  const hVar = hist.count > 0 && hist.stddevNs !== undefined ? (hist.stddevNs / 1e6) ** 2 : 0;
  const n = hist.count + stallN;
  const mean = (hist.count * hMean + stallSum) / n;
  const variance = Math.max(0, (hist.count * (hVar + hMean * hMean) + stallSq) / n - mean * mean);
  return {
    p50Ms: percentileOf(points, total, 50),
    p90Ms: percentileOf(points, total, 90),
    p99Ms: percentileOf(points, total, 99),
    minMs: Math.min(histMin, stallMin),
    maxMs: Math.max(histMax, stallMax),
    meanMs: mean,
    stddevMs: Math.sqrt(variance),
  };
}

const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

/**
 * Measures event-loop delay (p50/p99/max) and utilisation every `intervalMs` and ships the figures
 * to `onSample`, `emit` (the log), StatsD and/or a Prometheus registry. The timer is unref'd.
 */
export function monitorLoopLag(opts: LoopLagOptions = {}): LoopLagMonitor {
  const intervalMs = opts.intervalMs ?? 10_000;
  const resolutionMs = opts.resolutionMs ?? 10;
  const onError = opts.onError ?? ((m: string) => void process.stderr.write(`${m}\n`));
  const eld = monitorEventLoopDelay({ resolution: resolutionMs });
  eld.enable();
  let prevElu: EventLoopUtilization = performance.eventLoopUtilization();
  let intervalStart = performance.now();
  let stalls: StallEvent[] = [];
  const feed = opts.feed ?? defaultStallFeed;
  const unsubscribe = feed.subscribe((e) => stalls.push(e));
  // Fallback stall timing when no watchdog runs (the watchdog's heartbeat is the better source).
  const beatMs = 50;
  let lastBeat = performance.now();
  const beat = (): void => {
    const now = performance.now();
    const late = now - lastBeat - beatMs;
    lastBeat = now;
    if (late >= beatMs * 2 && !feed.hasSource) stalls.push({ startMs: now - late, endMs: now, durationMs: late });
  };
  const beatTimer = setInterval(beat, beatMs);
  beatTimer.unref();

  const targets: LoopLagOutput[] = [];
  let stopped = false;
  const ready = Promise.allSettled(opts.outputs ?? []).then((results) => {
    for (const r of results) {
      if (r.status === 'rejected') onError(errorText(r.reason));
      else if (stopped) r.value.close();
      else targets.push(r.value);
    }
  });

  const sample = (): LoopLagFigures => {
    // A stall that just ended may not have been timed by the heartbeat yet: settle it into this interval.
    feed.poll();
    beat();
    const now = performance.now();
    const took = stalls;
    stalls = [];
    const merged = mergeFigures(
      {
        count: eld.count,
        maxNs: eld.max,
        minNs: eld.min,
        meanNs: eld.mean,
        stddevNs: eld.stddev,
        percentiles: eld.percentiles,
      },
      took.map((s) => s.durationMs),
      resolutionMs,
    );
    eld.reset();
    const elu = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(elu, prevElu).utilization;
    prevElu = elu;
    const figures: LoopLagFigures = {
      intervalMs: Math.round(now - intervalStart),
      p50Ms: round(merged.p50Ms),
      p99Ms: round(merged.p99Ms),
      maxMs: round(merged.maxMs),
      p90Ms: round(merged.p90Ms),
      minMs: round(merged.minMs),
      meanMs: round(merged.meanMs),
      stddevMs: round(merged.stddevMs),
      utilization: round(Math.min(1, Math.max(0, utilization)), 4),
      stalls: took.length,
    };
    intervalStart = now;
    try {
      opts.onSample?.(figures);
      opts.emit?.({ kind: 'loop-lag', time: Date.now(), lag: figures });
      for (const t of targets) t.write(figures);
    } catch {
      // Outputs are best effort; the next interval tries again.
    }
    return figures;
  };

  const timer = setInterval(sample, intervalMs);
  timer.unref();
  return {
    ready,
    sample,
    stop(): void {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      clearInterval(beatTimer);
      unsubscribe();
      eld.disable();
      for (const t of targets.splice(0)) t.close();
    },
  };
}
