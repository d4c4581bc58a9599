/**
 * Path globs for `LOOPWATCH_ONLY`, `LOOPWATCH_IGNORE`: `**` crosses directories, `*` and `?` do not.
 * A glob without a `/` matches the file's base name; one with a `/` matches the absolute path or the
 * path relative to the working directory (either way round), so `test/helpers/**` and `**\/helpers/*.js`
 * both do what they say.
 */
import path from 'node:path';

function toRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
        if (glob[i + 1] === '/') i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A compiled list of globs; `matches(file)` takes a path or a file URL. */
export class PathGlobs {
  readonly #res: { re: RegExp; base: boolean }[];
  readonly #cache = new Map<string, boolean>();

  constructor(globs: readonly string[]) {
    this.#res = globs.map((g) => ({ re: toRegExp(g.replace(/\\/g, '/')), base: !g.includes('/') }));
  }

  get empty(): boolean {
    return this.#res.length === 0;
  }

  matches(file: string): boolean {
    let v = this.#cache.get(file);
    if (v !== undefined) return v;
    const abs = (file.startsWith('file://') ? decodeURIComponent(new URL(file).pathname) : file).replace(/\\/g, '/');
    const rel = path.isAbsolute(abs) ? path.relative(process.cwd(), abs).replace(/\\/g, '/') : abs;
    const base = path.posix.basename(abs);
    v = this.#res.some(({ re, base: b }) => (b ? re.test(base) : re.test(abs) || re.test(rel)));
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(file, v);
    return v;
  }
}
