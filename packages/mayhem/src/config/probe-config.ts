/** `--probe` and its companions → the probes' settings (plain data; see probes/spec.ts). */
import { z } from 'zod';
import { parseProbes, ProbeSpecError, type ProbeSettings } from '../probes/spec.js';
import type { Config } from './config.js';

/** Probes: flags (repeated), env (one per line) or file (a string or a list of strings and objects). */
export function probesSchema(): z.ZodType {
  return z.unknown().transform((v, ctx) => {
    const list = typeof v === 'string' ? v.split('\n').filter((l) => l.trim() !== '') : Array.isArray(v) ? v : [v];
    try {
      return parseProbes(list);
    } catch (err) {
      if (!(err instanceof ProbeSpecError)) throw err;
      ctx.addIssue({ code: 'custom', message: err.message });
      return z.NEVER;
    }
  });
}

/** The probes and how they run, as plain data (none: undefined). */
export function probeSettings(config: Config): ProbeSettings | undefined {
  if (config.probe === undefined || config.probe.length === 0) return undefined;
  return {
    probes: config.probe,
    everyMs: config.probeEvery,
    tolerance: config.probeTolerance,
    timeoutMs: config.probeTimeout,
    resume: config.probeResume,
  };
}
