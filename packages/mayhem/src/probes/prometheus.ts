/**
 * `prometheus:` probes: an instant query against a Prometheus HTTP API (`GET /api/v1/query`) whose
 * one number is compared with a threshold. A query that fails, returns no series, several series,
 * or a non-number is a failed check with the reason (aggregate it: `sum(...)`, `max(...)`).
 */
import type { PrometheusProbeSpec, ThresholdOp } from './spec.js';
import { httpGet, shownUrl } from './http-get.js';
import { oneLine, result, type Probe, type ProbeResult } from './probe.js';

interface ApiAnswer {
  status?: string;
  error?: string;
  data?: { resultType?: string; result?: unknown };
}

export function prometheusProbe(spec: PrometheusProbeSpec): Probe {
  const base = spec.url.replace(/\/+$/, '');
  const url = `${base}/api/v1/query?query=${encodeURIComponent(spec.query)}`;
  const where = shownUrl(`${base}/api/v1/query`);
  const want = `${spec.threshold.op} ${spec.threshold.value}`;
  return {
    spec,
    async check(timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
      const started = performance.now();
      let status: number;
      let body: string;
      try {
        ({ status, body } = await httpGet(url, timeoutMs, signal));
      } catch (err) {
        return result(started, false, `cannot reach ${where}: ${(err as Error).message}`, { unreachable: true });
      }
      let answer: ApiAnswer;
      try {
        answer = JSON.parse(body) as ApiAnswer;
      } catch {
        return result(
          started,
          false,
          `${where} answered HTTP ${status} that is not Prometheus JSON: ${oneLine(body).slice(0, 80)}`,
          {
            unreachable: true,
          },
        );
      }
      if (answer.status !== 'success')
        return result(started, false, `the query failed (HTTP ${status}): ${answer.error ?? 'no error given'}`, {
          unreachable: true,
        });
      const value = numberOf(answer.data);
      if (typeof value === 'string') return result(started, false, `the query ${value}`, { unreachable: true });
      if (Number.isNaN(value)) return result(started, false, 'the query returned NaN', { value });
      const ok = holds(value, spec.threshold.op, spec.threshold.value);
      return result(started, ok, `value ${value} ${ok ? 'is' : 'is not'} ${want}`, { value });
    },
    close: () => Promise.resolve(),
  };
}

/** The one number of an instant query's result, or why there is none. */
function numberOf(data: ApiAnswer['data']): number | string {
  const type = data?.resultType;
  const r = data?.result;
  let sample: unknown;
  if (type === 'scalar') sample = r;
  else if (type === 'vector' && Array.isArray(r)) {
    if (r.length === 0) return 'returned no series';
    if (r.length > 1) return `returned ${r.length} series, not one (aggregate it, e.g. sum(...) or max(...))`;
    sample = (r[0] as { value?: unknown }).value;
  } else
    return `returned a ${String(type ?? 'missing')} result, not a single number (a vector of one series or a scalar)`;
  const v = Array.isArray(sample) ? (sample[1] as unknown) : undefined;
  if (typeof v !== 'string') return 'returned a sample without a value';
  return Number(v);
}

function holds(v: number, op: ThresholdOp, t: number): boolean {
  switch (op) {
    case '<':
      return v < t;
    case '<=':
      return v <= t;
    case '>':
      return v > t;
    case '>=':
      return v >= t;
    case '==':
      return v === t;
    case '!=':
      return v !== t;
  }
}
