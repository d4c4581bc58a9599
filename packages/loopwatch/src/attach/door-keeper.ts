/**
 * The keeper `loopwatch attach` starts before it signals a process (see door.ts): `door-keeper.js
 * <pid> <inspector port> <ports before|->`. It reads the client's lines on stdin (`door HOST PORT`, `closed`). When
 * stdin ends without `closed` (the client was killed, crashed, or left a door that has not opened
 * yet), it closes the door itself, waiting for it while the target lives, at most an hour.
 */
import { alive } from './client.js';
import { closeDoor, doorOf, isShut } from './door.js';
import type { Listening } from './proc.js';

const MAX_WAIT_MS = 60 * 60_000;
const POLL_MS = 100;

const pid = Number(process.argv[2]);
const port = Number(process.argv[3]);
const portsArg = process.argv[4] ?? '-';
const before: Listening[] | undefined =
  portsArg === '-'
    ? undefined
    : portsArg
        .split(',')
        .filter(Boolean)
        .map((p) => ({ host: '127.0.0.1', port: Number(p) }));

let door: Listening | undefined;
let closed = false;

async function keep(): Promise<void> {
  const until = Date.now() + MAX_WAIT_MS;
  while (Date.now() < until && alive(pid)) {
    door ??= await doorOf(pid, port, before);
    if (door) {
      if (await isShut(door)) return;
      await closeDoor(pid, door).catch(() => undefined);
      if (await isShut(door)) return;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

// Its one job is to outlive any one failed attempt (a session cut off mid-way): an error thrown outside
// the loop's own promise must not end it while the door may be open.
process.on('uncaughtException', () => undefined);

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  input += chunk;
  for (let nl = input.indexOf('\n'); nl >= 0; nl = input.indexOf('\n')) {
    const [word, host, port] = input.slice(0, nl).split(' ');
    input = input.slice(nl + 1);
    if (word === 'closed') closed = true;
    else if (word === 'door' && host && port) door = { host, port: Number(port) };
  }
});
process.stdin.on('end', () => {
  if (closed) process.exit(0);
  keep().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
