/** One line for anything thrown or passed as a reason: `Error`'s message, else its string form. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
