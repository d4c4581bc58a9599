/** `http:` probes: a GET whose status (and optionally body) says whether the steady state holds. */
import type { HttpProbeSpec } from './spec.js';
import { httpGet, shownUrl } from './http-get.js';
import { oneLine, result, type Probe, type ProbeResult } from './probe.js';

export function httpProbe(spec: HttpProbeSpec): Probe {
  const b = spec.body;
  const matcher: { test(body: string): boolean; shown: string } | undefined =
    b === undefined
      ? undefined
      : 'regex' in b
        ? { test: (t) => new RegExp(b.regex, b.flags).test(t), shown: `/${b.regex}/${b.flags}` }
        : { test: (t) => t.includes(b.text), shown: JSON.stringify(b.text) };
  const where = shownUrl(spec.url);
  return {
    spec,
    async check(timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
      const started = performance.now();
      let status: number;
      let body: string;
      try {
        ({ status, body } = await httpGet(spec.url, timeoutMs, signal));
      } catch (err) {
        return result(started, false, `cannot reach ${where}: ${(err as Error).message}`, { unreachable: true });
      }
      if (!spec.status.includes(status))
        return result(
          started,
          false,
          `HTTP ${status} from ${where} (expected ${spec.status.join(' or ')})${body.trim() ? `: ${oneLine(body).slice(0, 120)}` : ''}`,
        );
      if (matcher !== undefined) {
        if (!matcher.test(body))
          return result(started, false, `HTTP ${status} from ${where}, but its body does not match ${matcher.shown}`);
      }
      return result(started, true, `HTTP ${status} from ${where}`);
    },
    close: () => Promise.resolve(),
  };
}
