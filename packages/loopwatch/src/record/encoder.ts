/**
 * The recording's hot half: events encoded into one in-memory buffer as they happen (a type byte, a
 * time delta and a few varints each), strings and call sites interned as ids. Nothing here formats a
 * frame or touches the file: a new site is resolved through source maps once, when its definition is
 * written at the next flush.
 */
import { ByteSink } from './bytes.js';
import { R, siteText } from './format.js';
import { isBuiltinSite } from '../model/call-sites.js';
import { isInternalFile, siteToFrame } from '../source/frames.js';

/** An interned string or site. */
export interface Def {
  readonly id: number;
  text: string;
  /** The buffer (flush generation) that used it last. */
  gen: number;
  /** A site not resolved yet. */
  site?: NodeJS.CallSite | undefined;
}

const utf8 = new TextEncoder();

export class RecordEncoder {
  /** Where records go (the keyframe swaps in its own for a moment). */
  sink = new ByteSink();
  /** Clock ms of the last record (the time deltas' base). */
  lastMs: number;
  /** `lastMs` when the current buffer began: its chunk's base. */
  baseMs: number;
  /** The current buffer's generation, stamped on every definition it uses. */
  gen = 1;
  #nextId = 1;
  readonly #strings = new Map<string, Def>();
  readonly #sites = new Map<string, Map<number, Def>>();
  #pending: Def[] = [];

  constructor(nowMs: number) {
    this.lastMs = nowMs;
    this.baseMs = nowMs;
  }

  /** Starts a record: type and time delta (room for `fields` varints). */
  head(type: number, nowMs: number, fields: number): void {
    const s = this.sink;
    s.ensure(2 + 10 * (fields + 1));
    s.u8(type);
    let dt = Math.round((nowMs - this.lastMs) * 1000);
    if (dt < 0) dt = 0;
    this.lastMs += dt / 1000;
    s.varint(dt);
  }

  str(text: string): number {
    let d = this.#strings.get(text);
    if (d === undefined) {
      d = { id: this.#nextId++, text, gen: this.gen };
      this.#strings.set(text, d);
      this.#pending.push(d);
    } else d.gen = this.gen;
    return d.id;
  }

  /** The id of a raw call site (resolved at flush); 0 for none. */
  site(cs: NodeJS.CallSite | undefined): number {
    if (cs === undefined) return 0;
    const file = cs.getFileName();
    if (!file) return 0;
    const pos = (cs.getLineNumber() ?? 0) * 0x100000 + (cs.getColumnNumber() ?? 0);
    let byPos = this.#sites.get(file);
    if (byPos === undefined) this.#sites.set(file, (byPos = new Map<number, Def>()));
    let d = byPos.get(pos);
    if (d === undefined) {
      d = { id: this.#nextId++, text: '', gen: this.gen, site: cs };
      byPos.set(pos, d);
      this.#pending.push(d);
    } else d.gen = this.gen;
    return d.id;
  }

  /** The first of the program's own sites from `from` on (builtins, node and loopwatch skipped). */
  userSite(sites: readonly NodeJS.CallSite[] | undefined, from = 0): number {
    if (sites === undefined) return 0;
    for (let i = from; i < sites.length; i++) {
      const cs = sites[i]!;
      if (isBuiltinSite(cs) || isInternalFile(cs.getFileName() ?? '')) continue;
      return this.site(cs);
    }
    return 0;
  }

  /** A string written in place (per-unit keys: interning them would only grow the tables). */
  inline(text: string): void {
    const s = this.sink;
    s.ensure(10 + text.length * 3);
    const { written } = utf8.encodeInto(text, s.buf.subarray(s.pos + 5));
    // Length first: 5 bytes of room were left; move the text back behind the real varint.
    const start = s.pos + 5;
    s.varint(written);
    s.buf.copyWithin(s.pos, start, start + written);
    s.pos += written;
  }

  /** Definitions made since the last call, written as `STR` records (sites resolved now). */
  takeDefs(out: ByteSink): Def[] {
    const defs = this.#pending;
    this.#pending = [];
    for (const d of defs) if (d.site !== undefined) resolve(d);
    writeDefs(out, defs);
    return defs;
  }

  /**
   * A new slot begins: every slot defines the strings its records use, so it reads without the slots
   * the ring drops. Definitions the buffer of generation `gen` used (and did not just define) are
   * returned, to be written again with it; all others are forgotten (their next use defines them anew).
   */
  newSlot(gen: number, justDefined: ReadonlySet<Def>): Def[] {
    const carried: Def[] = [];
    const sweep = <K>(m: Map<K, Def>): void => {
      for (const [k, d] of m) {
        if (d.gen !== gen) m.delete(k);
        else if (!justDefined.has(d)) carried.push(d);
      }
    };
    sweep(this.#strings);
    for (const [file, byPos] of this.#sites) {
      sweep(byPos);
      if (byPos.size === 0) this.#sites.delete(file);
    }
    return carried;
  }

  /** Everything is dropped (a lost buffer): later uses define their strings again. */
  forgetAll(): void {
    this.#strings.clear();
    this.#sites.clear();
    this.#pending = [];
  }

  get tables(): number {
    let n = this.#strings.size;
    for (const m of this.#sites.values()) n += m.size;
    return n;
  }
}

function resolve(d: Def): void {
  const cs = d.site!;
  d.site = undefined;
  try {
    const f = siteToFrame(cs);
    d.text = siteText(f.functionName, f.file, f.line, f.column);
  } catch {
    d.text = siteText('<unknown>', cs.getFileName() ?? '?', cs.getLineNumber() ?? 0, cs.getColumnNumber() ?? 0);
  }
}

/** `STR` records for `defs` (time delta 0). */
export function writeDefs(out: ByteSink, defs: readonly Def[]): void {
  for (const d of defs) {
    const bytes = utf8.encode(d.text);
    out.ensure(22 + bytes.length);
    out.u8(R.STR);
    out.varint(0);
    out.varint(d.id);
    out.varint(bytes.length);
    out.bytes(bytes);
  }
}
