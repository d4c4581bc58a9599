/** `--http host:port`: split, and whether only this machine can reach it. */
import { isIPv4, isIPv6 } from 'node:net';

export function splitHostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}

/**
 * Whether `host` is a loopback address: 127.0.0.0/8, ::1 (also as ::ffff:127.x.x.x) or `localhost`.
 * Any other name may resolve to anything, and 0.0.0.0 / :: are every interface: not loopback.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  if (isIPv4(v4)) return v4.startsWith('127.');
  return isIPv6(h) && /^(0{0,4}:){0,7}:?0{0,3}1$/.test(h) && h.replace(/[:0]/g, '') === '1';
}
