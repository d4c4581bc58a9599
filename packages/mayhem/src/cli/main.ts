#!/usr/bin/env node
/**
 * The `mayhem` command's entry point. It installs the exit-signal handlers first thing, before
 * the rest of the program (commander, pino, zod, the adapters) is loaded, so a signal in the first
 * half second is handled like any other (see signals.ts); then it runs the program.
 */
import { installSignalHub } from './signals.js';

installSignalHub();
await import('./program.js');
