/**
 * `--restart-command` → an argv template, parsed once at start. The command is never given to a
 * shell: it is split into words here (with the quoting rules of a POSIX shell, minus everything a
 * shell would expand), and a message's fields are put in as whole words only. So whatever a
 * message carries reaches the program as one argument and is never read as shell syntax.
 *
 * Words are separated by blanks; `'…'` is literal; `"…"` is literal except `\"` and `\\`; a
 * backslash outside quotes takes the next character literally. Shell syntax that would be silently
 * passed along as text — `| & ; < > ( )`, `$`, a backtick, a leading `~` — is an error, not an
 * argument, unless it is quoted: the user who wrote it expected a shell (see `--restart-shell`).
 */

/** The message fields a template may use: `{host}` and `{instance}`. */
export const FIELDS = ['host', 'instance'] as const;
export type Field = (typeof FIELDS)[number];

export type ArgvItem = string | { readonly field: Field };

export interface ArgvTemplate {
  /** The program: always a literal (a message never chooses what runs). */
  readonly program: string;
  readonly args: readonly ArgvItem[];
  /** Whether any argument is a field (for the start-up line). */
  readonly fields: readonly Field[];
}

/** A template that cannot be used; its message is one line, ready for the user. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
}

const PLACEHOLDER = /\{([A-Za-z][A-Za-z0-9_]*)\}/;
const SHELL_CHARS = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`']);

interface Word {
  readonly text: string;
  /** Some part of it was quoted or escaped (then `{host}` is still a field, but shell characters are fine). */
  readonly quoted: boolean;
}

/**
 * Split `text` into words like a POSIX shell would, without expanding anything. `what` names it in
 * errors; `shellSyntax: false` takes unquoted shell characters as text (a probe's options, where
 * no one expects a shell: `threshold=<0.05`, `body=/ok|ready/`).
 */
export function splitWords(text: string, what = 'the restart command', shellSyntax = true): string[] {
  return words(text, what, shellSyntax).map((w) => w.text);
}

function words(text: string, what = 'the restart command', shellSyntax = true): Word[] {
  const out: Word[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  const end = (): void => {
    if (inWord) out.push({ text: cur, quoted });
    cur = '';
    inWord = false;
    quoted = false;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      end();
      continue;
    }
    if (c === "'") {
      const close = text.indexOf("'", i + 1);
      if (close < 0) throw new TemplateError(`unbalanced ' in ${what} (at character ${i + 1})`);
      cur += text.slice(i + 1, close);
      inWord = quoted = true;
      i = close;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        const d = text[j]!;
        if (d === '\\' && (text[j + 1] === '"' || text[j + 1] === '\\')) {
          cur += text[++j];
        } else if (shellSyntax && (d === '$' || d === '`')) {
          throw new TemplateError(
            `${d} inside "…" in ${what} would be expanded by a shell, and no shell runs it: use '…' to pass it literally, or --restart-shell`,
          );
        } else {
          cur += d;
        }
      }
      if (j >= text.length) throw new TemplateError(`unbalanced " in ${what} (at character ${i + 1})`);
      inWord = quoted = true;
      i = j;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= text.length) throw new TemplateError(`${what} ends with a lone backslash`);
      cur += text[++i];
      inWord = quoted = true;
      continue;
    }
    if (shellSyntax && SHELL_CHARS.has(c)) {
      throw new TemplateError(
        `${c} in ${what} is shell syntax, and no shell runs it (it would be passed as a literal argument): quote it ('${c}') to mean it literally${what === 'the restart command' ? ', or use --restart-shell' : ''}`,
      );
    }
    if (shellSyntax && c === '~' && !inWord) {
      throw new TemplateError(`a leading ~ in ${what} is not expanded (no shell runs it): write the full path`);
    }
    cur += c;
    inWord = true;
  }
  end();
  return out;
}

/** Parse the template once; throws {@link TemplateError} with a one-line reason. */
export function parseArgvTemplate(text: string): ArgvTemplate {
  const ws = words(text);
  if (ws.length === 0) throw new TemplateError('the restart command is empty');
  const fields: Field[] = [];
  const items: ArgvItem[] = ws.map((w) => {
    const m = PLACEHOLDER.exec(w.text);
    if (m === null) return w.text;
    const name = m[1]!;
    if (!(FIELDS as readonly string[]).includes(name)) {
      throw new TemplateError(
        `unknown placeholder {${name}} in the restart command; known: ${FIELDS.map((f) => `{${f}}`).join(', ')}`,
      );
    }
    if (w.text !== m[0]) {
      if (/^[^@\s]+@\{host\}$/.test(w.text))
        throw new TemplateError(
          `{host} must be a whole argument of the restart command, not part of ${JSON.stringify(w.text)}: for ssh write -l ${w.text.slice(0, w.text.indexOf('@'))} {host}`,
        );
      throw new TemplateError(
        `{${name}} must be a whole argument of the restart command, not part of ${JSON.stringify(w.text)} (a field is only ever passed as one argument of its own; use --restart-shell with "$MAYHEM_${name.toUpperCase()}" to build strings)`,
      );
    }
    fields.push(name as Field);
    return { field: name as Field };
  });
  const [program, ...args] = items;
  if (typeof program !== 'string')
    throw new TemplateError(
      'the restart command must start with a program, not a placeholder (a message never chooses what runs)',
    );
  return { program, args, fields };
}

/** The argv for one restart: fields put in as whole arguments. */
export function renderArgs(template: ArgvTemplate, values: Readonly<Record<Field, string>>): string[] {
  return template.args.map((a) => (typeof a === 'string' ? a : values[a.field]));
}

/** `{host}`-style placeholders in `text` (for templates where they are not allowed). */
export function placeholdersIn(text: string): string[] {
  return [...text.matchAll(new RegExp(PLACEHOLDER.source, 'g'))].map((m) => m[0]);
}

/** Text with `{host}`/`{instance}` anywhere in it, split around them (a URL path, a container name). */
export type FieldText = readonly (string | { readonly field: Field })[];

/** Split `text` around its fields; an unknown `{name}` throws a TemplateError naming `what`. */
export function splitFields(text: string, what: string): FieldText {
  const parts: (string | { field: Field })[] = [];
  let last = 0;
  for (const ph of text.matchAll(new RegExp(PLACEHOLDER.source, 'g'))) {
    const name = ph[1]!;
    if (!(FIELDS as readonly string[]).includes(name))
      throw new TemplateError(
        `unknown placeholder {${name}} in ${what}; known: ${FIELDS.map((f) => `{${f}}`).join(', ')}`,
      );
    if (ph.index > last) parts.push(text.slice(last, ph.index));
    parts.push({ field: name as Field });
    last = ph.index + ph[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

/** Put the fields into `parts`, each passed through `encode`. */
export function fillFields(
  parts: FieldText,
  values: Readonly<Record<Field, string>>,
  encode: (v: string) => string = (v) => v,
): string {
  let out = '';
  for (const p of parts) out += typeof p === 'string' ? p : encode(values[p.field]);
  return out;
}
