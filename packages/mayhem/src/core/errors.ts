/** The one way an unknown thrown value becomes text for a log field or a one-line message. */

/**
 * The error's message (or the value as a string), first line only: log fields stay one line. Never
 * throws, whatever was thrown (an object whose toString throws, or is not a function).
 */
export function errorText(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error ? String(error.message) : String(error);
  } catch {
    return 'an error that cannot be printed';
  }
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}
