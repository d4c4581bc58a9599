/** Probe specs → probes. The one place that knows every probe kind. */
import { commandProbe } from './command.js';
import { httpProbe } from './http.js';
import type { Probe } from './probe.js';
import { prometheusProbe } from './prometheus.js';
import type { ProbeSpec } from './spec.js';

export function openProbe(spec: ProbeSpec, env: NodeJS.ProcessEnv = process.env): Probe {
  switch (spec.kind) {
    case 'http':
      return httpProbe(spec);
    case 'command':
      return commandProbe(spec, env);
    case 'prometheus':
      return prometheusProbe(spec);
  }
}
