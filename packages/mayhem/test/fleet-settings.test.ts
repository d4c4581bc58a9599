/**
 * The fleet's settings in its database, through the real CLI: stored by the first instance, shown,
 * set and imported (validated as flags are, audited), an instance with other settings refused by
 * class (rails refuse, probes warn, the leash previews or refuses) unless it adopts the fleet's, and
 * a change picked up by two running instances sharing PostgreSQL within about a second. Needs
 * `npm run build` (the instances run from dist).
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cli, mayhemCli, type Cli, type Line } from './helpers/cli.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-fleet-settings-'));
const children: Cli[] = [];
let pgt: TestPostgres;
let health: Server;
let healthUrl: string;

beforeAll(async () => {
  pgt = await startTestPostgres();
  health = createServer((req, res) => res.writeHead(req.url === '/health' ? 200 : 404).end('ok'));
  await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
  healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}`;
}, 60_000);
afterEach(() => {
  for (const c of children.splice(0)) c.child.kill('SIGKILL');
});
afterAll(async () => {
  await pgt?.close();
  await new Promise((r) => health?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const mayhem = mayhemCli;

const FAST = ['--publish-rate', '0', '--restart-latency', '0', '--restart-failure-rate', '0', '--log-format', 'json'];

function service(db: string, ...extra: string[]): Cli {
  const c = cli(['run', '--db', db, '--status-every', '0', '--log-format', 'json', ...extra]);
  children.push(c);
  return c;
}

const msgs = (c: Cli): string[] => c.lines.map((l) => String(l.msg));

describe('mayhem settings (SQLite)', () => {
  it('the first instance stores its own; show, set and import change them, validated and audited', async () => {
    const db = `sqlite:${join(dir, 'first.db')}`;
    expect((await mayhem('settings', 'show', '--db', db)).code).toBe(1); // no such file yet
    const first = service(db, '--count', '3', ...FAST, '--deny-hosts', 'db-*', '--instance-name', 'svc-1');
    expect((await first.exited).code).toBe(0);
    expect(msgs(first)).toContain(`Stored this instance's settings as the fleet's (version 1): --deny-hosts "db-*"`);

    const shown = await mayhem('settings', 'show', '--db', db);
    expect(shown.stdout).toMatch(/^Fleet settings on sqlite:.*first\.db: version 1, set by svc-1 at /);
    expect(shown.stdout).toMatch(/\n {2}--deny-hosts +"db-\*"\n/);
    expect(shown.stdout).toMatch(/\n {2}--max-concurrent-restarts +0 {2}\(default\)\n/);

    const set = await mayhem(
      'settings',
      'set',
      '--db',
      db,
      '--max-concurrent-restarts',
      '2',
      '--window',
      'daily 00:00-24:00 UTC',
      '--instance-name',
      'ops',
    );
    expect(set.stdout).toBe(
      `Fleet settings on ${db} are now version 2 (by ops): --window (none) → "daily 00:00-24:00 UTC"; --max-concurrent-restarts 0 → 2. Running instances follow within a second.\n`,
    );
    // Bad input: one line, exit 2, nothing stored.
    for (const [args, message] of [
      [['--window', 'Mon-Frx 09:00-17:00'], /^mayhem: invalid --window "Mon-Frx 09:00-17:00": unknown days "Mon-Frx"/],
      [
        ['--max-concurrent-restarts', '-1'],
        /^mayhem: invalid --max-concurrent-restarts "-1": expected a whole number from 0 to 100000/,
      ],
      [['--unset', 'db'], /^mayhem: invalid --unset "db": not a fleet setting/],
      [['--probe', 'ftp://x'], /^mayhem: invalid --probe/],
      [[], /^mayhem: settings set: nothing to set/],
    ] as const) {
      const r = await mayhem('settings', 'set', '--db', db, ...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const json = await mayhem('settings', 'show', '--db', db, '--json');
    const doc = JSON.parse(json.stdout) as { version: number; settings: Record<string, unknown> };
    expect(doc).toMatchObject({ version: 2, settings: { denyHosts: 'db-*', maxConcurrentRestarts: 2 } });

    // import replaces them all (what the file leaves out goes back to its default).
    const file = join(dir, 'settings.json');
    writeFileSync(file, JSON.stringify({ 'deny-hosts': 'db-*,mail-*', minIntervalPerHost: '10m' }));
    const imported = await mayhem('settings', 'import', file, '--db', db, '--instance-name', 'ops');
    expect(imported.stdout).toMatch(
      /now version 3 \(by ops\): --deny-hosts "db-\*" → "db-\*,mail-\*"; --window "daily 00:00-24:00 UTC" → \(none\); --min-interval-per-host 0ms → 10m; --max-concurrent-restarts 2 → 0\./,
    );
    writeFileSync(file, JSON.stringify({ maxInFlight: 5 }));
    const refused = await mayhem('settings', 'import', file, '--db', db);
    expect(refused).toMatchObject({ code: 2 });
    expect(refused.stderr).toBe(`mayhem: settings file ${file}: "maxInFlight" is not a fleet setting\n`);
    // show --json's own document imports as it is (nothing changes).
    writeFileSync(file, (await mayhem('settings', 'show', '--db', db, '--json')).stdout);
    expect((await mayhem('settings', 'import', file, '--db', db)).stdout).toMatch(
      /^Nothing changed: the fleet's settings \(version 3/,
    );

    const audit = await mayhem('audit', '--db', db, '--json');
    const rows = audit.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { outcome: string; host: string; instance: string; reason: string })
      .filter((r) => r.outcome === 'settings-changed');
    expect(rows.map((r) => [r.instance, r.host, r.reason.slice(0, 10)])).toEqual([
      ['ops', '*', 'version 3:'],
      ['ops', '*', 'version 2:'],
    ]);
  }, 60_000);

  it('an instance with other settings: rails refuse (each named, both values), adopt follows; probes warn; the leash previews or refuses', async () => {
    const db = `sqlite:${join(dir, 'classes.db')}`;
    const probe = `http:${healthUrl}/health name=fleet-health`;
    const first = service(
      db,
      '--count',
      '2',
      ...FAST,
      '--deny-hosts',
      'db-*',
      '--max-concurrent-restarts',
      '3',
      '--probe',
      probe,
    );
    expect((await first.exited).code).toBe(0);

    const refused = service(
      db,
      '--count',
      '2',
      ...FAST,
      '--deny-hosts',
      'web-*',
      '--max-concurrent-restarts',
      '4',
      '--on-limit',
      'delay',
    );
    expect(await refused.exited).toMatchObject({ code: 2 });
    expect(refused.stderr()).toMatch(
      /^mayhem: this instance's settings differ from the fleet's settings \(version 1, set by .* at .*\): --deny-hosts: this instance "web-\*", the fleet "db-\*"; --max-concurrent-restarts: this instance 4, the fleet 3\. To follow the fleet's: --fleet-settings adopt; to change them for every instance: mayhem settings set \(audited\)\n$/,
    );
    expect(refused.lines.filter((l) => String(l.msg).startsWith('Restarted '))).toEqual([]);

    const adopted = service(
      db,
      '--count',
      '2',
      ...FAST,
      '--deny-hosts',
      'web-*',
      '--fleet-settings',
      'adopt',
      '--instances',
      'web-1,db-1',
    );
    expect((await adopted.exited).code).toBe(0);
    expect(msgs(adopted)).toContain(
      `Following the fleet's settings (--fleet-settings adopt): --deny-hosts: this instance "web-*", the fleet "db-*"`,
    );
    // The fleet's deny list applied: db-1 skipped, web-1 restarted.
    expect(
      adopted.lines.some((l) => String(l.msg).startsWith('Not restarting db-1.example.net: denied by policy')),
    ).toBe(true);
    expect(msgs(adopted)).toContain('Restarted web-1.example.net');

    const otherProbe = service(db, '--count', '1', ...FAST, '--probe', `http:${healthUrl}/other name=mine`);
    expect((await otherProbe.exited).code).toBe(0);
    const warned = otherProbe.lines.find((l: Line) =>
      String(l.msg).startsWith("Checking the fleet's probes, not this instance's"),
    );
    expect(warned?.level).toBe(40);
    expect(
      msgs(otherProbe).some((m) => m.startsWith('Steady state before the first restart: probe fleet-health holds')),
    ).toBe(true);

    // Leashed by its own flag beside an unleashed fleet: a preview (allowed); unleashed beside a leashed fleet: refused.
    const leashed = service(db, '--count', '2', ...FAST, '--leashed', 'true');
    expect((await leashed.exited).code).toBe(0);
    expect(msgs(leashed).filter((m) => m.startsWith('Leashed: would restart'))).toHaveLength(2);
    expect((await mayhem('settings', 'set', '--db', db, '--leashed', 'true')).code).toBe(0);
    const live = service(db, '--count', '1', ...FAST, '--leashed', 'false');
    expect(await live.exited).toMatchObject({ code: 2 });
    expect(live.stderr()).toMatch(/--leashed: this instance "false", the fleet "true"\./);
  }, 60_000);
});

describe('two running instances on PostgreSQL follow a change within a second', () => {
  it('mayhem settings set --deny-hosts: both log it and skip the host from then on', async () => {
    const { url: db } = await pgt.createDatabase();
    const args = [
      '--publish-rate',
      '20',
      '--restart-latency',
      '10ms',
      '--restart-failure-rate',
      '0',
      '--instances',
      'web-1,web-2',
    ];
    const a = service(db, ...args, '--instance-name', 'A');
    await a.waitFor((ls) => ls.some((l) => String(l.msg).startsWith('Restarted web-2')));
    const b = service(db, ...args, '--instance-name', 'B');
    await b.waitFor((ls) => ls.some((l) => String(l.msg).startsWith('Restarted web-2')));
    const set = await mayhem('settings', 'set', '--db', db, '--deny-hosts', 'web-2.*', '--instance-name', 'ops');
    expect(set.code, set.stderr).toBe(0);
    const setAt = Date.now();
    const changed = (l: Line): boolean =>
      String(l.msg).startsWith('Fleet settings changed by ops (version 2): --deny-hosts (none) → "web-2.*"');
    await Promise.all([a, b].map((c) => c.waitFor((ls) => ls.some(changed))));
    for (const c of [a, b]) {
      const at = c.lines.find(changed)!.time as number;
      // Read every half second, looked at every quarter: within a second (and some scheduling slack).
      expect(at - setAt).toBeLessThan(1500);
      // From then on web-2 is skipped, web-1 still restarted.
      await c.waitFor((ls) =>
        ls.some(
          (l) =>
            (l.time as number) > at && String(l.msg).startsWith('Not restarting web-2.example.net: denied by policy'),
        ),
      );
      await c.waitFor((ls) =>
        ls.some((l) => (l.time as number) > at + 100 && String(l.msg) === 'Restarted web-1.example.net'),
      );
      expect(
        c.lines.filter((l) => (l.time as number) > at + 100 && String(l.msg) === 'Restarted web-2.example.net'),
      ).toEqual([]);
    }
  }, 60_000);
});
