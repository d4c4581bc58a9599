/**
 * What Linux's /proc says about another process, for `loopwatch attach`: the TCP ports it listens on
 * (its fds' socket inodes matched in /proc/net/tcp and tcp6: which process owns a port), whether it
 * handles `SIGUSR1` at all (signalling a process that does not would terminate it), and the inspector
 * port it was started with. Each answers `undefined` where /proc cannot tell (another OS, another
 * user's process). Reading /proc/net/tcp costs ~10 ms, so callers poll with a connect instead.
 */
import fs from 'node:fs';

export interface Listening {
  readonly host: string;
  readonly port: number;
}

const SIGUSR1 = 10;
const DEFAULT_INSPECT_PORT = 9229;

/** `0100007F:23F5` (tcp) or 32 hex digits + port (tcp6) → a host to connect to and the port. */
function parseAddress(hex: string): Listening {
  const [addr = '', port = '0'] = hex.split(':');
  let host: string;
  if (addr.length === 8) {
    const bytes = addr
      .match(/../g)!
      .map((b) => parseInt(b, 16))
      .reverse();
    host = bytes.every((b) => b === 0) ? '127.0.0.1' : bytes.join('.');
  } else host = '::1'; // node's inspector listens on loopback; an IPv6 one is reached there
  return { host, port: parseInt(port, 16) };
}

/** Listening sockets of the whole machine (this network namespace), by inode. */
function listeningByInode(): Map<string, Listening> {
  const out = new Map<string, Listening>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '0A' && f[1] && f[9]) out.set(f[9], parseAddress(f[1]));
    }
  }
  return out;
}

/** The TCP ports `pid` listens on, or undefined when its fds cannot be read. */
export function listeningPorts(pid: number): Listening[] | undefined {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return undefined;
  }
  const inodes = new Set<string>();
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const table = listeningByInode();
  return [...inodes].flatMap((i) => {
    const l = table.get(i);
    return l ? [l] : [];
  });
}

/** Whether `pid` catches SIGUSR1 (node does, unless --disable-sigusr1), or undefined when unknown. */
export function catchesSigusr1(pid: number): boolean | undefined {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (BigInt(`0x${m[1]}`) & (1n << BigInt(SIGUSR1 - 1))) !== 0n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The port `pid`'s inspector opens on (`--inspect-port`, `--inspect[-brk|-wait]=[host:]port`, on its
 * command line or in its NODE_OPTIONS; the last one wins, as in node), 9229 when none says otherwise,
 * undefined when /proc cannot tell.
 */
export function inspectPortOf(pid: number): number | undefined {
  let args: string[];
  try {
    args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
  try {
    const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const options = env.find((e) => e.startsWith('NODE_OPTIONS='))?.slice('NODE_OPTIONS='.length);
    if (options) args = [...options.split(/\s+/), ...args];
  } catch {
    // environ is private to the owner: the command line alone then
  }
  let port = DEFAULT_INSPECT_PORT;
  for (let i = 0; i < args.length; i++) {
    const m = /^--(inspect-port|debug-port|inspect|inspect-brk|inspect-wait)(?:=(.*))?$/.exec(args[i]!);
    if (!m) continue;
    const value = m[2] ?? (m[1]!.endsWith('-port') ? args[++i] : undefined);
    const p = value === undefined ? undefined : /(?:^|:)(\d+)$/.exec(value)?.[1];
    if (p !== undefined) port = Number(p);
  }
  return port;
}
