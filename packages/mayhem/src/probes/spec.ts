/**
 * Probes as plain data (what `--probe` and the config file say; fleet-wide storage can keep them as
 * they are), and the syntax an SRE types:
 *
 *   http:https://svc/health status=200 body=/ok|ready/        body=text: a substring; /re/flags: a regex
 *   command:/usr/local/bin/check-db --primary code=0 env=PGHOST,PGPORT
 *   prometheus:http://prom:9090 query='sum(rate(http_errors_total[1m])) / sum(rate(http_requests_total[1m]))' threshold=<0.05
 *
 * Each also takes `name=` (in logs, the audit trail, metrics and the report) and `timeout=`. Words
 * are split like a shell would (quotes, backslashes), nothing expanded. A `command` probe's trailing
 * `name=`, `code=`, `timeout=`, `env=` words are its options; the rest is its argv (no shell; a
 * config-file object with an `argv` array passes any argument). In a JSON config file a probe is
 * that string, or an object: `{"http": "https://svc/health", "status": 200, "body": "/ok/"}`.
 */
import { TemplateError, splitWords } from '../executors/argv-template.js';
import { parseDuration } from '../config/units.js';

export type ThresholdOp = '<' | '<=' | '>' | '>=' | '==' | '!=';

interface Common {
  /** Unique among the probes: the label in metrics, the audit trail and the report. */
  readonly name: string;
  /** Overrides --probe-timeout. */
  readonly timeoutMs?: number | undefined;
}

export interface HttpProbeSpec extends Common {
  readonly kind: 'http';
  readonly url: string;
  /** Any of these statuses holds (default 200). */
  readonly status: readonly number[];
  readonly body?: { readonly regex: string; readonly flags: string } | { readonly text: string } | undefined;
}

export interface CommandProbeSpec extends Common {
  readonly kind: 'command';
  readonly argv: readonly string[];
  /** The exit code that holds (default 0). */
  readonly code: number;
  /** Environment variables passed on besides PATH, HOME and LANG (nothing else of mayhem's). */
  readonly env: readonly string[];
}

export interface PrometheusProbeSpec extends Common {
  readonly kind: 'prometheus';
  /** The server, e.g. http://prom:9090 (its /api/v1/query is asked). */
  readonly url: string;
  readonly query: string;
  readonly threshold: { readonly op: ThresholdOp; readonly value: number };
}

export type ProbeSpec = HttpProbeSpec | CommandProbeSpec | PrometheusProbeSpec;

/** The probes and how they run: plain data. */
export interface ProbeSettings {
  readonly probes: readonly ProbeSpec[];
  readonly everyMs: number;
  /** Failures in a row that fire the stop condition. */
  readonly tolerance: number;
  readonly timeoutMs: number;
  /** Resume the fleet when the probe that paused it holds again. */
  readonly resume: boolean;
}

/** A probe that cannot be used: one line. */
export class ProbeSpecError extends Error {
  override readonly name = 'ProbeSpecError';
}

const EXAMPLES = {
  http: 'http:https://svc/health status=200 body=/ok/',
  command: 'command:/usr/local/bin/check --x code=0',
  prometheus: "prometheus:http://prom:9090 query='sum(rate(errors_total[1m]))' threshold=<0.05",
} as const;
const KEYS = {
  http: ['name', 'timeout', 'status', 'body'],
  command: ['name', 'timeout', 'code', 'env'],
  prometheus: ['name', 'timeout', 'query', 'threshold'],
} as const;

/** Parse one probe: its string form or its config-file object. */
export function parseProbe(input: unknown): ProbeSpec {
  if (typeof input === 'string') return fromString(input);
  if (typeof input === 'object' && input !== null && !Array.isArray(input))
    return fromObject(input as Record<string, unknown>);
  throw new ProbeSpecError(`a probe is a string like '${EXAMPLES.http}' or an object`);
}

/** Parse every probe and give the unnamed ones a name each (unique). */
export function parseProbes(inputs: readonly unknown[]): ProbeSpec[] {
  const specs = inputs.map(parseProbe);
  const seen = new Set<string>();
  return specs.map((s) => {
    let name = s.name;
    for (let k = 2; seen.has(name); k++) {
      if (explicitNames.has(s)) throw new ProbeSpecError(`two probes are named ${JSON.stringify(s.name)}`);
      name = `${s.name}#${k}`;
    }
    seen.add(name);
    return name === s.name ? s : { ...s, name };
  });
}

// Probes whose name was given (a clash of given names is an error; of made-up ones, a suffix).
const explicitNames = new WeakSet<ProbeSpec>();

function fromString(text: string): ProbeSpec {
  const m = /^\s*(http|command|prometheus):(.*)$/s.exec(text);
  if (m === null)
    throw new ProbeSpecError(
      `${JSON.stringify(text)} does not start with http:, command: or prometheus: (e.g. '${EXAMPLES.http}')`,
    );
  const kind = m[1] as ProbeSpec['kind'];
  const rest = m[2]!;
  let words: string[];
  try {
    words = splitWords(rest, `the ${kind} probe`, kind === 'command');
  } catch (err) {
    if (err instanceof TemplateError) throw new ProbeSpecError(err.message);
    throw err;
  }
  const options: Record<string, string> = {};
  const take = (w: string): boolean => {
    const eq = w.indexOf('=');
    const key = w.slice(0, eq);
    if (eq <= 0 || !(KEYS[kind] as readonly string[]).includes(key)) return false;
    if (Object.hasOwn(options, key)) throw new ProbeSpecError(`${kind} probe: ${key}= is given twice`);
    options[key] = w.slice(eq + 1);
    return true;
  };
  if (kind === 'command') {
    while (words.length > 1 && take(words.at(-1)!)) words.pop();
    return fromObject({ ...options, command: words });
  }
  const [target, ...more] = words;
  for (const w of more)
    if (!take(w))
      throw new ProbeSpecError(
        `${kind} probe: unknown option ${JSON.stringify(w)} (expected ${KEYS[kind].map((k) => `${k}=`).join(', ')})`,
      );
  return fromObject({ ...options, [kind]: target ?? '' });
}

function fromObject(o: Record<string, unknown>): ProbeSpec {
  const kinds = (['http', 'command', 'prometheus'] as const).filter((k) => Object.hasOwn(o, k));
  if (kinds.length !== 1)
    throw new ProbeSpecError('a probe object has exactly one of "http", "command" or "prometheus"');
  const kind = kinds[0]!;
  for (const k of Object.keys(o))
    if (k !== kind && k !== 'argv' && !(KEYS[kind] as readonly string[]).includes(k))
      throw new ProbeSpecError(`${kind} probe: unknown key ${JSON.stringify(k)}`);
  const timeoutMs = o.timeout === undefined ? undefined : duration(kind, o.timeout);
  let spec: ProbeSpec;
  switch (kind) {
    case 'http': {
      const url = httpUrl('http', o.http);
      spec = {
        kind,
        name: named(o.name, shortUrl(url)),
        url,
        status: statuses(o.status),
        body: o.body === undefined ? undefined : body(o.body),
        timeoutMs,
      };
      break;
    }
    case 'command': {
      const argv = commandArgv(o.command);
      spec = {
        kind,
        name: named(o.name, argv[0]!.split('/').at(-1)!),
        argv,
        code: integer('command', 'code', o.code ?? 0, 0, 255),
        env: envNames(o.env),
        timeoutMs,
      };
      break;
    }
    case 'prometheus': {
      const url = httpUrl('prometheus', o.prometheus);
      if (typeof o.query !== 'string' || o.query.trim() === '')
        throw new ProbeSpecError(`prometheus probe needs query=, e.g. '${EXAMPLES.prometheus}'`);
      const query = o.query.trim();
      spec = {
        kind,
        name: named(o.name, query.length > 40 ? `${query.slice(0, 39)}…` : query),
        url,
        query,
        threshold: threshold(o.threshold),
        timeoutMs,
      };
      break;
    }
  }
  if (o.name !== undefined) explicitNames.add(spec);
  return spec;
}

function named(given: unknown, fallback: string): string {
  if (given === undefined) return fallback;
  if (typeof given !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:/#-]{0,79}$/.test(given))
    throw new ProbeSpecError(
      `probe name ${JSON.stringify(given)}: expected up to 80 letters, digits and . _ : / # - (a metric label)`,
    );
  return given;
}

function httpUrl(kind: string, v: unknown): string {
  if (typeof v !== 'string' || !/^https?:\/\//i.test(v))
    throw new ProbeSpecError(
      `${kind} probe needs an http:// or https:// URL, got ${JSON.stringify(v)} (e.g. '${EXAMPLES[kind as 'http']}')`,
    );
  try {
    return new URL(v).toString();
  } catch {
    throw new ProbeSpecError(`${kind} probe: ${JSON.stringify(v)} is not a valid URL`);
  }
}

/** `svc:8080/health`: a probe's default name (no scheme, query or credentials). */
function shortUrl(url: string): string {
  const u = new URL(url);
  return `${u.host}${u.pathname === '/' ? '' : u.pathname}`.slice(0, 80);
}

function statuses(v: unknown): number[] {
  if (v === undefined) return [200];
  const list = typeof v === 'number' ? [v] : typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : [v];
  return list.map((s) => integer('http', 'status', typeof s === 'string' ? s.trim() : s, 100, 599));
}

function body(v: unknown): HttpProbeSpec['body'] {
  if (typeof v !== 'string' || v === '') throw new ProbeSpecError('http probe: body= needs text or a /regex/');
  const m = /^\/(.*)\/([a-z]*)$/s.exec(v);
  if (m === null) return { text: v };
  try {
    new RegExp(m[1]!, m[2]);
  } catch (err) {
    throw new ProbeSpecError(`http probe: body=${v} is not a valid regular expression: ${(err as Error).message}`);
  }
  return { regex: m[1]!, flags: m[2]! };
}

function commandArgv(v: unknown): string[] {
  let argv = v;
  try {
    if (typeof v === 'string') argv = splitWords(v, 'the command probe');
  } catch (err) {
    if (err instanceof TemplateError) throw new ProbeSpecError(err.message);
    throw err;
  }
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string') || argv[0] === '')
    throw new ProbeSpecError(`command probe needs a program and its arguments, e.g. '${EXAMPLES.command}'`);
  return argv;
}

function envNames(v: unknown): string[] {
  if (v === undefined) return [];
  const list = typeof v === 'string' ? v.split(',').map((s) => s.trim()) : v;
  if (!Array.isArray(list) || !list.every((n) => typeof n === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(n)))
    throw new ProbeSpecError(`command probe: env= takes variable names separated by commas, e.g. env=PGHOST,PGPORT`);
  return list as string[];
}

function threshold(v: unknown): PrometheusProbeSpec['threshold'] {
  const m = typeof v === 'string' ? /^\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/i.exec(v) : null;
  if (m === null)
    throw new ProbeSpecError(
      `prometheus probe needs threshold= as an operator and a number, e.g. threshold=<0.05 (got ${JSON.stringify(v)})`,
    );
  return { op: m[1] as ThresholdOp, value: Number(m[2]) };
}

function duration(kind: string, v: unknown): number {
  const ms = typeof v === 'number' ? v : typeof v === 'string' ? parseDuration(v) : undefined;
  if (ms === undefined || !Number.isFinite(ms) || ms < 10 || ms > 600_000)
    throw new ProbeSpecError(`${kind} probe: timeout= expects a duration from 10ms to 10m, got ${JSON.stringify(v)}`);
  return ms;
}

function integer(kind: string, key: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ProbeSpecError(
      `${kind} probe: ${key}= expects a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`,
    );
  return n;
}

/** The probe as one line for logs and the report (no credentials: the URL's password is not shown). */
export function describeProbe(s: ProbeSpec): string {
  switch (s.kind) {
    case 'http': {
      const u = new URL(s.url);
      u.password = '';
      u.username = '';
      const b =
        s.body === undefined
          ? ''
          : 'regex' in s.body
            ? ` body=/${s.body.regex}/${s.body.flags}`
            : ` body=${s.body.text}`;
      return `http GET ${u.origin}${u.pathname} status=${s.status.join(',')}${b}`;
    }
    case 'command':
      return `command ${s.argv.join(' ')} code=${s.code}`;
    case 'prometheus':
      return `prometheus ${new URL(s.url).origin} ${s.query} ${s.threshold.op} ${s.threshold.value}`;
  }
}

/**
 * A probe as its config-file object, which {@link parseProbe} reads back to the same spec: how the
 * fleet's settings keep probes in the database.
 */
export function probeToObject(s: ProbeSpec): Record<string, unknown> {
  const common = { name: s.name, ...(s.timeoutMs !== undefined ? { timeout: s.timeoutMs } : {}) };
  switch (s.kind) {
    case 'http':
      return {
        http: s.url,
        ...common,
        status: [...s.status],
        ...(s.body === undefined ? {} : { body: 'regex' in s.body ? `/${s.body.regex}/${s.body.flags}` : s.body.text }),
      };
    case 'command':
      return { command: [...s.argv], ...common, code: s.code, env: [...s.env] };
    case 'prometheus':
      return { prometheus: s.url, ...common, query: s.query, threshold: `${s.threshold.op}${s.threshold.value}` };
  }
}
