/** The one way an unknown thrown value becomes text for a log field or a one-line message. */

/** The error's message (or the value as a string), first line only: log fields stay one line. */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}
