/** The one way an unknown thrown value becomes text for a log field or a one-line message. */

/**
 * The error's message (or the value as a string), first line only: log fields stay one line. Never
 * throws, whatever was thrown (an object whose toString throws, or is not a function).
 */
export function errorText(error: unknown): string {
  const text = fullErrorText(error);
  const nl = text.indexOf('\n');
  return nl === -1 ? text : text.slice(0, nl);
}

/**
 * The error's whole message (or the value as a string), every line: for a caller that folds the
 * lines itself, like the CLI's one-line failure. Never throws, like {@link errorText}.
 */
export function fullErrorText(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return 'an error that cannot be printed';
  }
}

/**
 * A problem with the user's settings: printed as one line, exit code 2. Here, beside `errorText`, so
 * the adapters that check their own settings at start (executors) can say so without importing config/.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
