/**
 * Secrets out of every line we print: the one helper used wherever a URL is logged or echoed (the
 * start line, connect errors, config errors, and as a last net the logger and the CLI's stderr).
 *
 *   redactSecrets('cannot connect to nats://admin:s3cret@h:4222')  →  'cannot connect to nats://admin:***@h:4222'
 *   redactSecrets('postgres://app@db/x?password=hunter2')         →  'postgres://app@db/x?password=***'
 *
 * Userinfo: the password is replaced; a lone user name is kept for PostgreSQL (it is a role name)
 * and replaced for every other scheme (`nats://TOKEN@host` carries a token there). Query
 * parameters whose name says password, secret, token, key or credentials are replaced too.
 */

const MASK = '***';
// scheme://, then the rest of the URL up to whitespace, a quote, or the next URL of a comma list.
const URL_RE = /\b([A-Za-z][A-Za-z0-9+.-]*):\/\/((?:(?!,[A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s"'`<>])*)/g;
const SECRET_PARAM_RE = /pass|pwd|secret|token|key|cred|auth|sig/i;

/** `text` with the credentials of every URL in it replaced by `***`. Cheap when there is no URL. */
export function redactSecrets(text: string): string {
  if (!text.includes('://')) return text;
  return text.replace(URL_RE, (_all, scheme: string, rest: string) => `${scheme}://${redactRest(scheme, rest)}`);
}

function redactRest(scheme: string, rest: string): string {
  // The authority ends at the first '/', '?' or '#' after the last '@' (a password may hold '/').
  let out = rest;
  const at = out.lastIndexOf('@', endOfAuthority(out));
  if (at >= 0) {
    const userinfo = out.slice(0, at);
    const colon = userinfo.indexOf(':');
    const keepUser = /^postgres(?:ql)?$/i.test(scheme);
    const masked = colon >= 0 ? `${userinfo.slice(0, colon)}:${MASK}` : keepUser ? userinfo : MASK;
    out = `${masked}${out.slice(at)}`;
  }
  const q = out.indexOf('?');
  if (q < 0) return out;
  const hash = out.indexOf('#', q);
  const query = out.slice(q + 1, hash < 0 ? undefined : hash);
  const redacted = query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      return SECRET_PARAM_RE.test(decodeSafely(pair.slice(0, eq))) ? `${pair.slice(0, eq)}=${MASK}` : pair;
    })
    .join('&');
  return `${out.slice(0, q + 1)}${redacted}${hash < 0 ? '' : out.slice(hash)}`;
}

/** Where the authority (and userinfo) can end: the last '@' decides, so scan up to the query. */
function endOfAuthority(rest: string): number {
  const q = rest.indexOf('?');
  return q < 0 ? rest.length : q;
}

function decodeSafely(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** One URL (or comma list of URLs), redacted: for fields such as `db` and `broker` in log lines. */
export function redactUrl(url: string): string {
  return redactSecrets(url);
}
