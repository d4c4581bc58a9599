/**
 * `loopwatch attach <pid> --enable debug|production`: loopwatch loaded into a process started without
 * it, through the inspector session attach already has.
 *
 * `import()` from an inspector evaluation fails on every line (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING:
 * the evaluation is no module), but node's command-line API has `require`, and `require` of an ES
 * module works on node ≥ 20.19 and ≥ 22.12. The modules are loaded (and the target's own `LOOPWATCH_*`
 * settings read) while the session is there to report a failure; the mode is turned on only after the
 * inspector is closed (door.ts runs it then), because loopwatch started under an open inspector takes
 * it for someone debugging and leaves the stall frames out. Whether it worked is then asked of the
 * process's own attach endpoint.
 */
import { fileURLToPath } from 'node:url';
import { addressOf, ask } from './client.js';
import { AFTER_CLOSE } from './door.js';
import type { ProcessInfo } from './protocol.js';

export type EnableMode = 'debug' | 'production';

/** Loads loopwatch's modules in the target and leaves the switch for door.ts to throw after the close. */
export function loadExpression(mode: EnableMode): string {
  const dist = (f: string): string => JSON.stringify(fileURLToPath(new URL(`../${f}`, import.meta.url)));
  return `(() => {
  const { optionsFromEnv } = require(${dist('options.js')});
  const { enableFromOptions } = require(${dist('lifecycle.js')});
  const options = optionsFromEnv({ ...process.env, LOOPWATCH: ${JSON.stringify(mode)} });
  globalThis[${AFTER_CLOSE}] = () => {
    try {
      enableFromOptions(options);
    } catch (e) {
      process.stderr.write('loopwatch: could not be turned on: ' + (e && e.message) + '\\n');
    }
  };
})()`;
}

/** A one-line reason for a load that failed in the target. */
export function loadFailure(message: string, pid: number, version: string | undefined): string {
  if (/ERR_REQUIRE_ESM/.test(message))
    return `node ${version ?? ''} in ${pid} cannot require an ES module, which loading loopwatch needs (node ≥ 20.19 and ≥ 22.12 can)`;
  return message.replace(/^loopwatch: /, '');
}

/** The mode the target's endpoint reports, asked until it answers (≤ 2 s), or why not. */
export async function enabledMode(pid: number): Promise<{ mode: string } | { failed: string }> {
  const address = addressOf(String(pid));
  const until = performance.now() + 2_000;
  for (;;) {
    const a = await ask(address, { cmd: 'info' }, 500).catch(() => undefined);
    if (a?.ok) return { mode: (a.data as ProcessInfo).mode };
    if (performance.now() >= until)
      return {
        failed: `its attach endpoint did not answer at ${address.kind === 'unix' ? address.path : 'tcp'} (see the stderr of ${pid})`,
      };
    await new Promise((r) => setTimeout(r, 50));
  }
}
