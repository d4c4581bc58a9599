/**
 * Each setting's zod schema and its "expected …" wording, from its entry in the table: flags and env
 * values arrive as strings, config-file values as JSON values, and both parse to the same value.
 */
import { z } from 'zod';
import { EXECUTORS, FLEET_POLICY, FORMATS, IN_DOUBT, LEASH, LEVELS, ON_LIMIT, PICK, REPORT_FORMATS } from './kinds.js';
import { readableFile } from './config-file.js';
import { probesSchema } from './probe-config.js';
import type { Setting } from './settings.js';
import { formatDuration, parseBytes, parseDuration, TIMER_MAX_MS } from './units.js';

// host:port, an IPv6 host in brackets.
const HOSTPORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;

export function allowed(s: Setting): string {
  const range = (lo?: number, hi?: number): string =>
    lo !== undefined && hi !== undefined
      ? ` from ${lo} to ${hi}`
      : lo !== undefined
        ? ` ≥ ${lo}`
        : hi !== undefined
          ? ` ≤ ${hi}`
          : '';
  switch (s.kind) {
    case 'int':
      return `a whole number${range(s.min, s.max)}`;
    case 'number':
      return `a number${range(s.min, s.max)}`;
    case 'duration':
      return `a duration like 250ms, 2s or 1m (a bare number is ms)${s.min !== undefined && s.min > 0 ? `, at least ${s.min}ms` : ''}${s.max !== undefined ? `${s.min !== undefined && s.min > 0 ? ' and' : ','} at most ${formatDuration(s.max)}` : ''}`;
    case 'bytes':
      return 'a size like 512MB or 1GiB (a bare number is bytes)';
    case 'bool':
      return 'true or false';
    case 'hostport':
      return 'host:port with a port from 1 to 65535, e.g. 127.0.0.1:8125';
    case 'listen':
      return 'host:port to listen on, port 0 to 65535 (0: any free port), e.g. 127.0.0.1:9464';
    case 'file':
      return 'the path of a readable file';
    case 'level':
      return LEVELS.join(', ');
    case 'format':
      return FORMATS.join(', ');
    case 'inDoubt':
      return IN_DOUBT.join(' or ');
    case 'executor':
      return EXECUTORS.join(', ');
    case 'leash':
      return LEASH.join(', ');
    case 'onLimit':
      return ON_LIMIT.join(' or ');
    case 'pick':
      return PICK.join(' or ');
    case 'reportFormat':
      return REPORT_FORMATS.join(', ');
    case 'fleetSettings':
      return FLEET_POLICY.join(' or ');
    case 'probes':
      return "probes like 'http:https://svc/health status=200'";
    case 'string':
      return 'a non-empty string';
  }
}

/** The zod type of one setting; raw values arrive as strings (flags, env) or JSON values (file). */
export function schemaOf(s: Setting): z.ZodType {
  const msg = { error: `expected ${allowed(s)}` };
  const num = (int: boolean) => {
    let n = z.number(msg).refine(Number.isFinite, msg);
    if (int) n = n.refine(Number.isInteger, msg);
    if (s.min !== undefined) {
      const min = s.min;
      n = n.refine((v) => v >= min, msg);
    }
    if (s.max !== undefined) {
      const max = s.max;
      n = n.refine((v) => v <= max, msg);
    }
    return n;
  };
  switch (s.kind) {
    case 'int':
      return z
        .union(
          [
            z.number(),
            z
              .string()
              .regex(/^\s*-?\d+\s*$/, msg)
              .transform(Number),
          ],
          msg,
        )
        .pipe(num(true));
    case 'number':
      return z
        .union(
          [
            z.number(),
            z
              .string()
              .regex(/^\s*-?\d+(\.\d+)?\s*$/, msg)
              .transform(Number),
          ],
          msg,
        )
        .pipe(num(false));
    case 'duration':
    case 'bytes': {
      const min = s.min ?? 0;
      const max = s.max ?? TIMER_MAX_MS;
      const parseText = s.kind === 'bytes' ? parseBytes : parseDuration;
      return z.union([z.number(), z.string()], msg).transform((v, ctx) => {
        const ms = typeof v === 'number' ? v : parseText(v);
        if (ms === undefined || !Number.isFinite(ms) || ms < min || ms > max) {
          ctx.addIssue({ code: 'custom', message: msg.error });
          return z.NEVER;
        }
        return ms;
      });
    }
    case 'bool':
      return z
        .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'], msg)], msg)
        .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
    case 'listen':
      return z
        .string(msg)
        .regex(HOSTPORT, msg)
        .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, msg);
    case 'hostport':
      return z
        .string(msg)
        .regex(HOSTPORT, msg)
        .refine((v) => {
          const port = Number(v.slice(v.lastIndexOf(':') + 1));
          return port >= 1 && port <= 65535;
        }, msg);
    case 'file':
      return z.string(msg).min(1, msg).refine(readableFile, msg);
    case 'level':
      return z.enum(LEVELS, msg);
    case 'format':
      return z.enum(FORMATS, msg);
    case 'inDoubt':
      return z.enum(IN_DOUBT, msg);
    case 'executor':
      return z.enum(EXECUTORS, msg);
    case 'leash':
      return z.union([z.boolean().transform((b) => (b ? 'true' : 'false')), z.enum(LEASH, msg)], msg);
    case 'onLimit':
      return z.enum(ON_LIMIT, msg);
    case 'pick':
      return z.enum(PICK, msg);
    case 'reportFormat':
      return z.enum(REPORT_FORMATS, msg);
    case 'fleetSettings':
      return z.enum(FLEET_POLICY, msg);
    case 'probes':
      return probesSchema();
    case 'string':
      return z.string(msg).min(1, msg);
  }
}
