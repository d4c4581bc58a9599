#!/usr/bin/env node
// The `mayhem` command (package.json "bin"): a committed, executable file, so npm links it at
// install time (the compiled dist/ only exists after the build that `npm ci` runs afterwards).
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('mayhem: not built yet (no dist/): run `npm ci` or `npm run build` in the repository first\n');
  process.exit(1);
}
await import(main.href);
