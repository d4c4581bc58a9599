#!/usr/bin/env node
// The `loopwatch` command (package.json "bin"): a committed, executable file, so npm links it at
// install time (in a clone, the compiled dist/ only exists after the build that `npm ci` runs afterwards).
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write(
    'loopwatch: not built yet (no dist/): run `npm ci` or `npm run build` in the repository first\n',
  );
  process.exit(1);
}
await import(cli.href);
