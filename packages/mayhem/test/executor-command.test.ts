/**
 * `--executor command` against real processes: the argv template, a command that fails, one that
 * hangs past the timeout, one stopped by shutdown (and everything it started), one that ignores
 * SIGTERM, and what a hostile field can and cannot do.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RestartContext } from '../src/core/contracts.js';
import { RESTARTED } from '../src/core/restart-outcome.js';
import { parseArgvTemplate, splitWords, TemplateError } from '../src/executors/argv-template.js';
import { CommandRestartExecutor, findProgram, type CommandExecutorOptions } from '../src/executors/command.js';
import { capturingLogger } from './pipeline-harness.js';
import { alive, allGone, fileWritten } from './helpers/processes.js';
import { failure } from './helpers/executor-pipeline.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const tmp = (name: string): string => join(dir, `${++files}-${name}`);

const context: RestartContext = { messageId: 'msg-1', instanceName: 'web-1', attempt: 2, deliveryCount: 3 };

function executor(
  command: string,
  o: Partial<CommandExecutorOptions> = {},
): { ex: CommandRestartExecutor; log: ReturnType<typeof capturingLogger> } {
  const log = capturingLogger('debug');
  return {
    ex: new CommandRestartExecutor({
      template: parseArgvTemplate(command),
      timeoutMs: 10_000,
      logger: log.logger,
      ...o,
    }),
    log,
  };
}

describe('argv template', () => {
  it('splits like a shell, without expanding anything', () => {
    expect(splitWords(`a "b c" 'd e' f\\ g "x\\"y" '$HOME' "a\\\\b"`)).toEqual([
      'a',
      'b c',
      'd e',
      'f g',
      'x"y',
      '$HOME',
      'a\\b',
    ]);
    const t = parseArgvTemplate(`ssh -o 'ConnectTimeout=5' {host} sudo systemctl reboot`);
    expect(t.program).toBe('ssh');
    expect(t.args).toEqual(['-o', 'ConnectTimeout=5', { field: 'host' }, 'sudo', 'systemctl', 'reboot']);
    expect(t.fields).toEqual(['host']);
    // Braces that are not a placeholder are text.
    expect(parseArgvTemplate(`curl -d '{"a":1}' {}`).args).toEqual(['-d', '{"a":1}', '{}']);
  });

  it.each([
    ['', /empty/],
    [`ssh 'oops`, /unbalanced '/],
    [`ssh "oops`, /unbalanced "/],
    ['ssh root@{host} reboot', /\{host\} must be a whole argument .*"root@\{host\}": for ssh write -l root \{host\}/],
    [
      'curl https://ops/{host}',
      /\{host\} must be a whole argument .*"https:\/\/ops\/\{host\}" \(a field is only ever passed as one argument/,
    ],
    [`sh -c 'reboot {host}'`, /\{host\} must be a whole argument/],
    ['ssh {hostname}', /unknown placeholder \{hostname\} in the restart command; known: \{host\}, \{instance\}/],
    ['{host} reboot', /must start with a program/],
    ['ssh {host} reboot | tee log', /\| in the restart command is shell syntax/],
    ['ssh {host} reboot; echo done', /; in the restart command is shell syntax/],
    ['echo $HOME', /\$ in the restart command is shell syntax/],
    ['echo "$HOME"', /\$ inside "…" .* would be expanded by a shell/],
    ['~/bin/restart {host}', /leading ~/],
  ])('rejects %j with one line', (text, message) => {
    expect(() => parseArgvTemplate(text)).toThrow(TemplateError);
    expect(() => parseArgvTemplate(text)).toThrow(message);
  });

  it('findProgram: looks in PATH, or takes a path', () => {
    expect(findProgram('sh')).toMatchObject({ path: expect.stringMatching(/\/sh$/) as unknown });
    expect(findProgram('no-such-program-here')).toEqual({ error: '"no-such-program-here" was not found in PATH' });
    expect(findProgram('/etc/passwd')).toEqual({ error: '"/etc/passwd" is not an executable file' });
  });
});

describe('command executor (real processes)', () => {
  it('exit 0 is a restart; fields arrive as whole arguments and env vars, never as shell syntax', async () => {
    const out = tmp('args');
    const pwned = tmp('PWNED');
    // The script prints each argument on its own line, then the env fields.
    const { ex } = executor(
      `sh -c 'printf "%s\\n" "$@" > "$0"; printf "%s\\n" "$MAYHEM_HOST" "$MAYHEM_INSTANCE" "$MAYHEM_MESSAGE_ID" "$MAYHEM_ATTEMPT" "$MAYHEM_DELIVERY" >> "$0"' ${out} {host} --instance {instance}`,
    );
    const hostile = `x; touch ${pwned}; $(touch ${pwned}) \`touch ${pwned}\``;
    expect(await ex.restart(hostile, new AbortController().signal, { ...context, instanceName: 'a b' })).toBe(
      RESTARTED,
    );
    expect(readFileSync(out, 'utf8').split('\n')).toEqual([
      hostile,
      '--instance',
      'a b',
      hostile,
      'a b',
      'msg-1',
      '2',
      '3',
      '',
    ]);
    expect(existsSync(pwned)).toBe(false);
  });

  it('a value starting with "-" is refused (it would be read as an option), for good', async () => {
    const { ex } = executor('true {host}');
    const out = await failure(ex.restart('-oProxyCommand=touch x', new AbortController().signal, context));
    expect(out.kind).toBe('rejected');
    expect(out.reason).toMatch(/refusing to pass host "-oProxyCommand=touch x"/);
  });

  it('exit ≠ 0: not-restarted with the last line of stderr, bounded', async () => {
    const { ex } = executor(`sh -c 'echo first line >&2; echo "disk on fire" >&2; echo >&2; exit 3'`);
    const out = await failure(ex.restart('web-1.example.net', new AbortController().signal, context));
    expect(out).toEqual({
      kind: 'not-restarted',
      reason: 'the restart command for web-1.example.net exited with code 3: disk on fire',
    });

    // A command that writes a lot: only the end is kept, and the reason is one bounded line.
    const { ex: noisy } = executor(
      `sh -c 'i=0; while [ $i -lt 2000 ]; do echo "line $i of noise"; i=$((i+1)); done >&2; printf "%0500d\\n" 7 >&2; exit 1'`,
    );
    const out2 = await failure(noisy.restart('web-1.example.net', new AbortController().signal, context));
    expect(out2.kind).toBe('not-restarted');
    expect(out2.reason).toMatch(/exited with code 1: 0{199}…$/);
    expect(out2.reason.length).toBeLessThan(300);
  });

  it('a program that cannot start: not-restarted (nothing ran), not a resource fault', async () => {
    const { ex } = executor(`${dir}/no-such-program {host}`);
    const out = await failure(ex.restart('web-1.example.net', new AbortController().signal, context));
    expect(out.kind).toBe('not-restarted');
    expect(out).not.toHaveProperty('resource');
    expect(out.reason).toMatch(/could not start the restart command for web-1\.example\.net: ENOENT/);
  });

  it('hangs past --restart-timeout: its whole process group is killed and the outcome is unknown (in doubt)', async () => {
    const pids = tmp('pids');
    const { ex, log } = executor(`sh -c 'sleep 30 & echo $$ $! > "$0"; wait' ${pids}`, { timeoutMs: 1500 });
    const started = performance.now();
    const out = await failure(ex.restart('web-1.example.net', new AbortController().signal, context));
    const took = performance.now() - started;
    expect(out).toMatchObject({ kind: 'unknown', cancelled: false });
    expect(out.reason).toMatch(/ran past 1\.5s and was killed; it may have restarted the host/);
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(1500 + 2000);
    const [shPid, sleepPid] = readFileSync(pids, 'utf8').trim().split(' ').map(Number) as [number, number];
    await allGone([shPid, sleepPid]);
    expect(log.messages()).toContain(
      `Stopping the restart command for web-1.example.net (pid ${shPid}): it ran past 1.5s`,
    );
    expect(ex.running).toEqual([]);
  });

  it('shutdown (abort) while it runs: the group is stopped at once, the outcome is unknown, cut short by shutdown', async () => {
    const pids = tmp('pids');
    const { ex } = executor(`sh -c 'sleep 30 & echo $$ $! > "$0"; wait' ${pids}`);
    const shutdown = new AbortController();
    const running = ex.restart('web-1.example.net', shutdown.signal, context);
    const [shPid, sleepPid] = (await fileWritten(pids)).trim().split(' ').map(Number) as [number, number];
    expect(alive(shPid) && alive(sleepPid)).toBe(true);
    const aborted = performance.now();
    shutdown.abort(new DOMException('shutdown grace period over', 'AbortError'));
    const out = await failure(running);
    expect(performance.now() - aborted).toBeLessThan(1000);
    // Cut short by shutdown, but not `cancelled` (that says nothing happened): the host may have been restarted.
    expect(out).toMatchObject({ kind: 'unknown', cancelled: true });
    expect(out.reason).toMatch(/still running at shutdown and was stopped; it may have restarted the host/);
    await allGone([shPid, sleepPid]);
  });

  it('a command that ignores SIGTERM is killed with SIGKILL after the grace', async () => {
    const pids = tmp('pids');
    const { ex } = executor(`sh -c 'trap "" TERM; sleep 30 & echo $$ $! > "$0"; wait' ${pids}`, { killGraceMs: 300 });
    const shutdown = new AbortController();
    const running = ex.restart('web-1.example.net', shutdown.signal, context);
    const [shPid, sleepPid] = (await fileWritten(pids)).trim().split(' ').map(Number) as [number, number];
    const aborted = performance.now();
    shutdown.abort();
    const out = await failure(running);
    const took = performance.now() - aborted;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2000);
    expect(out).toMatchObject({ kind: 'unknown', cancelled: true });
    await allGone([shPid, sleepPid]);
  });

  it('aborted before it started: cancelled, nothing spawned', async () => {
    const out = tmp('never');
    const { ex } = executor(`sh -c 'echo ran > "$0"' ${out}`);
    expect((await failure(ex.restart('web-1.example.net', AbortSignal.abort(), context))).kind).toBe('cancelled');
    expect(existsSync(out)).toBe(false);
  });

  it('--restart-shell: fixed text run by sh, the fields only as environment variables', async () => {
    const out = tmp('shell');
    const pwned = tmp('PWNED');
    const log = capturingLogger();
    const ex = new CommandRestartExecutor({
      template: parseArgvTemplate('sh'),
      shellCommand: `printf '%s|%s\\n' "$MAYHEM_HOST" "$MAYHEM_INSTANCE" > ${out}`,
      timeoutMs: 5000,
      logger: log.logger,
    });
    const hostile = `$(touch ${pwned})`;
    expect(await ex.restart(hostile, new AbortController().signal, { ...context, instanceName: '`touch x`' })).toBe(
      RESTARTED,
    );
    expect(readFileSync(out, 'utf8')).toBe(`${hostile}|\`touch x\`\n`);
    expect(existsSync(pwned)).toBe(false);
  });

  it('restarts run concurrently, each in its own process', async () => {
    const out = tmp('many');
    const { ex } = executor(`sh -c 'sleep 0.3; echo "$1" >> "$0"' ${out} {instance}`);
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        ex.restart(`w${i}.example.net`, new AbortController().signal, { ...context, instanceName: `w${i}` }),
      ),
    );
    expect(outcomes.every((o) => o === RESTARTED)).toBe(true);
    expect(performance.now() - started).toBeLessThan(2400);
    expect(readFileSync(out, 'utf8').trim().split('\n').sort()).toEqual([
      'w0',
      'w1',
      'w2',
      'w3',
      'w4',
      'w5',
      'w6',
      'w7',
    ]);
  });
});
