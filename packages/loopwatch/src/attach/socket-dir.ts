/**
 * Where attach sockets live: `$XDG_RUNTIME_DIR/loopwatch/` when that is set (a per-user tmpfs), else
 * `/tmp/loopwatch-<uid>/`. The directory must be ours and closed to everyone else (mode 0700): one
 * that exists with another owner or looser bits (a trap laid in /tmp) is refused, never used or
 * loosened. Sockets are `<pid>.sock`, mode 0600.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorText } from '../model/error-text.js';

export class SocketDirError extends Error {
  override readonly name = 'SocketDirError';
}

export function socketDir(env: NodeJS.ProcessEnv = process.env): string {
  const forced = env['LOOPWATCH_ATTACH_DIR'];
  if (forced) return forced;
  const xdg = env['XDG_RUNTIME_DIR'];
  if (xdg && path.isAbsolute(xdg) && fs.existsSync(xdg)) return path.join(xdg, 'loopwatch');
  return path.join(os.tmpdir(), `loopwatch-${process.getuid?.() ?? 'user'}`);
}

/** Creates the directory (0700) or checks the one that is there; throws {@link SocketDirError} if unsafe. */
export function ensureSocketDir(dir: string): string {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new SocketDirError(`loopwatch: cannot create ${dir}: ${errorText(e)}`);
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new SocketDirError(`loopwatch: ${dir} is not a directory; attach stays closed`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new SocketDirError(`loopwatch: ${dir} belongs to uid ${st.uid}, not to us (${uid}); attach stays closed`);
  if ((st.mode & 0o077) !== 0)
    throw new SocketDirError(
      `loopwatch: ${dir} is open to others (mode ${(st.mode & 0o777).toString(8)}); attach stays closed`,
    );
  return dir;
}

export function socketPath(dir: string, pid: number): string {
  return path.join(dir, `${pid}.sock`);
}
