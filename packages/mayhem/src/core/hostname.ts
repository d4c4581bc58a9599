/**
 * Host names: what a request's `host` and `instanceName` may be, and `--host-template`, which makes
 * a host from the instance name when a request carries none (default `{instance}.example.net`, the
 * article's mock).
 */

/** A DNS name: dot-separated labels of letters, digits and '-' (not at either end), 253 characters at most. */
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
export const MAX_HOSTNAME = 253;

export function isHostname(text: string): boolean {
  return text.length <= MAX_HOSTNAME && HOSTNAME_RE.test(text);
}

/** The article's: every request's host is `<instanceName>.example.net`. */
export const DEFAULT_HOST_TEMPLATE = '{instance}.example.net';

/** `--host-template`, parsed once: the text around each `{instance}`. */
export interface HostTemplate {
  readonly text: string;
  readonly parts: readonly string[];
}

/** Parse `--host-template`; throws an Error with a one-line reason. */
export function parseHostTemplate(text: string): HostTemplate {
  const parts = text.split('{instance}');
  if (parts.length < 2)
    throw new Error(
      `--host-template ${JSON.stringify(text)} must contain {instance}, e.g. {instance}.prod.example.com`,
    );
  const other = /\{[^}]*\}/.exec(parts.join(''));
  if (other !== null)
    throw new Error(`--host-template ${JSON.stringify(text)}: unknown placeholder ${other[0]} (only {instance})`);
  const template = { text, parts };
  if (!isHostname(renderHost(template, 'web-1')))
    throw new Error(
      `--host-template ${JSON.stringify(text)} does not make a host name (letters, digits, '-' and dots), e.g. {instance}.prod.example.com`,
    );
  return template;
}

export const DEFAULT_HOST: HostTemplate = parseHostTemplate(DEFAULT_HOST_TEMPLATE);

export function renderHost(template: HostTemplate, instance: string): string {
  return template.parts.length === 2
    ? template.parts[0]! + instance + template.parts[1]!
    : template.parts.join(instance);
}
