/**
 * NATS set-up and credentials against real nats-servers started here (issue 9 items 3, 9, 12):
 * conflicts name the stream and subject and leave nothing half-created; `publish` never needs the
 * dead-letter stream; the dead-letter stream gets its limits from settings; credentials come from
 * files or the URL and are never printed.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, nkeys, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openNatsBroker, openNatsPublisher, type NatsOptions } from '../src/brokers/nats/index.js';
import { startNatsServer, type NatsServer } from './helpers/nats-server.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/src/cli/main.js');
const logger = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'mayhem-nats-hostile-'));

let server: NatsServer;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first`);
  server = await startNatsServer();
  nc = await connect({ servers: server.url });
  jsm = await jetstreamManager(nc);
});

afterAll(async () => {
  await nc?.close();
  await server?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

async function streamNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const n of jsm.streams.names()) names.push(n);
  return names.sort();
}

async function addStream(name: string, subjects: string[]): Promise<void> {
  await jsm.streams.add({ name, subjects, retention: RetentionPolicy.Limits, storage: StorageType.File });
}

function opts(stream: string, extra: Partial<NatsOptions> = {}): NatsOptions {
  return {
    servers: [server.url],
    stream,
    subject: `${stream.toLowerCase()}.restart`,
    durable: 'mayhem',
    deadLetterSubject: `${stream.toLowerCase()}.dead`,
    logger,
    ...extra,
  };
}

function mayhem(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // Never left running if a test fails or times out.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

describe('stream set-up', () => {
  it('publish does not create (or need) the dead-letter stream, even when another stream holds its subject', async () => {
    await addStream('HOLDS_DEAD', ['pub1.dead']);
    const p = await openNatsPublisher(opts('PUB1'));
    await p.publish('{"x":1}');
    await p.close();
    const names = await streamNames();
    expect(names).toContain('PUB1');
    expect(names).not.toContain('PUB1_DEAD');
  });

  it('run: a dead-letter subject held by another stream is one line naming that stream and the subject; nothing is created', async () => {
    await addStream('OTHER_APP', ['run1.dead']);
    const before = await streamNames();
    const err = await openNatsBroker(opts('RUN1')).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toBe(
      'NATS stream RUN1_DEAD cannot be created for subject run1.dead: stream OTHER_APP already captures it (["run1.dead"]); choose another --dead-letter-subject',
    );
    expect(err?.message).not.toContain('\n');
    // Neither the request stream nor the dead-letter stream was left behind.
    expect(await streamNames()).toEqual(before);
  });

  it("run: a request subject covered by another stream's wildcard names that stream", async () => {
    await addStream('WILD', ['wild.>']);
    const before = await streamNames();
    const err = await openNatsBroker(
      opts('WILDRUN', { subject: 'wild.restart', deadLetterSubject: 'wildrun.dead' }),
    ).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(
      /^NATS stream WILDRUN cannot be created for subject wild\.restart: stream WILD already captures it \(\["wild\.>"\]\); choose another --subject/,
    );
    expect(await streamNames()).toEqual(before);
  });

  it('run with --dead-letter-subject elsewhere works next to the other stream', async () => {
    await addStream('OTHER_APP2', ['run2.dead']);
    const b = await openNatsBroker(opts('RUN2', { deadLetterSubject: 'run2.parked' }));
    await b.close();
    expect(await streamNames()).toEqual(expect.arrayContaining(['RUN2', 'RUN2_DEAD']));
  });

  it('an existing stream of our name without our subject is named with its subjects', async () => {
    await addStream('RUN3', ['elsewhere.x']);
    const err = await openNatsBroker(opts('RUN3')).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(
      /^NATS stream RUN3 exists but does not capture subject run3\.restart \(it has \["elsewhere\.x"\]\)/,
    );
  });

  it('the dead-letter stream gets max age and max bytes from the settings (discarding the oldest), and follows them when they change', async () => {
    const b = await openNatsBroker(opts('LIM', { deadLetterMaxAgeMs: 86_400_000, deadLetterMaxBytes: 10_000_000 }));
    await b.close();
    let info = await jsm.streams.info('LIM_DEAD');
    expect(info.config).toMatchObject({ max_age: 86_400_000 * 1e6, max_bytes: 10_000_000, discard: 'old' });
    const again = await openNatsBroker(opts('LIM', { deadLetterMaxAgeMs: 0, deadLetterMaxBytes: 0 }));
    await again.close();
    info = await jsm.streams.info('LIM_DEAD');
    expect(info.config).toMatchObject({ max_age: 0, max_bytes: -1 });
    // The defaults: 30 days, 1 GiB.
    const d = await openNatsBroker(opts('DEF'));
    await d.close();
    expect((await jsm.streams.info('DEF_DEAD')).config).toMatchObject({
      max_age: 30 * 86_400_000 * 1e6,
      max_bytes: 2 ** 30,
    });
  });
});

describe('credentials', () => {
  const servers: NatsServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.destroy();
  });

  async function authServer(args: string[]): Promise<NatsServer> {
    const s = await startNatsServer({ extraArgs: args });
    servers.push(s);
    return s;
  }

  const publishArgs = (url: string): string[] => ['publish', '--broker', url, '--count', '3', '--log-format', 'json'];

  it('user and password in the URL work, and a wrong one is one line without the password', async () => {
    const s = await authServer(['--user', 'admin', '--pass', 'NatsS3cretPass']);
    const url = s.url.replace('nats://', 'nats://admin:NatsS3cretPass@');
    const ok = await mayhem(publishArgs(url));
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).not.toContain('NatsS3cretPass');
    const bad = await mayhem(publishArgs(s.url.replace('nats://', 'nats://admin:WrongS3cretPass@')));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^mayhem: cannot connect to NATS at nats:\/\/admin:\*\*\*@127\.0\.0\.1:\d+: .*[Aa]uthorization/,
    );
    expect(bad.stderr.split('\n')).toHaveLength(2);
    expect(bad.stderr + bad.stdout).not.toContain('WrongS3cretPass');
  });

  it('--nats-token-file (and a token in the URL is redacted)', async () => {
    const s = await authServer(['--auth', 'TokS3cretValue']);
    const file = join(dir, 'token');
    writeFileSync(file, 'TokS3cretValue\n', { mode: 0o600 });
    const ok = await mayhem([...publishArgs(s.url), '--nats-token-file', file]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const none = await mayhem(publishArgs(s.url));
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^mayhem: cannot connect to NATS at .*[Aa]uthorization/);
    const inUrl = await mayhem(publishArgs(s.url.replace('nats://', 'nats://WrongTokS3cret@')));
    expect(inUrl.code).toBe(1);
    expect(inUrl.stderr).toContain('nats://***@127.0.0.1');
    expect(inUrl.stderr).not.toContain('WrongTokS3cret');
  });

  it('--nats-nkey and --nats-creds (an nkey user; the server checks the nkey signature)', async () => {
    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const conf = join(dir, 'nkey.conf');
    writeFileSync(conf, `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }\n`);
    const s = await authServer(['-c', conf]);
    const seedFile = join(dir, 'user.nk');
    writeFileSync(seedFile, `${seed}\n`, { mode: 0o600 });
    const nk = await mayhem([...publishArgs(s.url), '--nats-nkey', seedFile]);
    expect(nk.stderr).toBe('');
    expect(nk.code).toBe(0);
    const credsFile = join(dir, 'user.creds');
    writeFileSync(
      credsFile,
      `-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`,
      { mode: 0o600 },
    );
    const creds = await mayhem([...publishArgs(s.url), '--nats-creds', credsFile]);
    expect(creds.stderr).toBe('');
    expect(creds.code).toBe(0);
    // The seed never appears anywhere; a file that is not a seed is one line.
    expect(nk.stdout + creds.stdout).not.toContain(seed);
    const notSeed = join(dir, 'not-a-seed');
    writeFileSync(notSeed, 'hello\n');
    const bad = await mayhem([...publishArgs(s.url), '--nats-nkey', notSeed]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /^mayhem: the NATS nkey file .*not-a-seed \(--nats-nkey\) does not hold a user nkey seed/,
    );
  });
});

describe('the poison message of issue 9 on NATS', () => {
  it('published with --raw ahead of good messages: dead-lettered as malformed, the rest acked, exit 0', async () => {
    const stream = ['--broker', server.url, '--stream', 'POISON', '--subject', 'poison.restart'];
    const poison = '{"messageId":"x1","instanceName":{"toString":1},"publishedAt":"2026-01-01T00:00:00Z"}';
    expect((await mayhem(['publish', ...stream, '--raw', poison, '--count', '1'])).code).toBe(0);
    expect((await mayhem(['publish', ...stream, '--count', '5'])).code).toBe(0);
    const run = await mayhem([
      'run',
      ...stream,
      '--dead-letter-subject',
      'poison.dead',
      '--db',
      'memory:',
      '--count',
      '6',
      '--restart-latency',
      '1ms',
      '--restart-failure-rate',
      '0',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const summary = run.stdout
      .split('\n')
      .filter((l) => l.includes('"msg":"Summary ('))
      .map((l) => JSON.parse(l) as Record<string, number>)[0];
    expect(summary).toMatchObject({ acked: 5, deadLettered: 1, malformed: 1 });
    expect((await jsm.streams.info('POISON_DEAD')).state.messages).toBe(1);
  }, 60_000);
});
