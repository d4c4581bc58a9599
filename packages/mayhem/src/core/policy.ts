/**
 * Safety rails, as pure rules (no I/O, no clock of their own): which hosts may be restarted at all,
 * and when. The pipeline asks them before any executor runs; what they decide is recorded.
 *
 *   --allow-hosts 'web-*.example.net,db-?.example.net'   only these (default: every host)
 *   --deny-hosts  'db-*'                                 never these; deny wins over allow
 *   --window      'Mon-Fri 09:00-17:00 Europe/Berlin'    only inside; several joined with ';'
 */

/** A rail's setting that cannot be used: one line, for the CLI (exit 2). */
export class PolicyError extends Error {
  override readonly name = 'PolicyError';
}

/** `*` any run of characters, `?` one; case-insensitive, as hostnames are. */
export function globToRegExp(glob: string): RegExp {
  const source = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 'i');
}

/** Which hosts may be restarted: allow-list (empty = all) minus deny-list. */
export class HostFilter {
  readonly #allow: { glob: string; re: RegExp }[];
  readonly #deny: { glob: string; re: RegExp }[];

  constructor(allow: readonly string[], deny: readonly string[]) {
    const compile = (globs: readonly string[], what: string): { glob: string; re: RegExp }[] =>
      globs.map((glob) => {
        const g = glob.trim();
        if (g === '' || /\s/.test(g))
          throw new PolicyError(
            `invalid ${what} pattern ${JSON.stringify(glob)}: expected a hostname glob like web-*.example.net`,
          );
        return { glob: g, re: globToRegExp(g) };
      });
    this.#allow = compile(allow, '--allow-hosts');
    this.#deny = compile(deny, '--deny-hosts');
  }

  /** True when no rule is set (every host allowed). */
  get open(): boolean {
    return this.#allow.length === 0 && this.#deny.length === 0;
  }

  /** `undefined` when `host` may be restarted, else why not (one line, for the record). */
  refusal(host: string): string | undefined {
    const denied = this.#deny.find((d) => d.re.test(host));
    if (denied) return `denied by policy: ${host} matches --deny-hosts ${denied.glob}`;
    if (this.#allow.length > 0 && !this.#allow.some((a) => a.re.test(host)))
      return `denied by policy: ${host} matches no --allow-hosts pattern`;
    return undefined;
  }
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const WEEKDAY_INDEX: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

interface Span {
  /** Days of the week it starts on (0 = Sunday). */
  readonly days: ReadonlySet<number>;
  /** Minutes after local midnight; `end <= start` crosses midnight into the next day. */
  readonly start: number;
  readonly end: number;
}

/**
 * When restarts may happen: one or more weekly spans in one time zone, e.g.
 * `Mon-Fri 09:00-17:00 Europe/Berlin` or `Mon-Thu 22:00-02:00 UTC; Sat,Sun 10:00-12:00 UTC`.
 * Days: `Mon-Fri`, `Sat,Sun`, `daily`. Times are local to the zone (IANA name; default UTC),
 * so daylight-saving changes move the window with the wall clock, as people expect.
 */
export class RestartWindow {
  readonly text: string;
  readonly #spans: Span[];
  readonly #parts: Intl.DateTimeFormat;
  #nextOpen: { from: number; at: number } | undefined;

  private constructor(text: string, spans: Span[], timeZone: string) {
    this.text = text;
    this.#spans = spans;
    this.#parts = new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
  }

  static parse(text: string): RestartWindow {
    const bad = (why: string): PolicyError =>
      new PolicyError(
        `invalid --window ${JSON.stringify(text)}: ${why} (expected e.g. 'Mon-Fri 09:00-17:00 Europe/Berlin')`,
      );
    let zone: string | undefined;
    const spans: Span[] = [];
    for (const part of text
      .split(';')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const m = /^(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?$/.exec(part);
      if (!m) throw bad(`cannot read ${JSON.stringify(part)}`);
      const [, dayText, h1, m1, h2, m2, tz] = m as unknown as [
        string,
        string,
        string,
        string,
        string,
        string,
        string | undefined,
      ];
      const start = minutes(Number(h1), Number(m1));
      const end = minutes(Number(h2), Number(m2), true);
      if (start === undefined || end === undefined)
        throw bad(`a time is not between 00:00 and 24:00 in ${JSON.stringify(part)}`);
      if (start === end) throw bad(`an empty span in ${JSON.stringify(part)}`);
      const days = parseDays(dayText);
      if (days === undefined) throw bad(`unknown days ${JSON.stringify(dayText)}`);
      const thisZone = tz ?? zone ?? 'UTC';
      if (zone !== undefined && thisZone !== zone) throw bad('all spans must use one time zone');
      zone = thisZone;
      spans.push({ days, start, end });
    }
    if (spans.length === 0) throw bad('no span');
    try {
      return new RestartWindow(text, spans, zone ?? 'UTC');
    } catch {
      throw bad(`unknown time zone ${JSON.stringify(zone)}`);
    }
  }

  /** Whether restarts may happen at `at` (ms since epoch). */
  isOpen(at: number): boolean {
    const { day, minute } = this.#local(at);
    return this.#spans.some((s) => {
      if (s.end > s.start) return s.days.has(day) && minute >= s.start && minute < s.end;
      // Across midnight: the evening of a listed day, or the small hours after it.
      return (s.days.has(day) && minute >= s.start) || (s.days.has((day + 6) % 7) && minute < s.end);
    });
  }

  /** Milliseconds from `at` until the window next opens (0 when it is open). */
  msUntilOpen(at: number): number {
    if (this.isOpen(at)) return 0;
    const cached = this.#nextOpen;
    if (cached !== undefined && cached.from <= at && at < cached.at) return cached.at - at;
    // Walk the minutes: at most a week of them, and the answer is kept until it has passed.
    let t = Math.floor(at / 60_000) * 60_000 + 60_000;
    for (let i = 0; i < 8 * 24 * 60; i++, t += 60_000) {
      if (this.isOpen(t)) {
        this.#nextOpen = { from: at, at: t };
        return t - at;
      }
    }
    return Number.POSITIVE_INFINITY; // unreachable for a parsed window
  }

  #local(at: number): { day: number; minute: number } {
    let day = 0;
    let hour = 0;
    let minute = 0;
    for (const p of this.#parts.formatToParts(at)) {
      if (p.type === 'weekday') day = WEEKDAY_INDEX[p.value] ?? 0;
      else if (p.type === 'hour') hour = Number(p.value);
      else if (p.type === 'minute') minute = Number(p.value);
    }
    return { day, minute: hour * 60 + minute };
  }
}

/** Minutes after midnight; `24:00` only as an end (the midnight that ends the day). */
function minutes(h: number, m: number, isEnd = false): number | undefined {
  if (m > 59 || h > 24 || (h === 24 && (m !== 0 || !isEnd))) return undefined;
  return h * 60 + m;
}

function parseDays(text: string): Set<number> | undefined {
  const t = text.toLowerCase();
  if (t === 'daily' || t === '*') return new Set([0, 1, 2, 3, 4, 5, 6]);
  const out = new Set<number>();
  for (const item of t.split(',')) {
    const range = item.split('-');
    const idx = range.map((d) => DAYS.indexOf(d.slice(0, 3) as (typeof DAYS)[number]));
    if (idx.some((i) => i < 0) || range.some((d) => d.length < 3) || idx.length > 2) return undefined;
    if (idx.length === 1) out.add(idx[0]!);
    else
      for (let d = idx[0]!; ; d = (d + 1) % 7) {
        out.add(d);
        if (d === idx[1]) break;
      }
  }
  return out;
}
