/**
 * Paths and whose code a file is: pure string rules (no file system), shared by the instruments,
 * the model and the sinks.
 */
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Frame, FrameOrigin } from './report.js';

/** A file URL → a path; anything else (a path, node:internal, eval) unchanged. */
export function toPath(file: string): string {
  if (file.startsWith('file://')) {
    try {
      return fileURLToPath(file);
    } catch {
      return file;
    }
  }
  return file;
}

/** A dependency's file (under `node_modules`): code the user did not write. */
export function isLibraryFile(file: string | null | undefined): boolean {
  return !!file && (file.includes('/node_modules/') || file.includes('\\node_modules\\'));
}

/** Whose code a (resolved) frame is. */
export function originOf(file: string): FrameOrigin {
  if (file.startsWith('node:') || file.startsWith('internal/') || !(file.includes('/') || file.includes('\\')))
    return 'node';
  return isLibraryFile(file) ? 'library' : 'user';
}

/** `file:line:col`, the path shown relative to the working directory when below it (text output). */
export function shortLocation(frame: Frame): string {
  const rel = path.relative(process.cwd(), frame.file);
  const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : frame.file;
  return `${shown}:${frame.line}:${frame.column}`;
}

/** Whether a resolved path or URL is under loopwatch's own compiled sources (`ownDir` ends with a separator). */
export function isOwnPath(file: string, ownDir: string): boolean {
  return toPath(file).startsWith(ownDir);
}

/** `node app.js --flag`: the executable's base name, the main script relative to `cwd`, the arguments. */
export function commandLine(
  execPath = process.execPath,
  argv: readonly string[] = process.argv,
  cwd = process.cwd(),
): string {
  const script = argv[1];
  return [path.basename(execPath), ...(script ? [path.relative(cwd, script) || script] : []), ...argv.slice(2)].join(
    ' ',
  );
}
